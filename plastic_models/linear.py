"""Fast plastic episodes with a linear trace update: every rule without clipping (see episode.py).

The update U(t+1) = H(t) diag(d(t)) + eta x(t) ⊗ y(t), d = 1 - eta (hebb) or 1 - eta y^2 (oja),
is linear in the trace, so inside a segment of L <= K steps from c the trace is its snapshot,
column-scaled, plus a low-rank sum over the segment's activations (the chunkwise form of linear
attention). With F[i, j] = d(i)...d(j-1) (steps relative to c) and A = alpha (per connection;
all ones when alpha factors out, per neuron or scalar):

    H(c+k)   = H(c) diag(F[0, k]) + sum_{q<k} x(q) ⊗ eta y(q) F[q+1, k]
    G(c+k+1) = G(c+L) diag(F[k+1, L]) + A ∘ sum_{s>k} x(s) ⊗ a(s) F[k+1, s]

where G = dL/dU and a(s) = dL/dpre(s) (times alpha when it factors out). No step's trace is
ever formed: each product with one is a product with the snapshot (or G at the segment's end)
plus small GEMMs with A over the segment, and the vectors x(q) @ G and colsum(H(c) ∘ G) are
carried from step to step by recurrences. Stored: activations (T, B, N), a snapshot every K
steps (~sqrt(2 T), see episode.py) and, per connection, (x(s) * x(t)) @ alpha for s < t in a
segment: O(T B N + (T / K) B N^2 + T K B N) memory.

Clamp mode (the image task's inputs): y = where(drive != 0, drive, tanh(pre)), the drive still
added to pre. The trace updates use this y, so the formulas above hold as they are; only
tanh' becomes 0 where the input clamps the neuron (dL/dpre = 0 there), and the drive's
gradient takes dL/dy there. The mask, drive != 0, is recomputed from the drive in backward.

Shapes: T steps, B batch elements, N neurons; b: batch elements of a chunk; L: steps of a
segment. Traces are (b, N, N), indexed [batch, presynaptic i, postsynaptic j]. `states` is
(T + 1, B, N): states[0] = 0 and states[t + 1] = y(t), so x(t) = states[t].
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from plastic_models.rules import DecayRule


def products(d: Tensor) -> Tensor:
    """d (L, ...) -> F (L+1, L+1, ...) with F[i, j] = d[i] * ... * d[j-1] (1 if j <= i)."""
    steps = torch.arange(d.shape[0] + 1, device=d.device)
    after = (steps[:-1] >= steps[:, None]).view(*steps.shape, d.shape[0], *[1] * (d.dim() - 1))
    factors = torch.where(after, d, torch.ones_like(d))  # [i, q]: d[q] if q >= i, else 1
    return torch.cat([torch.ones_like(factors[:, :1]), factors.cumprod(1)], 1)


class LinearEpisode:
    """One episode's parameters and its segment-wise forward and backward passes."""

    def __init__(
        self,
        w: Tensor,
        alpha: Tensor,
        eta: Tensor,
        rule: DecayRule,
        clamp: bool,
        steps: int,
        interval: int,
    ):
        self.w, self.alpha, self.rule, self.clamp = w, alpha, rule, clamp
        self.eta = float(eta.detach())  # constant within an episode: ops stay on scalars
        self.connection = alpha.dim() == 2
        self.interval = interval  # K: steps per segment
        self.segments = math.ceil(steps / interval)

    def bounds(self, seg: int, steps: int) -> tuple[int, int]:
        return seg * self.interval, min(steps, (seg + 1) * self.interval)

    def decay(self, y: Tensor) -> Tensor:
        """d for activations y (L, b, N): (L, b, N), or (L, 1, 1) when the rule's shrink is a
        constant."""
        if self.rule.constant is not None:
            return y.new_full((y.shape[0], 1, 1), 1 - self.eta * self.rule.constant)
        return 1 - self.eta * self.rule.shrink(y)

    def plastic(self, trace: Tensor, out: Tensor | None) -> Tensor:
        """A ∘ H: alpha * H into out per connection, else H itself (alpha factors out)."""
        return trace if out is None else torch.mul(trace, self.alpha, out=out)

    def forward(
        self, drive: Tensor, states: Tensor, zs: Tensor | None, snaps: Tensor, pairs: Tensor | None
    ) -> None:
        """One chunk: drive (T, b, N) -> y(t) into states[t + 1], x @ H into zs (T, b, N) when
        alpha factors out, H at each segment's end into snaps (S, b, N, N) and, per connection,
        (x(s) * x(t)) @ alpha into pairs[segment, t - c, s - c] for s < t."""
        steps, batch, n = drive.shape
        trace: Tensor | None = None  # H(c)
        scaled = drive.new_empty(batch, n, n) if self.connection else None
        later = drive.new_empty(self.interval, batch, n)  # eta y(s) d(s+1)...d(t-1)
        for seg in range(self.segments):
            start, stop = self.bounds(seg, steps)
            known = None if trace is None else self.plastic(trace, scaled)  # (b, N, N)
            xs = states[start:stop]  # (L, b, N)
            constant = self.rule.constant is not None
            f0 = drive.new_ones(1, 1) if constant else drive.new_ones(batch, n)  # F[0, k]
            for k, t in enumerate(range(start, stop)):
                x = xs[k]
                pre = torch.addmm(drive[t], x, self.w)  # (b, N)
                z = pre if zs is None else zs[t]  # what alpha multiplies
                if zs is not None:
                    z.zero_()
                if known is not None:
                    z.addcmul_(torch.bmm(x[:, None], known)[:, 0], f0)
                if k and pairs is not None:
                    m = pairs[seg, k, :k]  # (k, b, N), strided when b is a chunk of B
                    m.copy_(torch.mm((xs[:k] * x).view(-1, n), self.alpha).view_as(m))
                    z += torch.linalg.vecdot(later[:k], m, dim=0)
                elif k:
                    z += (later[:k] * (xs[:k] * x).sum(-1, keepdim=True)).sum(0)
                if zs is not None:
                    pre.addcmul_(z, self.alpha)
                y = torch.tanh(pre, out=states[t + 1])
                if self.clamp:  # where(drive != 0, drive, y) = y * (drive == 0) + drive
                    y.mul_(drive[t] == 0).add_(drive[t])
                c = self.rule.constant
                d = 1 - self.eta * c if c is not None else 1 - self.eta * self.rule.shrink(y)
                later[:k] *= d
                torch.mul(y, self.eta, out=later[k])
                f0 = f0 * d
            if stop < steps:  # H(stop) = H(c) diag(f0) + sum_s x(s) ⊗ later(s)
                out, cols, rows = snaps[seg], xs.permute(1, 2, 0), later[: stop - start]
                if trace is None:
                    torch.bmm(cols, rows.transpose(0, 1), out=out)
                else:
                    torch.mul(trace, f0[..., None, :], out=out).baddbmm_(cols, rows.transpose(0, 1))
                trace = out

    def backward(
        self,
        grad: Tensor,
        states: Tensor,
        snaps: Tensor,
        pairs: Tensor | None,
        g_pre: Tensor,
        g_alpha: Tensor,
        g_eta: Tensor,
        free: Tensor | None,
        g_y: Tensor | None,
    ) -> None:
        """One chunk, last segment first: dL/dy (T, b, N) -> dL/dpre into g_pre (T, b, N);
        adds dL/dalpha (per connection) into g_alpha and dL/deta into g_eta. Clamp mode: free
        (T, b, N) is drive == 0, where tanh' counts; the total dL/dy goes into g_y if given."""
        steps, batch, n = grad.shape
        g_u = grad.new_zeros(batch, n, n)  # G at the current segment's end
        scratch = torch.empty_like(g_u) if self.connection else None  # holds alpha * H(c)
        g_x = torch.zeros_like(grad[0])  # dL/dx(t+1) from step t + 1
        for seg in reversed(range(self.segments)):
            start, stop = self.bounds(seg, steps)
            trace = snaps[seg - 1] if seg else None
            mask = None if free is None else free[start:stop]
            part = Segment(self, states, start, stop, trace, g_u, scratch, g_pre[start:stop], mask)
            for k in reversed(range(stop - start)):
                gy = torch.add(grad[start + k], g_x, out=None if g_y is None else g_y[start + k])
                g_x = part.step(k, gy, g_pre[start + k], None if pairs is None else pairs[seg])
            part.finish(g_pre[start:stop], g_alpha, g_eta, carry=seg > 0)


class Segment:
    """The backward pass through the steps c..c+L-1 of one segment (formulas: module doc).

    Carried from step k to k - 1: v[q] = x(q) @ G(c+k+1) for q <= k (its row k is final once
    step k is done) and hg = colsum(H(c) ∘ G(c+k+1)).
    """

    def __init__(
        self,
        ep: LinearEpisode,
        states: Tensor,
        start: int,
        stop: int,
        trace: Tensor | None,
        g_u: Tensor,
        scratch: Tensor | None,
        g_pre: Tensor,
        free: Tensor | None,
    ):
        self.ep, self.start, self.trace, self.g_u, self.scratch = ep, start, trace, g_u, scratch
        eta, length = ep.eta, stop - start
        self.xs, self.ys = states[start:stop], states[start + 1 : stop + 1]  # (L, b, N)
        self.d = ep.decay(self.ys)
        self.f = products(self.d)  # (L+1, L+1, b or 1, N or 1)
        after = self.f[1:, :length]  # after[k, s] = F[k+1, s]
        self.early = eta * after.transpose(0, 1) * self.ys[None]  # [k, q]: eta y(q) F[q+1, k]
        upper = torch.ones(length, length, dtype=torch.bool, device=after.device).triu(1)
        later = upper.view(length, length, *[1] * (after.dim() - 2))
        self.late = (eta * after * self.ys[:, None]).masked_fill_(~later, 0)  # [k, s], 0 if s <= k
        self.slope = 1 - self.ys * self.ys  # tanh'
        if free is not None:  # clamp mode: y = drive, not tanh(pre), where drive != 0
            self.slope.mul_(free)
        # a(s), filled from the last step: dL/dpre itself per connection
        self.a = g_pre if ep.connection else torch.empty_like(self.ys)
        self.col = torch.zeros_like(self.ys)  # colsum(H(t) ∘ G(t+1))
        self.cols = torch.empty_like(self.ys)
        self.hg = torch.zeros_like(self.ys[0])
        self.gy_known = None  # eta G(c+L) (F[k+1, L] * y(k)), (L, b, N)
        x_rows = self.xs.transpose(0, 1)  # (b, L, N)
        if stop == states.shape[0] - 1:  # G = 0 after the last step: its update is never used
            self.v = torch.zeros_like(self.ys)
        else:
            self.v = torch.bmm(x_rows, g_u).transpose(0, 1).contiguous()
            weights = self.f[1:, length] * self.ys * eta  # (L, b, N)
            self.gy_known = torch.bmm(g_u, weights.permute(1, 2, 0)).permute(2, 0, 1)
            if trace is not None:
                self.hg = torch.mul(trace, g_u, out=scratch).sum(1)
        self.known = None if trace is None else ep.plastic(trace, scratch)  # A ∘ H(c)
        self.xk = None if self.known is None else torch.bmm(x_rows, self.known).transpose(0, 1)

    def step(self, k: int, gy: Tensor, g_pre: Tensor, pairs: Tensor | None) -> Tensor:
        """Backward of step c + k given gy = dL/dy (b, N); returns dL/dx of the step."""
        ep, eta, f = self.ep, self.ep.eta, self.f
        if self.start + k == 0:  # x(0) = 0 and H(0) = 0: only the drive's gradient is left
            torch.mul(gy, self.slope[k], out=g_pre)
            return torch.zeros_like(gy)
        seen = torch.linalg.vecdot(self.early[k, :k], self.v[:k], dim=0)
        col = torch.addcmul(seen, self.hg, f[0, k], out=self.col[k])
        gy = gy.add_(self.v[k], alpha=eta)  # dU/dy_j = eta x - eta s'(y_j) H[:, j]
        if ep.rule.constant is None:
            gy.addcmul_(ep.rule.shrink_slope(self.ys[k]), col, value=-eta)
        gp = torch.mul(gy, self.slope[k], out=g_pre)
        a = gp if ep.connection else torch.mul(gp, ep.alpha, out=self.a[k])
        if self.gy_known is not None:  # + eta G(c+L) (F[k+1, L] * y)
            g_x = torch.addmm(self.gy_known[k], gp, ep.w.T)  # (b, N)
        else:
            g_x = gp @ ep.w.T
        if self.known is not None:  # (A ∘ H(c) diag(F[0, k])) a
            g_x.unsqueeze(2).baddbmm_(self.known, (f[0, k] * a).unsqueeze(2))
        # low-rank parts: eta G(t+1) y(t) from s > k, and (A ∘ H(t)) a from q < k
        cols = self.cols
        torch.mul(self.a[k:], self.late[k, k:], out=cols[k:])  # row k: 0
        torch.mul(self.early[k, :k], a, out=cols[:k])
        if ep.connection:
            spread = (cols.view(-1, cols.shape[-1]) @ ep.alpha.T).view_as(cols)
            g_x += torch.linalg.vecdot(self.xs, spread, dim=0)
        else:
            g_x += torch.linalg.vecdot(self.xs, cols.sum(-1, keepdim=True), dim=0)
        # G(t) = G(t+1) diag(d(t)) + A ∘ x(t) ⊗ a(t), seen through x(q), q < k, and H(c)
        inner = pairs[k, :k] if pairs is not None else (self.xs[:k] * self.xs[k]).sum(-1, True)
        self.v[:k].mul_(self.d[k]).addcmul_(inner, a)
        if self.xk is not None:
            self.hg.mul_(self.d[k]).addcmul_(self.xk[k], a)
        return g_x

    def finish(self, g_pre: Tensor, g_alpha: Tensor, g_eta: Tensor, carry: bool) -> None:
        """After the segment's steps: dL/deta, dL/dalpha from its traces, and, if carry, G at
        the segment's end -> G at its start."""
        ep, f, length, y = self.ep, self.f, self.ys.shape[0], self.ys
        if ep.rule.constant is not None:  # dU/deta = x ⊗ y - s H
            g_eta += (y * self.v).sum() - ep.rule.constant * self.col.sum()
        else:  # dU/deta = x ⊗ y - H diag(s(y))
            g_eta += (y * self.v).sum() - (ep.rule.shrink(y) * self.col).sum()
        x_cols = self.xs.permute(1, 2, 0)  # (b, N, L)
        if ep.connection:
            if self.trace is not None:  # H(c) ∘ sum_k x(k) ⊗ F[0, k] a(k)
                rows = (f[0, :length] * g_pre).transpose(0, 1)  # (b, L, N)
                g_alpha += torch.bmm(x_cols, rows, out=self.scratch).mul_(self.trace).sum(0)
            q, k = torch.triu_indices(length, length, 1, device=y.device)  # pairs q < k
            inner = (self.xs[q] * self.xs[k]).view(-1, y.shape[-1])
            g_alpha.addmm_(inner.T, (self.early[k, q] * g_pre[k]).view_as(inner))
        if not carry:
            return
        self.g_u.mul_(f[0, length].unsqueeze(-2))
        rows = (self.a * f[0, :length]).transpose(0, 1)  # (b, L, N)
        if ep.connection:
            self.g_u.addcmul_(torch.bmm(x_cols, rows, out=self.scratch), ep.alpha)
        else:
            self.g_u.baddbmm_(x_cols, rows)


class LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        drive: Tensor,
        w: Tensor,
        alpha: Tensor,
        eta: Tensor,
        rule: DecayRule,
        clamp: bool,
        interval: int,
        chunk: int,
    ) -> Tensor:
        steps, batch, n = drive.shape
        ep = LinearEpisode(w, alpha, eta, rule, clamp, steps, interval)
        states = drive.new_empty(steps + 1, batch, n)
        states[0] = 0
        zs = None if ep.connection else torch.empty_like(drive)
        snaps = drive.new_empty(ep.segments - 1, batch, n, n)
        k = ep.interval
        pairs = drive.new_empty(ep.segments, k, k, batch, n) if ep.connection else None
        for b in range(0, batch, chunk):
            c = slice(b, b + chunk)
            ep.forward(
                drive[:, c],
                states[:, c],
                None if zs is None else zs[:, c],
                snaps[:, c],
                None if pairs is None else pairs[..., c, :],
            )
        ctx.ep, ctx.chunk = ep, chunk
        clamped = [drive] if clamp else []  # its mask, drive != 0, is remade in backward
        ctx.save_for_backward(states, snaps, zs if pairs is None else pairs, *clamped)
        return states[1:]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        ep: LinearEpisode = ctx.ep
        states, snaps, extra, *clamped = ctx.saved_tensors
        pairs = extra if ep.connection else None
        batch, n = grad.shape[1:]
        g_pre = torch.empty_like(grad)
        free = clamped[0] == 0 if clamped else None  # clamp mode: where y = tanh(pre)
        g_y = torch.empty_like(grad) if ep.clamp and ctx.needs_input_grad[0] else None
        g_alpha = torch.zeros_like(ep.alpha)
        g_eta = grad.new_zeros(())
        for b in range(0, batch, ctx.chunk):
            c = slice(b, b + ctx.chunk)
            ep.backward(
                grad[:, c],
                states[:, c],
                snaps[:, c],
                None if pairs is None else pairs[..., c, :],
                g_pre[:, c],
                g_alpha,
                g_eta,
                None if free is None else free[:, c],
                None if g_y is None else g_y[:, c],
            )
        xs = states[:-1].reshape(-1, n)
        g_w = xs.T @ g_pre.reshape(-1, n)  # sum over steps and batch of x ⊗ dL/dpre
        if not ep.connection:  # alpha factors out: sum of dL/dpre * x @ H
            g_alpha = (g_pre * extra).sum_to_size(ep.alpha.shape)
        g_eta_out = g_eta if ctx.needs_input_grad[3] else None
        g_drive = g_pre if ctx.needs_input_grad[0] else None
        if free is not None and g_y is not None:
            # the drive is in pre everywhere and is y where it clamps (there dL/dpre = 0)
            g_drive = torch.where(free, g_pre, g_y)
        return (g_drive, g_w, g_alpha, g_eta_out, None, None, None, None)
