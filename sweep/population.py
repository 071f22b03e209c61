"""A population: K members of one cell trained as one model (`sweep.members`), each member
exactly as its lone `sweep.train.Trial` would train.

The members share the task, the family and its shape, the learner, and the trial's budget
(`SHARED`: episodes, batch_size, eval_every, eval_episodes, device); each has its own seed
(its generators: `seeded(seed, 0)` init, 1 training episodes, 2 evaluation episodes, as a
lone trial's), its lr, adam_eps and grad_clip, its model settings that are not shape (eta,
clip, ...) and its learner's settings (A2C's coefficients). Per member:

- Adam: `MemberAdam`, torch.optim.Adam's update on each member's slices with its own lr,
  eps and step count;
- clipping: `clip_members`, `clip_grad_norm_` on each member's own global norm;
- losses: the learner's `member_losses` (K,); their sum is backpropagated, so a member's
  gradient is its own loss's;
- evaluation and reports: the learner's `member_evaluate`, a `Report` per member as its
  lone trial's (`sweep.train.Progress`).

A member whose loss is not finite diverges alone (its last report diverged and done) and
`stop(member)` stops one (a scheduler's decision): either way it leaves the stack
(`Members.select`) and stops computing; the others' numbers do not change.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

from sweep.learners import Learner, learner_of, make_learner
from sweep.members import Members, stack_members
from sweep.models import Model
from sweep.records import Report
from sweep.tasks import Task
from sweep.train import (
    COUNTERS,
    RECONSTRUCTIONS,
    Progress,
    TrainConfig,
    evaluates_after,
    reconstructions,
    seeded,
)

# The training settings every member of a population shares (the rest are its own).
SHARED = ("episodes", "batch_size", "eval_every", "eval_episodes", "device")


@dataclass(frozen=True)
class Member:
    """One member: `id` (unique in its population), its model settings (the shape ones the
    same as every other member's), its training settings (`SHARED` the same as every other
    member's), its learner with its settings (None: the task's, at its defaults)."""

    id: str
    model_params: Mapping[str, Any]
    train: TrainConfig
    learner: Learner | None = None


def _member_view(values: Sequence[float], like: Tensor) -> Tensor:
    """(K, 1, ..., 1): one value per member, to scale `like` (K, ...) member by member."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(
        -1, *[1] * (like.dim() - 1)
    )


class MemberAdam:
    """torch.optim.Adam (betas (0.9, 0.999), no weight decay, no amsgrad) on the stacked
    parameters of `members`, member k with learning rate `lr[k]`, epsilon `eps[k]` and its
    own step count: member k's slice of a parameter takes the update torch's (single-tensor)
    Adam makes on the lone model's parameter, in the same order of operations. Its state is
    keyed by parameter name, so that it survives `Members.select` (new Parameter objects)."""

    betas = (0.9, 0.999)

    def __init__(self, members: nn.Module, lr: Sequence[float], eps: Sequence[float]):
        if len(lr) != len(eps):
            raise ValueError(f"{len(lr)} learning rates but {len(eps)} epsilons")
        self.members = members
        self.lr, self.eps = list(lr), list(eps)
        self.state: dict[str, dict[str, Tensor]] = {}

    def parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The parameters with a gradient (as torch's Adam, one without is left alone)."""
        return [(n, p) for n, p in self.members.named_parameters() if p.grad is not None]

    def zero_grad(self) -> None:
        for p in self.members.parameters():
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for name, p in self.parameters():
            grad = p.grad
            assert grad is not None
            state = self.state.get(name)
            if state is None:
                state = self.state[name] = {
                    "step": torch.zeros(len(self.lr), dtype=torch.float32),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            state["step"] += 1
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            steps = state["step"].tolist()
            # torch's scalars, computed in double per member, then one float per member
            step_size = [-lr / (1 - beta1**s) for lr, s in zip(self.lr, steps, strict=True)]
            correction = [(1 - beta2**s) ** 0.5 for s in steps]
            denom = (exp_avg_sq.sqrt() / _member_view(correction, p)).add_(
                _member_view(self.eps, p)
            )
            # addcdiv_'s order of operations: value * exp_avg / denom
            p.add_(_member_view(step_size, p) * exp_avg / denom)

    def select(self, indices: Sequence[int]) -> None:
        """Keep these members' state, in this order (as `Members.select`)."""
        self.lr = [self.lr[i] for i in indices]
        self.eps = [self.eps[i] for i in indices]
        for state in self.state.values():
            for key, tensor in state.items():
                state[key] = tensor[torch.as_tensor(list(indices), device=tensor.device)]

    def state_dict(self) -> dict[str, Any]:
        return {name: dict(state) for name, state in self.state.items()}

    def load_state_dict(self, state: Mapping[str, Mapping[str, Tensor]]) -> None:
        params = dict(self.members.named_parameters())
        self.state = {
            name: {
                key: t.to(params[name].device if key != "step" else "cpu")
                for key, t in tensors.items()
            }
            for name, tensors in state.items()
        }


@torch.no_grad()
def clip_members(parameters: Sequence[Tensor], max_norms: Sequence[float | None]) -> None:
    """`torch.nn.utils.clip_grad_norm_` member by member: member k's gradient slices scaled
    by max_norms[k] / (its own global norm + 1e-6), at most 1 (None: not clipped)."""
    if all(limit is None for limit in max_norms):
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    k = len(max_norms)
    norms = torch.stack([torch.linalg.vector_norm(g.reshape(k, -1), 2, dim=1) for g in grads], 1)
    total = torch.linalg.vector_norm(norms, 2, dim=1)  # (K,)
    limits = [math.inf if limit is None else limit for limit in max_norms]
    coef = torch.clamp(_member_view(limits, total) / (total + 1e-6), max=1.0)
    clipped = torch.tensor([limit is not None for limit in max_norms], device=total.device)
    coef = torch.where(clipped, coef, torch.ones_like(coef))
    for g in grads:
        g.mul_(coef.view(-1, *[1] * (g.dim() - 1)))


@dataclass
class _Run:
    """A running member: its settings, learner, generators, and report counters."""

    member: Member
    learner: Learner
    train_gen: torch.Generator
    eval_gen: torch.Generator
    progress: Progress = field(default_factory=Progress)
    losses: list[float] = field(default_factory=list)  # training losses since its last report


class PopulationTrial:
    """The population counterpart of `sweep.train.Trial` (see the module docstring);
    resumable from `state_dict()` at any of its reports. `batched`: use the family's batched
    members where it has them (False: `LoopMembers`, member by member). By default a
    population of one is not batched: it then runs its member's own model, the arithmetic of
    a lone trial to the bit (a member dimension of one takes other kernels, e.g. a batched
    matmul, which round differently: over thousands of A2C episodes such differences change
    sampled actions). Its cost: the calls through the member's module (measured on a maze
    agent, 1,200 episodes: 1.05-1.19x a lone trial's time since its steps call the module
    directly, 1.17-1.27x before; benchmarks/README.md)."""

    def __init__(
        self, task: Task, family: str, members: Sequence[Member], batched: bool | None = None
    ):
        _check(members)
        batched = len(members) > 1 if batched is None else batched
        self.task, self.family = task, family
        self.train = members[0].train
        self.device = torch.device(self.train.device)
        self.members: Members = stack_members(
            family,
            task.input_size,
            task.output_size,
            [m.model_params for m in members],
            [seeded(m.train.seed, 0) for m in members],
            device=self.device,
            batched=batched,
        )
        self.running = [
            _Run(
                m,
                m.learner or make_learner(learner_of(task)),
                seeded(m.train.seed, 1),
                seeded(m.train.seed, 2),
            )
            for m in members
        ]
        kinds = {type(run.learner).__name__ for run in self.running}
        if len(kinds) > 1:
            raise ValueError(f"one population learns by one learner, not {sorted(kinds)}")
        self.optimizer = MemberAdam(
            self.members, [m.train.lr for m in members], [m.train.adam_eps for m in members]
        )
        self.episodes = 0

    @property
    def ids(self) -> list[str]:
        """The running members' ids, in the stack's order."""
        return [run.member.id for run in self.running]

    @property
    def finished(self) -> bool:
        return self.episodes >= self.train.episodes

    def member_model(self, member: str) -> nn.Module:
        """A lone model holding a copy of this running member's parameters."""
        return self.members.member(self._index(member))

    def stop(self, member: str) -> None:
        """Stop a running member (a scheduler's decision): it stops computing; the others go
        on unchanged. Call it between reports."""
        index = self._index(member)
        self._keep([i for i in range(len(self.running)) if i != index])

    def reports(self) -> Iterator[list[tuple[str, Report]]]:
        """Train until the budget is spent or no member runs. Yields at each evaluation the
        (member id, Report) of every running member (the last done=True), and when members
        diverge, right then, theirs (diverged and done; they leave the population)."""
        train = self.train
        since = time.perf_counter()
        while self.running and not self.finished:
            batch = min(train.batch_size, train.episodes - self.episodes)
            losses = self._update(batch)
            diverged = [i for i, loss in enumerate(losses) if not math.isfinite(loss)]
            for run, loss in zip(self.running, losses, strict=True):
                run.losses.append(loss)
            if diverged:
                paused = time.perf_counter()
                yield self._diverge(diverged, paused - since)
                since += time.perf_counter() - paused  # the caller's time is not training
            due = evaluates_after(self.episodes, batch, train)
            self.episodes += batch
            if due and self.running:
                yield self._evaluation(since)
                since = time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        """The running members (ids, parameters, optimizer state, generators, counters) and
        the episodes trained."""
        return {
            "ids": self.ids,
            "members": self.members.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "episodes": self.episodes,
            "runs": [
                {
                    "train_gen": run.train_gen.get_state(),
                    "eval_gen": run.eval_gen.get_state(),
                    "losses": list(run.losses),
                    **dataclasses.asdict(run.progress),
                }
                for run in self.running
            ],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from `state`, on a population made with the same members (the ones that
        no longer ran when it was saved leave it)."""
        self._keep([self._index(member) for member in state["ids"]])
        self.members.load_state_dict(state["members"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.episodes = state["episodes"]
        for run, saved in zip(self.running, state["runs"], strict=True):
            run.train_gen.set_state(saved["train_gen"])
            run.eval_gen.set_state(saved["eval_gen"])
            run.losses = list(saved["losses"])
            run.progress = Progress(**{name: saved[name] for name in COUNTERS})

    def reconstructions(self, count: int = RECONSTRUCTIONS) -> dict[str, dict[str, Any] | None]:
        """`sweep.train.reconstructions` of each running member, by id."""
        return {
            run.member.id: reconstructions(
                cast(Model, self.members.member(k)), self.task, self.device, count
            )
            for k, run in enumerate(self.running)
        }

    def _update(self, batch: int) -> list[float]:
        """One step of every running member on `batch` fresh episodes of its own; each
        member's loss (a member with a non-finite one takes no step of its own: it leaves)."""
        runs = self.running
        learner = type(runs[0].learner)
        losses = learner.member_losses(
            [run.learner for run in runs],
            self.members,
            self.task,
            batch,
            [run.train_gen for run in runs],
            self.device,
        )
        finite = torch.isfinite(losses)
        if bool(finite.any()):
            self.optimizer.zero_grad()
            losses.masked_fill(~finite, 0.0).sum().backward()
            clip_members(list(self.members.parameters()), [r.member.train.grad_clip for r in runs])
            self.optimizer.step()
        values: list[float] = losses.detach().tolist()
        return values

    def _diverge(self, indices: Sequence[int], seconds: float) -> list[tuple[str, Report]]:
        """The last reports of the members at `indices`, which leave the population."""
        reports = [
            (
                self.running[i].member.id,
                self.running[i].progress.report(
                    self.task,
                    self.episodes,
                    math.nan,
                    None,
                    seconds,
                    finished=self.finished,
                    diverged=True,
                    num_parameters=self.members.num_parameters,
                ),
            )
            for i in indices
        ]
        self._keep([i for i in range(len(self.running)) if i not in indices])
        return reports

    def _evaluation(self, since: float) -> list[tuple[str, Report]]:
        train, runs = self.train, self.running
        values = type(runs[0].learner).member_evaluate(
            self.members,
            self.task,
            train.eval_episodes,
            train.batch_size,
            [run.eval_gen for run in runs],
            self.device,
        )
        seconds = time.perf_counter() - since
        reports = []
        for run, value in zip(runs, values, strict=True):
            loss = sum(run.losses) / len(run.losses)
            run.losses.clear()
            report = run.progress.report(
                self.task,
                self.episodes,
                loss,
                value,
                seconds,
                finished=self.finished,
                diverged=False,
                num_parameters=self.members.num_parameters,
            )
            reports.append((run.member.id, report))
        return reports

    def _index(self, member: str) -> int:
        ids = self.ids
        if member not in ids:
            raise ValueError(f"member {member!r} is not running; running: {', '.join(ids)}")
        return ids.index(member)

    def _keep(self, indices: Sequence[int]) -> None:
        """Keep only these running members, in this order."""
        if list(indices) == list(range(len(self.running))):
            return
        if indices:
            self.members.select(indices)
            self.optimizer.select(indices)
        self.running = [self.running[i] for i in indices]


def _check(members: Sequence[Member]) -> None:
    """One population: at least one member, unique ids, the `SHARED` settings equal."""
    if not members:
        raise ValueError("a population needs at least one member")
    ids = [m.id for m in members]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"member ids must be unique: {', '.join(map(repr, twice))} repeated")
    first = members[0]
    for m in members[1:]:
        for name in SHARED:
            mine, theirs = getattr(m.train, name), getattr(first.train, name)
            if mine != theirs:
                raise ValueError(
                    f"member {m.id!r} has {name}={mine!r} but member {first.id!r} "
                    f"{name}={theirs!r}: a population's members share {', '.join(SHARED)}"
                )
