"""The generic memory-flat episode: any rule, any modulation, gradients by autograd.

Plain autograd keeps every step's traces for the backward pass (several B N^2 tensors per
step). Here the episode runs in segments of K ~ sqrt(T) steps; each segment but the last runs
under `torch.utils.checkpoint` (non-reentrant), which keeps only its input state (the traces at
the segment's start, a snapshot) and recomputes the segment's steps under autograd during the
backward pass. Memory: O(T B N + (T / K + K) B N^2) for any `step`, and nobody derives a
gradient by hand. The cost is one extra forward pass per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

# (drive_t (B, D), state) -> (y_t (B, N), state): one step of a recurrent cell.
Step = Callable[[Tensor, Sequence[Tensor]], tuple[Tensor, Sequence[Tensor]]]

# Episodes this short run as one plain segment: checkpointing would save little.
SHORT_EPISODE = 16


def segment_length(steps: int) -> int:
    return steps if steps <= SHORT_EPISODE else math.ceil(math.sqrt(steps))


def unroll(step: Step, drive: Tensor, state: Sequence[Tensor]) -> Tensor:
    """Outputs (T, B, N) of `step` run over drive (T, B, D) from `state`."""
    steps = drive.shape[0]
    interval = segment_length(steps)

    def segment(start: int, stop: int, *state: Tensor) -> tuple[Tensor, ...]:
        ys = []
        current: Sequence[Tensor] = state
        for t in range(start, stop):
            y, current = step(drive[t], current)
            ys.append(y)
        return (torch.stack(ys), *current)

    remember = torch.is_grad_enabled()
    outputs = []
    for start in range(0, steps, interval):
        stop = min(steps, start + interval)
        if remember and stop < steps:
            done = checkpoint(
                segment, start, stop, *state, use_reentrant=False, preserve_rng_state=False
            )
        else:  # the last segment's steps are needed at once in backward: keep them
            done = segment(start, stop, *state)
        outputs.append(done[0])
        state = done[1:]
    return torch.cat(outputs)
