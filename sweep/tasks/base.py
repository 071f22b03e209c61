"""The task interface: pure episode generation, a training loss and a scored metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

Split = Literal["train", "eval"]


@dataclass(frozen=True)
class Episode:
    """A batch of episodes. inputs: (T, B, I); targets: (B, O), wanted at the last step;
    mask: (B, O), the outputs the metric scores (None: all)."""

    inputs: Tensor
    targets: Tensor
    mask: Tensor | None = None


class Task(Protocol):
    """A memory task at one difficulty. Every random draw uses the generator it is given."""

    name: str
    level: str  # the difficulty's name ("custom" when set parameter by parameter)
    metric: str  # name of the primary metric; lower is better
    chance: float  # the metric of a network that learned nothing
    solved_threshold: float  # the level counts as solved when the metric is <= this

    @property
    def input_size(self) -> int: ...

    @property
    def output_size(self) -> int: ...

    @property
    def steps(self) -> int: ...

    def settings(self) -> dict[str, object]:
        """The resolved protocol parameters, for results rows."""
        ...

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        split: Split = "train",
    ) -> Episode:
        """`split="eval"` draws from material never used in training, where the task has
        such a thing (images: held-out photographs)."""
        ...

    def loss(self, outputs: Tensor, episode: Episode) -> Tensor:
        """Differentiable training loss of outputs (T, B, O); a scalar."""
        ...

    def score(self, outputs: Tensor, episode: Episode) -> float:
        """The primary metric of outputs on the episode, averaged over the batch."""
        ...
