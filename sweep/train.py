"""One trial: train a model family on a task level with Adam, evaluating at fixed intervals."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import torch
from pydantic import ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic.dataclasses import dataclass as config_dataclass

from sweep.models import Model, build_model
from sweep.tasks import Task


@config_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class TrainConfig:
    """episodes: training episodes in all (each gradient step uses `batch_size` of them).
    lr: Adam learning rate. grad_clip: max global gradient norm (None: no clipping).
    eval_every: evaluate after every this many episodes (and at the end).
    eval_episodes: fresh episodes per evaluation, never used for training.
    seed: seeds model init, training episodes and evaluation episodes (separate streams).
    device: torch device to train on.
    """

    episodes: PositiveInt = 1000
    batch_size: PositiveInt = 16
    lr: Annotated[float, Field(gt=0)] = 3e-4
    grad_clip: PositiveFloat | None = None
    eval_every: PositiveInt = 100
    eval_episodes: PositiveInt = 64
    seed: NonNegativeInt = 0
    device: str = "cpu"


@dataclass
class Report:
    """One evaluation. The last report of a trial has done=True and the trial's summary."""

    episodes: int  # training episodes so far
    loss: float  # mean training loss since the previous report
    error: float  # the task's metric on fresh evaluation episodes
    wall_s: float  # seconds since the trial started
    episodes_per_second: float  # training throughput since the previous report
    done: bool = False
    best_error: float | None = None
    final_error: float | None = None
    episodes_to_solve: int | None = None  # first evaluation at or under the threshold
    num_parameters: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def seeded(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for one random stream (0: init, 1: training, 2: evaluation) of a seed."""
    return torch.Generator().manual_seed(seed * 1_000_003 + stream)


def train_trial(
    task: Task, family: str, model_params: Mapping[str, Any], train: TrainConfig
) -> Iterator[Report]:
    """Train and yield one Report per evaluation; the last has done=True.

    Same seed, same numbers on CPU: model init, training and evaluation episodes each draw
    from their own explicitly seeded torch.Generator.
    """
    device = torch.device(train.device)
    model = build_model(family, task.input_size, task.output_size, model_params, device="cpu")
    model.reset_parameters(seeded(train.seed, 0))
    model.to(device)
    train_gen, eval_gen = seeded(train.seed, 1), seeded(train.seed, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr)
    start = last_time = time.perf_counter()
    done_episodes = last_episodes = 0
    losses: list[float] = []
    best = math.inf
    solved_at: int | None = None
    while done_episodes < train.episodes:
        batch = min(train.batch_size, train.episodes - done_episodes)
        episode = task.sample(batch, train_gen, device)
        loss = task.loss(model(episode.inputs), episode)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        next_eval = (done_episodes // train.eval_every + 1) * train.eval_every
        done_episodes += batch
        if done_episodes < min(next_eval, train.episodes):
            continue
        now = time.perf_counter()
        error = evaluate(model, task, train.eval_episodes, train.batch_size, eval_gen, device)
        best = min(best, error)
        if solved_at is None and error <= task.solved_threshold:
            solved_at = done_episodes
        report = Report(
            episodes=done_episodes,
            loss=sum(losses) / len(losses),
            error=error,
            wall_s=time.perf_counter() - start,
            episodes_per_second=(done_episodes - last_episodes) / (now - last_time),
        )
        if done_episodes >= train.episodes:
            report.done = True
            report.best_error, report.final_error = best, error
            report.episodes_to_solve = solved_at
            report.num_parameters = model.num_parameters
        yield report
        losses.clear()
        last_time, last_episodes = time.perf_counter(), done_episodes


@torch.no_grad()
def evaluate(
    model: Model,
    task: Task,
    episodes: int,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
) -> float:
    """Mean metric over `episodes` fresh episodes, drawn in batches of `batch_size`."""
    total, seen = 0.0, 0
    while seen < episodes:
        batch = min(batch_size, episodes - seen)
        episode = task.sample(batch, generator, device)
        total += task.score(model(episode.inputs), episode) * batch
        seen += batch
    return total / episodes
