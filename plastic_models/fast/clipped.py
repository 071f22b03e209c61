"""The clipped kernel: a segment's steps replayed from its snapshot (driver.py drives it).

The trace update U(t+1) = H(t) diag(d(t)) + eta x(t) ⊗ y(t), H = clamp(U, -clip, clip), is not
linear, so the forward pass leaves U in a snapshot every K ~ sqrt(T) steps and the backward
pass replays the steps of one segment from its snapshot, keeping their K traces. The replay
uses the forward pass's own elementwise ops on the same inputs, so it is bit-identical and the
clamp's mask (gradient only where -clip <= U <= clip, as autograd's clamp) is exact. Memory:
O(T B N + (T / K + K) B N^2). Clamp mode changes only tanh's backward (driver.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from plastic_models.fast.driver import (
    Chunk,
    Grads,
    Plan,
    Segment,
    Stepwise,
    activate,
    tanh_backward,
)


class Clipped(Stepwise):
    def advance(self, h: Tensor, out: Tensor, x: Tensor, y: Tensor) -> None:
        """out = U(t+1) from h = H(t). The same ops in the forward pass and the replay."""
        torch.mul(h, self.decay(y), out=out)
        self.add_eta(out, x.unsqueeze(2), y.unsqueeze(1))

    def forward(self, plan: Plan, drive: Tensor, c: Chunk, segs: Iterable[Segment]) -> None:
        states, zs = c.states, c.zs
        u = drive.new_zeros(drive.shape[1], plan.n, plan.n)  # U(t), (b, N, N)
        h = torch.zeros_like(u)  # H(t) = clamp(U(t))
        tmp = torch.empty_like(u) if self.connection else None
        for seg in segs:
            for t in range(seg.start, seg.stop):
                x = states[t]
                pre = self.times_w(x, drive[t]) if t else drive[t]
                if t > 1:  # H(0) = H(1) = 0: x(0) = 0 makes the first update vanish
                    self.bound(u, h)
                    self.read(pre, x, h, tmp, None if zs is None else zs[t])
                elif zs is not None:
                    zs[t] = 0
                y = activate(pre, drive[t], states[t + 1], self.clamp)
                if 0 < t < plan.steps - 1:
                    self.advance(h, u, x, y)
            if seg.snap is not None:
                seg.snap.copy_(u)

    def backward(self, plan: Plan, c: Chunk, g: Grads) -> ClippedBackward:
        return ClippedBackward(self, plan, c, g)


class ClippedBackward:
    """One chunk's backward pass: g_u = dL/dU(t+1), (b, N, N), carried from step to step."""

    def __init__(self, kernel: Clipped, plan: Plan, c: Chunk, g: Grads):
        self.k, self.steps, self.states, self.g = kernel, plan.steps, c.states, g
        self.g_u = c.states.new_zeros(c.states.shape[1], plan.n, plan.n)
        self.h, self.tmp = torch.empty_like(self.g_u), torch.empty_like(self.g_u)
        self.mask = torch.empty_like(self.g_u, dtype=torch.bool)
        self.slots = [torch.empty_like(self.g_u) for _ in range(plan.interval - 1)]
        self.us: list[Tensor] = []

    def enter(self, seg: Segment) -> None:
        """us[k] = U(start + k) from the snapshot, with the forward pass's ops."""
        k, xs, h = self.k, self.states, self.h
        self.start, self.us = seg.start, [h if seg.snap is None else seg.snap, *self.slots]
        for t in range(seg.start + 1, seg.stop):
            u = self.us[t - seg.start]
            if t <= 2:  # U(1) = 0 (x(0) = 0); U(2) from H(1) = 0
                u.zero_()
                if t == 2:
                    k.advance(u, u, xs[1], xs[2])
                continue
            k.bound(self.us[t - seg.start - 1], h)
            k.advance(h, u, xs[t - 1], xs[t])

    def step(self, t: int, gy: Tensor) -> Tensor:
        """Turns g_u from dL/dU(t+1) into dL/dU(t) (t >= 2)."""
        k, g, g_u = self.k, self.g, self.g_u
        u = self.us[t - self.start]
        h = k.bound(u, self.h)  # H(t)
        x, y = self.states[t], self.states[t + 1]
        update = t < self.steps - 1  # the last step's update is never used, and was not made
        g_x_update = k.update_backward(h, x, y, gy, g_u, self.tmp, g.eta) if update else None
        g_pre = tanh_backward(gy, y, None if g.free is None else g.free[t], g.g_pre[t])
        g_x = k.times_wt(g_pre)  # (b, N)
        if g_x_update is not None:
            k.add_eta(g_x, g_x_update)
        k.read_backward(h, x, g_pre, g_x, g_u if t > 1 else None, self.tmp, g.alpha)
        if t > 1:  # dL/dU(t): the clamp passes the gradient only where U = H
            torch.ne(h, u, out=self.mask)
            g_u.masked_fill_(self.mask, 0)
        return g_x

    def leave(self, seg: Segment) -> None:
        pass
