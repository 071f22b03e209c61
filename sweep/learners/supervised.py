"""Supervised learning: the task samples episodes with their targets; the loss is the task's
own (`Task.loss`), the evaluation its metric (`Task.score`) on fresh episodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass as config_dataclass

from sweep.learners.base import Activations, Generators, Learner, Ranks
from sweep.models import Model
from sweep.tasks.base import Episode, Task

if TYPE_CHECKING:
    from sweep.members import Members


@config_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class SupervisedSettings:
    """Supervised learning has no settings of its own (the task's loss is the loss)."""


def shard(episode: Episode, ranks: Ranks) -> Episode:
    """This rank's contiguous share of a batch (an empty one when the batch has fewer
    episodes than there are ranks)."""
    batch = episode.inputs.shape[1]
    low, high = batch * ranks.rank // ranks.world, batch * (ranks.rank + 1) // ranks.world
    return Episode(
        episode.inputs[:, low:high],
        episode.targets[low:high],
        None if episode.mask is None else episode.mask[low:high],
    )


class Supervised(Learner):
    """Trains on sampled batches; data parallel: every rank draws the whole batch from the
    same generator and trains on its share."""

    name: ClassVar[str] = "supervised"
    settings_class: ClassVar[type] = SupervisedSettings
    data_parallel: ClassVar[bool] = True

    def loss(
        self,
        model: Model,
        task: Task,
        batch: int,
        generator: torch.Generator,
        device: torch.device,
        ranks: Ranks,
    ) -> torch.Tensor:
        """This rank's share of a fresh batch's mean loss (its shard's mean loss weighted by
        the shard's share of the batch; the whole batch's with one rank). An empty shard's
        loss is a zero that reaches no parameter."""
        episode = task.sample(batch, generator, device)
        if ranks.world == 1:
            return task.loss(model(episode.inputs), episode)
        part = shard(episode, ranks)
        share = part.inputs.shape[1] / batch
        if not share:
            return torch.zeros((), device=device)
        return task.loss(model(part.inputs), part) * share

    def batch_total(
        self, model: Model, task: Task, batch: int, generator: torch.Generator, device: torch.device
    ) -> float:
        episode = task.sample(batch, generator, device, split="eval")
        return task.score(model(episode.inputs), episode) * batch

    @classmethod
    def update_bytes(cls, activations: Activations, task: Task, batch: int) -> int:
        """`forward` over whole episodes, then backward; the episode's inputs, the outputs,
        targets and the outputs' gradient: (T, B, I + 3 O) floats."""
        steps = task.steps
        own = 4 * batch * steps * (task.input_size + 3 * task.output_size)
        return activations(batch, steps, "episode") + own

    @classmethod
    def member_losses(
        cls,
        learners: Sequence[Supervised],
        members: Members,
        task: Task,
        batch: int,
        generators: Generators,
        device: torch.device,
    ) -> torch.Tensor:
        """(K,) each member's `loss` of a fresh batch drawn from its own generator (the
        batches stacked along the member dimension, one forward)."""
        episodes = [task.sample(batch, g, device) for g in generators]
        outputs = members(torch.stack([e.inputs for e in episodes], 1))  # (T, K, B, O)
        return torch.stack([task.loss(outputs[:, k], e) for k, e in enumerate(episodes)])

    @classmethod
    def member_totals(
        cls, members: Members, task: Task, batch: int, generators: Generators, device: torch.device
    ) -> list[float]:
        """The members' batches stacked along the member dimension: one forward."""
        drawn = [task.sample(batch, g, device, split="eval") for g in generators]
        outputs = members(torch.stack([e.inputs for e in drawn], 1))  # (T, K, B, O)
        return [task.score(outputs[:, k], episode) * batch for k, episode in enumerate(drawn)]
