"""Fast plastic episodes with a clipped trace: segments replayed from snapshots (see episode.py).

The trace update U(t+1) = H(t) diag(d(t)) + eta x(t) ⊗ y(t), H = clamp(U, -clip, clip), is not
linear, so the forward pass keeps U every K ~ sqrt(T) steps (see episode.py) and the backward
pass replays the steps of one segment from its snapshot, keeping their K traces. The replay
uses the forward pass's own elementwise ops on the same inputs, so it is bit-identical and the
clamp's mask (gradient only where -clip <= U <= clip, as autograd's clamp) is exact. Memory:
O(T B N + (T / K + K) B N^2).

Clamp mode (the image task's inputs): y = where(drive != 0, drive, tanh(pre)), the drive still
added to pre. The replay reads the stored (clamped) activations, so only the step's backward
changes: dL/dpre = 0 where the input clamps the neuron, and the drive's gradient takes dL/dy
there. The mask, drive != 0, is recomputed from the drive in backward.

Shapes: T steps, b batch elements of one chunk, N neurons; traces are (b, N, N), indexed
[batch, presynaptic i, postsynaptic j]; x(t) = y(t - 1) is the input of step t, 0 at t = 0.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from plastic_models.rules import DecayRule


class ClippedEpisode:
    """One episode's parameters and the steps of its forward and backward passes."""

    def __init__(
        self,
        w: Tensor,
        alpha: Tensor,
        eta: Tensor,
        rule: DecayRule,
        clip: float,
        clamp: bool,
        interval: int,
    ):
        self.w, self.alpha, self.rule, self.clip, self.clamp = w, alpha, rule, clip, clamp
        self.eta = float(eta.detach())  # constant within an episode: ops stay on scalars
        self.connection = alpha.dim() == 2  # else per-neuron or scalar: factors out of x @ H
        self.interval = interval  # K: steps per segment

    def decay(self, y: Tensor) -> float | Tensor:
        """d(t): a float when the rule's shrink is a constant, else (b, 1, N)."""
        if self.rule.constant is not None:
            return 1.0 - self.eta * self.rule.constant
        return (1.0 - self.eta * self.rule.shrink(y)).unsqueeze(1)

    def advance(self, h: Tensor, out: Tensor, x: Tensor, y: Tensor) -> None:
        """out = U(t+1) from h = H(t). The same ops in the forward pass and the replay."""
        torch.mul(h, self.decay(y), out=out)
        out.addcmul_(x.unsqueeze(2), y.unsqueeze(1), value=self.eta)

    def forward(self, drive: Tensor, ys: Tensor, zs: Tensor | None, snaps: Tensor) -> None:
        """One chunk: drive (T, b, N) -> activations into ys, x @ H into zs (per-neuron or
        scalar alpha) and U(k * interval), k = 1..S, into snaps (S, b, N, N)."""
        steps = drive.shape[0]
        u = drive.new_zeros(drive.shape[1], drive.shape[2], drive.shape[2])  # U(t), (b, N, N)
        h = torch.zeros_like(u)  # H(t) = clamp(U(t))
        tmp = torch.empty_like(u) if self.connection else None
        for t in range(steps):
            if t and t % self.interval == 0:
                snaps[t // self.interval - 1].copy_(u)
            pre = torch.addmm(drive[t], ys[t - 1], self.w) if t else drive[t]
            if t > 1:  # H(0) = H(1) = 0: x(0) = 0 makes the first update vanish
                torch.clamp(u, -self.clip, self.clip, out=h)
                if tmp is not None:
                    torch.mul(h, self.alpha, out=tmp)
                    pre.unsqueeze(1).baddbmm_(ys[t - 1].unsqueeze(1), tmp)
                else:
                    assert zs is not None
                    torch.bmm(ys[t - 1].unsqueeze(1), h, out=zs[t].unsqueeze(1))
                    pre.addcmul_(zs[t], self.alpha)
            elif zs is not None:
                zs[t] = 0
            torch.tanh(pre, out=ys[t])
            if self.clamp:  # where(drive != 0, drive, y) = y * (drive == 0) + drive
                ys[t].mul_(drive[t] == 0).add_(drive[t])
            if 0 < t < steps - 1:
                self.advance(h, u, ys[t - 1], ys[t])

    def backward(
        self,
        grad: Tensor,
        ys: Tensor,
        snaps: Tensor,
        g_pre: Tensor,
        acc: Tensor | None,
        g_eta: Tensor,
        free: Tensor | None,
        g_y: Tensor | None,
    ) -> None:
        """One chunk, last segment first: dL/dy (T, b, N) -> dL/dpre into g_pre; adds dL/dalpha
        per connection into acc (b, N, N) and dL/deta into g_eta. Clamp mode: free (T, b, N) is
        drive == 0, where tanh' counts; the total dL/dy goes into g_y if given."""
        steps = ys.shape[0]
        xs = torch.cat([torch.zeros_like(ys[:1]), ys[:-1]])  # (T, b, N)
        g_u = ys.new_zeros(ys.shape[1], ys.shape[2], ys.shape[2])  # dL/dU(t+1), (b, N, N)
        h, tmp = torch.empty_like(g_u), torch.empty_like(g_u)
        mask = torch.empty_like(g_u, dtype=torch.bool)
        slots = [torch.empty_like(g_u) for _ in range(self.interval - 1)]
        g_x = torch.zeros_like(ys[0])  # dL/dx(t+1) from step t + 1
        for seg in reversed(range(math.ceil(steps / self.interval))):
            start, stop = seg * self.interval, min(steps, (seg + 1) * self.interval)
            us = [snaps[seg - 1] if seg else h, *slots]  # us[k] = U(start + k)
            self.replay(start, stop, xs, ys, us, h)
            for t in reversed(range(start, stop)):
                gy = torch.add(grad[t], g_x, out=None if g_y is None else g_y[t])
                tanh_at = None if free is None else free[t]
                if t == 0:  # x(0) = 0 and H(0) = 0: only the drive's gradient is left
                    self.tanh_backward(gy, ys[t], tanh_at, g_pre[t])
                    continue
                u = us[t - start]
                trace = torch.clamp(u, -self.clip, self.clip, out=h)
                g_x = self.step(
                    t, steps, trace, xs[t], ys[t], gy, g_u, tmp, acc, g_pre[t], g_eta, tanh_at
                )
                if t > 1:  # dL/dU(t): the clamp passes the gradient only where U = H
                    torch.ne(trace, u, out=mask)
                    g_u.masked_fill_(mask, 0)

    def step(
        self,
        t: int,
        steps: int,
        h: Tensor,
        x: Tensor,
        y: Tensor,
        gy: Tensor,
        g_u: Tensor,
        tmp: Tensor,
        acc: Tensor | None,
        g_pre: Tensor,
        g_eta: Tensor,
        free: Tensor | None,
    ) -> Tensor:
        """Backward of step t >= 1 (h = H(t); x, y, gy = dL/dy: (b, N)); returns dL/dx(t).
        Writes dL/dpre into g_pre and turns g_u from dL/dU(t+1) into dL/dH(t) (t >= 2).
        gy is updated in place to the step's total dL/dy."""
        eta = self.eta
        update = t < steps - 1  # the last step's update is never used, and was not made
        if update:
            v = torch.bmm(x.unsqueeze(1), g_u).squeeze(1)  # (b, N): sum_i x_i G_ij
            g_x_update = torch.bmm(g_u, y.unsqueeze(2)).squeeze(2)  # (b, N): sum_j G_ij y_j
            col = torch.mul(h, g_u, out=tmp).sum(1)  # (b, N): sum_i H_ij G_ij
            gy.add_(v, alpha=eta)
            if self.rule.constant is not None:  # dU/deta = x ⊗ y - s H
                g_eta += (y * v).sum() - self.rule.constant * col.sum()
            else:  # dU/deta = x ⊗ y - H diag(s(y)), dU/dy_j = eta x - eta s'(y_j) H[:, j]
                gy.addcmul_(self.rule.shrink_slope(y), col, value=-eta)
                g_eta += (y * v).sum() - (self.rule.shrink(y) * col).sum()
        self.tanh_backward(gy, y, free, g_pre)
        g_x = g_pre @ self.w.T  # (b, N)
        if update:
            g_x.add_(g_x_update, alpha=eta)
        if acc is not None:  # per-connection alpha
            torch.mul(h, self.alpha, out=tmp)
            g_x.unsqueeze(2).baddbmm_(tmp, g_pre.unsqueeze(2))  # += (alpha * H) @ dL/dpre
            torch.mul(x.unsqueeze(2), g_pre.unsqueeze(1), out=tmp)  # (b, N, N): x ⊗ dL/dpre
            acc.addcmul_(tmp, h)
            if t > 1:
                if update:
                    g_u.mul_(self.decay(y))
                g_u.addcmul_(tmp, self.alpha)
        else:
            a_g = self.alpha * g_pre  # (b, N): alpha_j dL/dpre_j
            g_x.unsqueeze(2).baddbmm_(h, a_g.unsqueeze(2))
            if t > 1:
                if update:
                    g_u.mul_(self.decay(y))
                g_u.addcmul_(x.unsqueeze(2), a_g.unsqueeze(1))
        return g_x

    @staticmethod
    def tanh_backward(gy: Tensor, y: Tensor, free: Tensor | None, g_pre: Tensor) -> None:
        """dL/dpre = dL/dy tanh'(pre) into g_pre; 0 where clamp mode holds y at the drive."""
        torch.mul(gy, 1 - y * y, out=g_pre)
        if free is not None:
            g_pre.mul_(free)

    def replay(
        self, start: int, stop: int, xs: Tensor, ys: Tensor, us: list[Tensor], h: Tensor
    ) -> None:
        """us[k] = U(start + k), k >= 1, from us[0] = U(start), with the forward pass's ops."""
        for t in range(start + 1, stop):
            if t <= 2:  # U(1) = 0 (x(0) = 0); U(2) from H(1) = 0
                us[t - start].zero_()
                if t == 2:
                    self.advance(us[t - start], us[t - start], xs[1], ys[1])
                continue
            torch.clamp(us[t - start - 1], -self.clip, self.clip, out=h)
            self.advance(h, us[t - start], xs[t - 1], ys[t - 1])


class ClippedFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        drive: Tensor,
        w: Tensor,
        alpha: Tensor,
        eta: Tensor,
        rule: DecayRule,
        clip: float,
        clamp: bool,
        interval: int,
        chunk: int,
    ) -> Tensor:
        steps, batch, n = drive.shape
        ep = ClippedEpisode(w, alpha, eta, rule, clip, clamp, interval)
        ys = torch.empty_like(drive)
        zs = None if ep.connection else torch.empty_like(drive)
        snaps = drive.new_empty((steps - 1) // ep.interval, batch, n, n)
        for b in range(0, batch, chunk):
            c = slice(b, b + chunk)
            ep.forward(drive[:, c], ys[:, c], None if zs is None else zs[:, c], snaps[:, c])
        ctx.ep, ctx.chunk, ctx.factored = ep, chunk, zs is not None
        clamped = [drive] if clamp else []  # its mask, drive != 0, is remade in backward
        ctx.save_for_backward(ys, snaps, *([] if zs is None else [zs]), *clamped)
        return ys

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        ep: ClippedEpisode = ctx.ep
        ys, snaps, *extra = ctx.saved_tensors
        zs = extra.pop(0) if ctx.factored else None  # x @ H when alpha factors out
        free = extra[0] == 0 if extra else None  # clamp mode: where y = tanh(pre)
        g_y = torch.empty_like(ys) if free is not None and ctx.needs_input_grad[0] else None
        batch, n = ys.shape[1:]
        g_pre = torch.empty_like(ys)
        g_alpha = torch.zeros_like(ep.alpha)
        g_eta = ys.new_zeros(())
        for b in range(0, batch, ctx.chunk):
            c = slice(b, b + ctx.chunk)
            size = ys[0, c].shape[0]
            acc = None  # dL/dalpha per batch element of the chunk; g_alpha itself for one
            if ep.connection:
                acc = g_alpha.unsqueeze(0) if size == 1 else ys.new_zeros(size, n, n)
            ep.backward(
                grad[:, c],
                ys[:, c],
                snaps[:, c],
                g_pre[:, c],
                acc,
                g_eta,
                None if free is None else free[:, c],
                None if g_y is None else g_y[:, c],
            )
            if acc is not None and size > 1:
                g_alpha += acc.sum(0)
        xs = torch.cat([torch.zeros_like(ys[:1]), ys[:-1]]).reshape(-1, n)
        g_w = xs.T @ g_pre.reshape(-1, n)  # sum over steps and batch of x ⊗ dL/dpre
        if zs is not None:  # alpha factors out: sum of dL/dpre * x @ H
            g_alpha = (g_pre * zs).sum_to_size(ep.alpha.shape)
        g_eta_out = g_eta if ctx.needs_input_grad[3] else None
        g_drive = g_pre if ctx.needs_input_grad[0] else None
        if free is not None and g_y is not None:
            # the drive is in pre everywhere and is y where it clamps (there dL/dpre = 0)
            g_drive = torch.where(free, g_pre, g_y)
        return (g_drive, g_w, g_alpha, g_eta_out, None, None, None, None, None)
