"""What every learner shares: where a trial's process stands among its data-parallel ranks,
and how an evaluation splits its episodes into batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


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
