"""One trial: train a model family on a task level with Adam, evaluating at fixed intervals;
the task's learner (`sweep.learners`) gives the loss of each batch and the evaluation."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import torch
import torch.distributed as dist
from pydantic import ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic.dataclasses import dataclass as config_dataclass

from sweep.learners import Learner, Ranks, learner_of, make_learner
from sweep.models import Model, build_model
from sweep.records import Report
from sweep.store import better, reached
from sweep.tasks import Task


@config_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class TrainConfig:
    """episodes: training episodes in all (each gradient step uses `batch_size` of them).
    lr: Adam learning rate. adam_eps: Adam's epsilon (PyTorch's 1e-8; Backpropamine's code
    1e-4 on the maze, 1e-6 on cue-reward). grad_clip: max global gradient norm (None: none).
    A task's reference code may set these: unset ones take its values (`sweep.defaults`).
    eval_every: evaluate after every this many episodes (and at the end).
    eval_episodes: fresh episodes per evaluation, never used for training.
    seed: seeds model init, training episodes and evaluation episodes (separate streams).
    device: torch device to train on.
    The learner's own settings (A2C's coefficients) are its own (`sweep.learners`).
    """

    episodes: PositiveInt = 1000
    batch_size: PositiveInt = 16
    lr: Annotated[float, Field(gt=0)] = 3e-4
    adam_eps: PositiveFloat = 1e-8
    grad_clip: PositiveFloat | None = None
    eval_every: PositiveInt = 100
    eval_episodes: PositiveInt = 64
    seed: NonNegativeInt = 0
    device: str = "cpu"


TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


# A finished trial of a picture task records its outputs on this many evaluation episodes,
# the same ones for every trial of a task level (drawn from stream 3 of seed 0), so that
# figures can set the models' reconstructions of one image side by side.
RECONSTRUCTIONS = 3


def all_reduce_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """Sum every parameter's gradient across ranks, in one flat collective (a parameter
    this rank's shard did not reach counts as zero)."""
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p in parameters:
        p.grad = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()


def evaluates_after(episodes: int, batch: int, train: TrainConfig) -> bool:
    """Whether a trial at `episodes` training episodes evaluates once it has trained `batch`
    more: every `eval_every` episodes, and at the end."""
    next_eval = (episodes // train.eval_every + 1) * train.eval_every
    return episodes + batch >= min(next_eval, train.episodes)


COUNTERS = ("step", "wall_s", "best", "last_error", "solved_at")


@dataclasses.dataclass
class Progress:
    """What a trial's reports carry from one to the next (a member's, in a population):
    reports so far, seconds of training and evaluation, the best and the last metric value,
    the episodes at which it first reached the solved threshold."""

    step: int = 0
    wall_s: float = 0.0
    best: float = math.nan
    last_error: float = math.nan
    solved_at: int | None = None

    def report(
        self,
        task: Task,
        episodes: int,
        loss: float,
        value: float | None,
        seconds: float,
        *,
        finished: bool,
        diverged: bool,
        num_parameters: int,
    ) -> Report:
        """The next report, after `seconds` more; `value`: a fresh evaluation (None: none was
        made: diverged, or a rank other than 0)."""
        if value is not None:
            self.last_error = value
            if self.best != self.best or better(value, self.best, task.goal):
                self.best = value
            if self.solved_at is None and reached(value, task.solved_threshold, task.goal):
                self.solved_at = episodes
        self.step += 1
        self.wall_s += seconds
        done = finished or diverged
        return Report(
            step=self.step,
            episodes=episodes,
            loss=loss,
            value=self.last_error,
            wall_s=self.wall_s,
            episodes_per_second=episodes / max(self.wall_s, 1e-9),
            best_value=self.best,
            episodes_to_solve=self.solved_at,
            num_parameters=num_parameters,
            done=done,
            diverged=diverged,
            final_value=self.last_error if done else None,
        )


def seeded(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for one random stream (0: init, 1: training, 2: evaluation,
    3: the reconstruction episodes) of a seed."""
    return torch.Generator().manual_seed(seed * 1_000_003 + stream)


class Trial:
    """The state of one training run, resumable from `state_dict()` at any report.

    Same seed, same numbers on CPU: model init, training and evaluation episodes each draw
    from their own explicitly seeded torch.Generator, and the generators' states travel in
    the checkpoint, so a restored trial continues exactly where it stopped.
    """

    def __init__(
        self,
        task: Task,
        family: str,
        model_params: Mapping[str, Any],
        train: TrainConfig,
        ranks: Ranks | None = None,
        learner: Learner | None = None,
    ):
        """`learner`: the task's learner with its own settings (None: the one the task names,
        at its defaults)."""
        self.task, self.train, self.ranks = task, train, ranks or Ranks()
        self.learner = learner or make_learner(learner_of(task))
        if not self.learner.data_parallel and self.ranks.world > 1:
            raise ValueError(
                f"task {task.name!r} learns by {self.learner.name}: it trains with one worker, "
                f"not {self.ranks.world} (data-parallel training is for the supervised tasks)"
            )
        self.device = torch.device(train.device)
        model = build_model(family, task.input_size, task.output_size, model_params, device="cpu")
        model.reset_parameters(seeded(train.seed, 0))
        model.to(self.device)
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=train.lr, eps=train.adam_eps)
        self.train_gen, self.eval_gen = seeded(train.seed, 1), seeded(train.seed, 2)
        self.episodes = 0
        self.progress = Progress()

    @property
    def finished(self) -> bool:
        return self.episodes >= self.train.episodes

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "train_gen": self.train_gen.get_state(),
            "eval_gen": self.eval_gen.get_state(),
            "episodes": self.episodes,
            **dataclasses.asdict(self.progress),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.train_gen.set_state(state["train_gen"])
        self.eval_gen.set_state(state["eval_gen"])
        self.episodes = state["episodes"]
        self.progress = Progress(**{name: state[name] for name in COUNTERS})

    def reports(self) -> Iterator[Report]:
        """Train until the budget is spent; one Report per evaluation, the last done=True.

        Data parallel (world > 1): every rank draws the whole batch from the same training
        generator (the episodes of a seed do not depend on the world size), trains on its
        share, and steps the same optimizer on the summed gradients, so every rank holds the
        same model; only rank 0 evaluates (the other ranks' reports carry no value)."""
        train = self.train
        losses: list[float] = []
        since = time.perf_counter()
        while not self.finished:
            batch = min(train.batch_size, train.episodes - self.episodes)
            loss = self._batch_loss(batch)
            if not torch.isfinite(loss):
                yield self._report(math.nan, since, diverged=True)
                return
            if self.ranks.world == 1:
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
            if train.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), train.grad_clip)
            self.optimizer.step()
            losses.append(loss.item())
            due = evaluates_after(self.episodes, batch, train)
            self.episodes += batch
            if not due:
                continue
            yield self._report(sum(losses) / len(losses), since)
            losses.clear()
            since = time.perf_counter()

    def _batch_loss(self, batch: int) -> torch.Tensor:
        """The loss of one fresh training batch (data parallel: gradients already summed)."""
        loss = self.learner.loss(
            self.model, self.task, batch, self.train_gen, self.device, self.ranks
        )
        return self._gradients(loss) if self.ranks.world > 1 else loss

    def _gradients(self, loss: torch.Tensor) -> torch.Tensor:
        """This rank's share of the batch loss, backpropagated; gradients and loss summed
        across ranks, so both are the whole batch's, as with one process. Returns the batch
        loss, the same on every rank (a non-finite one stops every rank at the same step)."""
        self.optimizer.zero_grad(set_to_none=True)
        total = loss.detach().clone()
        dist.all_reduce(total)
        if not torch.isfinite(total):
            return total
        if loss.requires_grad:  # an empty shard's loss reaches no parameter
            loss.backward()
        all_reduce_gradients([p for p in self.model.parameters() if p.requires_grad])
        return total

    def reconstructions(self, count: int = RECONSTRUCTIONS) -> dict[str, Any] | None:
        """`reconstructions` of this trial's model."""
        return reconstructions(self.model, self.task, self.device, count)

    def _evaluate(self) -> float:
        """The task's metric on `eval_episodes` fresh episodes from the evaluation stream."""
        cfg = self.train
        return self.learner.evaluate(
            self.model, self.task, cfg.eval_episodes, cfg.batch_size, self.eval_gen, self.device
        )

    def _report(self, loss: float, since: float, diverged: bool = False) -> Report:
        value = self._evaluate() if not diverged and self.ranks.lead else None
        return self.progress.report(
            self.task,
            self.episodes,
            loss,
            value,
            time.perf_counter() - since,
            finished=self.finished,
            diverged=diverged,
            num_parameters=self.model.num_parameters,
        )


@torch.no_grad()
def reconstructions(
    model: Model, task: Task, device: torch.device, count: int = RECONSTRUCTIONS
) -> dict[str, Any] | None:
    """The model's last-step outputs on `count` fixed evaluation episodes, for figures;
    None when the task's targets are not pictures. Plain lists (they travel in Ray
    results): shape (rows, cols) of a picture; target, output (count, O) floats; erased
    (count, O), True where the metric scores (the part the cue hid)."""
    shape = task.picture
    if shape is None:
        return None
    episode = task.sample(count, seeded(0, 3), device, split="eval")
    output = model(episode.inputs)[-1]
    erased = torch.ones_like(output, dtype=torch.bool) if episode.mask is None else episode.mask
    return {
        "shape": list(shape),
        "target": episode.targets.cpu().tolist(),
        "output": output.cpu().tolist(),
        "erased": erased.cpu().tolist(),
    }


def train_trial(
    task: Task,
    family: str,
    model_params: Mapping[str, Any],
    train: TrainConfig,
    learner: Learner | None = None,
) -> Iterator[Report]:
    """Train a fresh trial; one Report per evaluation, the last done=True."""
    return Trial(task, family, model_params, train, learner=learner).reports()
