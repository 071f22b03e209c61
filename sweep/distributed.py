"""torch.distributed for one data-parallel trial: rank 0's address, the process group, the
state every rank starts from."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

# A collective that waits this long for a peer raises: a worker whose node died (without
# closing its connection) fails the trial, which Tune retries from its checkpoint. (A dead
# process closes its connections: its peers fail at once.) It must exceed the longest time
# ranks 1..W-1 wait for rank 0 between two steps: an evaluation and a checkpoint upload.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)
BACKENDS = {"cpu": "gloo", "cuda": "nccl"}


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Rendezvous:
    """Where a trial's ranks meet: rank 0's address and a port free there (TCP store)."""

    host: str
    port: int
    world: int
    backend: str

    @classmethod
    def at(cls, host: str, world: int, device: torch.device) -> Rendezvous:
        return cls(host, free_port(host), world, BACKENDS[device.type])

    def join(self, rank: int, device: torch.device) -> None:
        """Blocks until all `world` ranks have joined (or the timeout passes)."""
        if device.type == "cuda":  # NCCL's object collectives use the current device
            torch.cuda.set_device(device)
        dist.init_process_group(
            self.backend,
            init_method=f"tcp://{self.host}:{self.port}",
            rank=rank,
            world_size=self.world,
            timeout=COLLECTIVE_TIMEOUT,
        )


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast(value: Any) -> Any:
    """Rank 0's `value`, on every rank (the others pass None)."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order."""
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values
