"""The linear kernel: every rule without clipping, no step's trace formed (driver.py drives it).

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
steps (~sqrt(2 T), see driver.py) and, per connection, (x(s) * x(t)) @ alpha for s < t in a
segment: O(T B N + (T / K) B N^2 + T K B N) memory.

Clamp mode: the trace updates use the clamped y, so the formulas above hold as they are; only
tanh' becomes 0 where the input clamps the neuron (dL/dpre = 0 there).
L: steps of a segment.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from plastic_models.fast.driver import Chunk, Grads, Kernel, Layout, Plan, Segment, activate


def products(d: Tensor) -> Tensor:
    """d (L, ...) -> F (L+1, L+1, ...) with F[i, j] = d[i] * ... * d[j-1] (1 if j <= i)."""
    steps = torch.arange(d.shape[0] + 1, device=d.device)
    after = (steps[:-1] >= steps[:, None]).view(*steps.shape, d.shape[0], *[1] * (d.dim() - 1))
    factors = torch.where(after, d, torch.ones_like(d))  # [i, q]: d[q] if q >= i, else 1
    return torch.cat([torch.ones_like(factors[:, :1]), factors.cumprod(1)], 1)


class Linear(Kernel):
    replays = False  # keeps no step's trace: fewer, longer segments
    alpha_by_element = False  # dL/dalpha per connection comes from GEMMs over the whole chunk

    def layout(self, plan: Plan) -> Layout:
        """Per connection, (x(s) * x(t)) @ alpha for s < t in a segment, (S, K, K, B, N)."""
        if not self.connection:
            return {}
        k = plan.interval
        return {"pairs": ((plan.segments, k, k, plan.batch, plan.n), 3)}

    def decay(self, y: Tensor) -> Tensor:
        """d for activations y (L, b, N): (L, b, N), or (L, 1, 1) when the rule's shrink is a
        constant (members: (L, b, 1))."""
        if self.rule.constant is not None:
            if isinstance(self.eta, Tensor):
                return (1 - self.eta * self.rule.constant).expand(y.shape[0], -1, -1)
            return y.new_full((y.shape[0], 1, 1), 1 - self.eta * self.rule.constant)
        return 1 - self.eta * self.rule.shrink(y)

    def plastic(self, trace: Tensor, out: Tensor | None) -> Tensor:
        """A ∘ H: alpha * H into out per connection, else H itself (alpha factors out)."""
        return trace if out is None else self.times_alpha(trace, out)

    def forward(self, plan: Plan, drive: Tensor, c: Chunk, segs: Iterable[Segment]) -> None:
        """y(t) into states[t + 1], x @ H into zs when alpha factors out, H at each segment's end
        into its snapshot and, per connection, (x(s) * x(t)) @ alpha into pairs."""
        batch, n = drive.shape[1:]
        states, zs, all_pairs = c.states, c.zs, c.extra.get("pairs")
        trace: Tensor | None = None  # H(c)
        scaled = drive.new_empty(batch, n, n) if self.connection else None
        later = drive.new_empty(plan.interval, batch, n)  # eta y(s) d(s+1)...d(t-1)
        constant = self.rule.constant
        for seg in segs:
            start, stop = seg.start, seg.stop
            pairs = None if all_pairs is None else all_pairs[seg.index]
            known = None if trace is None else self.plastic(trace, scaled)  # (b, N, N)
            xs = states[start:stop]  # (L, b, N)
            if constant is None:
                f0 = drive.new_ones(batch, n)
            else:  # a constant shrink: one for all (members: one per batch element)
                f0 = drive.new_ones(1, 1) if self.members is None else drive.new_ones(batch, 1)
            for k, t in enumerate(range(start, stop)):  # f0 = F[0, k]
                x = xs[k]
                pre = self.times_w(x, drive[t])  # (b, N)
                z = pre if zs is None else zs[t]  # what alpha multiplies
                if zs is not None:
                    z.zero_()
                if known is not None:
                    z.addcmul_(torch.bmm(x[:, None], known)[:, 0], f0)
                if k and pairs is not None:
                    m = pairs[k, :k]  # (k, b, N), strided when b is a chunk of B
                    m.copy_(self.mm_alpha(xs[:k] * x))
                    z += torch.linalg.vecdot(later[:k], m, dim=0)
                elif k:
                    z += (later[:k] * (xs[:k] * x).sum(-1, keepdim=True)).sum(0)
                if zs is not None:
                    pre.addcmul_(z, self.alpha)
                y = activate(pre, drive[t], states[t + 1], self.clamp)
                shrink = constant if constant is not None else self.rule.shrink(y)
                d = 1 - self.eta * shrink
                later[:k] *= d
                torch.mul(y, self.eta, out=later[k])  # members: eta (b, 1)
                f0 = f0 * d
            if seg.snap is not None:  # H(stop) = H(c) diag(f0) + sum_s x(s) ⊗ later(s)
                out, cols, rows = seg.snap, xs.permute(1, 2, 0), later[: stop - start]
                if trace is None:
                    torch.bmm(cols, rows.transpose(0, 1), out=out)
                else:
                    torch.mul(trace, f0[..., None, :], out=out).baddbmm_(cols, rows.transpose(0, 1))
                trace = out

    def backward(self, plan: Plan, c: Chunk, g: Grads) -> LinearBackward:
        return LinearBackward(self, plan, c, g)


class LinearBackward:
    """One chunk's backward pass through the steps c..c+L-1 of each segment (formulas: module
    doc). g_u: G at the current segment's end. Carried from step k to k - 1 within a segment:
    v[q] = x(q) @ G(c+k+1) for q <= k (its row k is final once step k is done) and
    hg = colsum(H(c) ∘ G(c+k+1))."""

    def __init__(self, kernel: Linear, plan: Plan, c: Chunk, g: Grads):
        self.ep, self.states, self.g, self.steps = kernel, c.states, g, plan.steps
        self.all_pairs = c.extra.get("pairs")
        self.g_u = c.states.new_zeros(c.states.shape[1], plan.n, plan.n)
        self.scratch = torch.empty_like(self.g_u) if kernel.connection else None  # A ∘ H(c)

    def enter(self, seg: Segment) -> None:
        ep, eta, g_u, scratch, trace = self.ep, self.ep.eta, self.g_u, self.scratch, seg.snap
        start, stop, length = seg.start, seg.stop, seg.stop - seg.start
        self.start, self.trace = start, trace
        self.pairs = None if self.all_pairs is None else self.all_pairs[seg.index]
        self.xs, self.ys = self.states[start:stop], self.states[start + 1 : stop + 1]  # (L, b, N)
        self.d = ep.decay(self.ys)
        self.f = products(self.d)  # (L+1, L+1, b or 1, N or 1)
        after = self.f[1:, :length]  # after[k, s] = F[k+1, s]
        self.early = eta * after.transpose(0, 1) * self.ys[None]  # [k, q]: eta y(q) F[q+1, k]
        upper = torch.ones(length, length, dtype=torch.bool, device=after.device).triu(1)
        later = upper.view(length, length, *[1] * (after.dim() - 2))
        self.late = (eta * after * self.ys[:, None]).masked_fill_(~later, 0)  # [k, s], 0 if s <= k
        self.slope = 1 - self.ys * self.ys  # tanh'
        if self.g.free is not None:  # clamp mode: y = drive, not tanh(pre), where drive != 0
            self.slope.mul_(self.g.free[start:stop])
        # a(s), filled from the last step: dL/dpre itself per connection
        g_pre = self.g.g_pre[start:stop]
        self.a = g_pre if ep.connection else torch.empty_like(self.ys)
        self.col = torch.zeros_like(self.ys)  # colsum(H(t) ∘ G(t+1))
        self.cols = torch.empty_like(self.ys)
        self.hg = torch.zeros_like(self.ys[0])
        self.gy_known: Tensor | None = None  # eta G(c+L) (F[k+1, L] * y(k)), (L, b, N)
        x_rows = self.xs.transpose(0, 1)  # (b, L, N)
        if stop == self.steps:  # G = 0 after the last step: its update is never used
            self.v = torch.zeros_like(self.ys)
        else:
            self.v = torch.bmm(x_rows, g_u).transpose(0, 1).contiguous()
            weights = self.f[1:, length] * self.ys * eta  # (L, b, N)
            self.gy_known = torch.bmm(g_u, weights.permute(1, 2, 0)).permute(2, 0, 1)
            if trace is not None:
                self.hg = torch.mul(trace, g_u, out=scratch).sum(1)
        self.known = None if trace is None else ep.plastic(trace, scratch)  # A ∘ H(c)
        self.xk = None if self.known is None else torch.bmm(x_rows, self.known).transpose(0, 1)

    def step(self, t: int, gy: Tensor) -> Tensor:
        ep, f, k = self.ep, self.f, t - self.start
        seen = torch.linalg.vecdot(self.early[k, :k], self.v[:k], dim=0)
        col = torch.addcmul(seen, self.hg, f[0, k], out=self.col[k])
        ep.add_eta(gy, self.v[k])  # dU/dy_j = eta x - eta s'(y_j) H[:, j]
        if ep.rule.constant is None:
            ep.add_eta(gy, ep.rule.shrink_slope(self.ys[k]), col, sign=-1)
        gp = torch.mul(gy, self.slope[k], out=self.g.g_pre[t])
        a = gp if ep.connection else torch.mul(gp, ep.alpha, out=self.a[k])
        known = None if self.gy_known is None else self.gy_known[k]
        g_x = ep.times_wt(gp, known)  # (b, N), + eta G(c+L) (F[k+1, L] * y) if known
        if self.known is not None:  # (A ∘ H(c) diag(F[0, k])) a
            g_x.unsqueeze(2).baddbmm_(self.known, (f[0, k] * a).unsqueeze(2))
        # low-rank parts: eta G(t+1) y(t) from s > k, and (A ∘ H(t)) a from q < k
        cols = self.cols
        torch.mul(self.a[k:], self.late[k, k:], out=cols[k:])  # row k: 0
        torch.mul(self.early[k, :k], a, out=cols[:k])
        if ep.connection:
            spread = ep.mm_alpha(cols, transpose=True)
            g_x += torch.linalg.vecdot(self.xs, spread, dim=0)
        else:
            g_x += torch.linalg.vecdot(self.xs, cols.sum(-1, keepdim=True), dim=0)
        # G(t) = G(t+1) diag(d(t)) + A ∘ x(t) ⊗ a(t), seen through x(q), q < k, and H(c)
        pairs = self.pairs
        inner = pairs[k, :k] if pairs is not None else (self.xs[:k] * self.xs[k]).sum(-1, True)
        self.v[:k].mul_(self.d[k]).addcmul_(inner, a)
        if self.xk is not None:
            self.hg.mul_(self.d[k]).addcmul_(self.xk[k], a)
        return g_x

    def leave(self, seg: Segment) -> None:
        """dL/deta, dL/dalpha from the segment's traces, and, if a segment comes before it, G
        at the segment's end -> G at its start."""
        ep, f, y, g_eta, g_alpha = self.ep, self.f, self.ys, self.g.eta, self.g.alpha
        length, g_pre = y.shape[0], self.g.g_pre[seg.start : seg.stop]
        if ep.rule.constant is not None:  # dU/deta = x ⊗ y - s H
            g_eta += ep.total(y * self.v, 1) - ep.rule.constant * ep.total(self.col, 1)
        else:  # dU/deta = x ⊗ y - H diag(s(y))
            g_eta += ep.total(y * self.v, 1) - ep.total(ep.rule.shrink(y) * self.col, 1)
        x_cols = self.xs.permute(1, 2, 0)  # (b, N, L)
        if g_alpha is not None:  # per connection
            if self.trace is not None:  # H(c) ∘ sum_k x(k) ⊗ F[0, k] a(k)
                rows = (f[0, :length] * g_pre).transpose(0, 1)  # (b, L, N)
                g_alpha += ep.batch_sum(torch.bmm(x_cols, rows, out=self.scratch).mul_(self.trace))
            q, k = torch.triu_indices(length, length, 1, device=y.device)  # pairs q < k
            ep.add_outer(g_alpha, self.xs[q] * self.xs[k], self.early[k, q] * g_pre[k])
        if seg.index == 0:
            return
        self.g_u.mul_(f[0, length].unsqueeze(-2))
        rows = (self.a * f[0, :length]).transpose(0, 1)  # (b, L, N)
        if ep.connection:
            ep.add_times_alpha(self.g_u, torch.bmm(x_cols, rows, out=self.scratch))
        else:
            self.g_u.baddbmm_(x_cols, rows)
