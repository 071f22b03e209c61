"""The generic memory-flat episode: any rule, any modulation, gradients by autograd.

Plain autograd keeps every step's traces for the backward pass (several B N^2 tensors per
step). Here the episode runs in segments of K ~ sqrt(T) steps. Each segment but the last runs
without a graph and keeps only its input state (the traces at its start, a snapshot); the
backward pass recomputes that segment under autograd from the snapshot and differentiates it
with `torch.autograd.grad` (the classic checkpointing of `torch.utils.checkpoint`'s reentrant
form, but returning the parameters' gradients, so `torch.autograd.grad` works on the episode
too). Memory: O(T B N + (T / K + K) B N^2) for any `step`, and nobody derives a gradient by
hand. The cost is one extra forward pass per step. Not twice differentiable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

# (drive_t (B, D), state) -> (y_t (B, N), state): one step of a recurrent cell.
Step = Callable[[Tensor, Sequence[Tensor]], tuple[Tensor, Sequence[Tensor]]]

# Episodes this short run as one plain segment: checkpointing would save little.
SHORT_EPISODE = 16


def segment_length(steps: int) -> int:
    return steps if steps <= SHORT_EPISODE else math.ceil(math.sqrt(steps))


def run(step: Step, drive: Tensor, state: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """(outputs (L, B, N), *final state) of `step` over drive (L, B, D)."""
    ys = []
    for drive_t in drive:
        y, state = step(drive_t, state)
        ys.append(y)
    return (torch.stack(ys), *state)


class Segment(torch.autograd.Function):
    """One segment: forward without a graph, backward by recomputing it under autograd.
    Inputs after `step` and `size`: the segment's drive, its start state (`size` tensors),
    then the parameters `step` reads (so that their gradients come back through here)."""

    @staticmethod
    def forward(ctx: Any, step: Step, size: int, drive: Tensor, *tensors: Tensor) -> Any:
        state = tensors[:size]
        ctx.step, ctx.size, ctx.params = step, size, tensors[size:]
        ctx.save_for_backward(drive, *state)
        with torch.no_grad():
            return run(step, drive, state)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        drive, *state = ctx.saved_tensors
        wanted = ctx.needs_input_grad[2:]  # drive, state..., params...
        with torch.enable_grad():
            inputs = [
                t.detach().requires_grad_(need)
                for t, need in zip([drive, *state], wanted, strict=False)
            ]
            outputs = run(ctx.step, inputs[0], inputs[1:])
            pairs = [(o, g) for o, g in zip(outputs, grads, strict=True) if g is not None]
            sources = [*inputs, *ctx.params]
            chosen = [i for i, need in enumerate(wanted) if need]
            found = torch.autograd.grad(
                [o for o, _ in pairs if o.requires_grad],
                [sources[i] for i in chosen],
                [g for o, g in pairs if o.requires_grad],
                allow_unused=True,
            )
        result: list[Tensor | None] = [None] * len(sources)
        for i, g in zip(chosen, found, strict=True):
            result[i] = g
        return (None, None, *result)


def unroll(step: Step, drive: Tensor, state: Sequence[Tensor], params: Sequence[Tensor]) -> Tensor:
    """Outputs (T, B, N) of `step` run over drive (T, B, D) from `state`; `params`: every
    tensor `step` reads that may need a gradient (the module's parameters)."""
    steps = drive.shape[0]
    interval = segment_length(steps)
    remember = torch.is_grad_enabled()
    outputs = []
    for start in range(0, steps, interval):
        stop = min(steps, start + interval)
        if remember and stop < steps:
            done = Segment.apply(step, len(state), drive[start:stop], *state, *params)
        else:  # without a graph, or the last segment: its steps are needed at once in backward
            done = run(step, drive[start:stop], state)
        outputs.append(done[0])
        state = done[1:]
    return torch.cat(outputs)
