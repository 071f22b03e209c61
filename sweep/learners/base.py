"""What every learner shares: where a trial's process stands among its data-parallel ranks,
how an evaluation splits its episodes into batches, and the interface (`Learner`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from sweep.models import Model

if TYPE_CHECKING:
    from sweep.members import Members

Generators = Sequence[torch.Generator]  # a population's: one per member
# A family's activation memory: (batch, steps, graph) -> peak bytes of one update's
# activations, graph "episode" (forward, then backward) or "steps" (step unrolled under autograd)
Activations = Callable[[int, int, str], int]


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel trial: rank `rank` of `world` processes,
    joined in torch.distributed's default group by the caller when world > 1."""

    rank: int = 0
    world: int = 1

    @property
    def lead(self) -> bool:
        """Rank 0 evaluates and reports; the others only train."""
        return self.rank == 0


def batches(episodes: int, batch_size: int) -> Iterator[int]:
    """The sizes of the batches that make up `episodes` episodes: `batch_size` each, the last
    one what is left."""
    seen = 0
    while seen < episodes:
        batch = min(batch_size, episodes - seen)
        yield batch
        seen += batch


class Learner:
    """How a model learns a task: its settings, its training loss and its evaluation, for a
    lone model and for a population's members (`sweep.population`: K members of one cell
    trained as one model, each as its lone trial would be, with its own generator and its own
    learner). A learner gives its losses and the metric summed over one batch of evaluation
    episodes (`batch_total`, `member_totals`); the evaluation's batches are drawn here."""

    name: ClassVar[str]
    settings_class: ClassVar[type]  # its settings: keyword arguments with defaults
    data_parallel: ClassVar[bool]  # can train one trial on several ranks

    def __init__(self, settings: Any = None):
        self.settings = self.settings_class() if settings is None else settings

    def loss(
        self,
        model: Model,
        task: Any,
        batch: int,
        generator: torch.Generator,
        device: torch.device,
        ranks: Ranks,
    ) -> torch.Tensor:
        """The mean loss of `batch` fresh training episodes (this rank's weighted share)."""
        raise NotImplementedError

    def batch_total(
        self, model: Model, task: Any, batch: int, generator: torch.Generator, device: torch.device
    ) -> float:
        """The task's metric summed over `batch` fresh evaluation episodes."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(
        self,
        model: Model,
        task: Any,
        episodes: int,
        batch_size: int,
        generator: torch.Generator,
        device: torch.device,
    ) -> float:
        """The task's metric on `episodes` fresh evaluation episodes, drawn in batches of
        `batch_size`."""
        total = 0.0
        for batch in batches(episodes, batch_size):
            total += self.batch_total(model, task, batch, generator, device)
        return total / episodes

    @classmethod
    def update_bytes(cls, activations: Activations, task: Any, batch: int) -> int:
        """Peak bytes one model holds for one training update of `batch` episodes, beyond its
        parameters: the family's `activations` as this learner runs the model, and the
        learner's own tensors (sweep.memory adds them up)."""
        raise NotImplementedError

    @classmethod
    def member_losses(
        cls,
        learners: Sequence[Any],
        members: Members,
        task: Any,
        batch: int,
        generators: Generators,
        device: torch.device,
    ) -> torch.Tensor:
        """(K,) member k's `loss` of `batch` fresh episodes from `generators[k]` with the
        settings of `learners[k]` (one rank)."""
        raise NotImplementedError

    @classmethod
    def member_totals(
        cls, members: Members, task: Any, batch: int, generators: Generators, device: torch.device
    ) -> list[float]:
        """Member k's `batch_total`, its episodes from `generators[k]`."""
        raise NotImplementedError

    @classmethod
    @torch.no_grad()
    def member_evaluate(
        cls,
        members: Members,
        task: Any,
        episodes: int,
        batch_size: int,
        generators: Generators,
        device: torch.device,
    ) -> list[float]:
        """Member k's `evaluate`, its episodes from `generators[k]`."""
        totals = [0.0] * len(generators)
        for batch in batches(episodes, batch_size):
            for k, total in enumerate(cls.member_totals(members, task, batch, generators, device)):
                totals[k] += total
        return [total / episodes for total in totals]
