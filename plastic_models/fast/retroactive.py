"""The retroactive-modulation kernel (Backpropamine, Miconi et al. 2019): two traces, a
segment's steps replayed from their snapshots, in the style of clipped.py (driver.py drives it).

Each step t, in the reference code's order, from PW(t) = clamp(U(t-1)) and the eligibility
trace E(t) (both zero at t = 0), with x = y(t-1) (0 at t = 0):

    y(t)     = tanh(drive(t) + x @ (w + alpha * PW(t)))    (clamp mode: the drive where != 0)
    m(t)     = tanh(v . y(t) + b);  M(t) = m(t), or fw * m(t) + fb per postsynaptic neuron
    U(t)     = PW(t) + M(t) * E(t)                          PW(t+1) = clamp(U(t), -clip, clip)
    E(t+1)   = E(t) diag(d(t)) + eta_E x ⊗ y(t)             d = 1 - eta_E s(y): the rule's decay

The forward pass leaves (U, E) in a snapshot every K ~ sqrt(T) steps and keeps the activations
and M(t) of every step; the backward pass replays one segment from its snapshots with the
forward pass's own elementwise ops (bit-identical, so the clamp's mask is exact), keeping its
K pairs of traces, and applies the gradients step by step in reverse. With G_P = dL/dU(t) (the
clamp's mask applied) and G_E = dL/dE(t+1):

    dL/dM(t)_j  = sum_i G_P[i, j] E(t)[i, j]     (summed over j without fanout)
    dL/dE(t)    = G_E diag(d(t)) + M(t) * G_P
    dL/dPW(t)   = G_P + alpha * (x ⊗ dL/dpre(t))
    dL/dy(t)   += eta_E x @ G_E - eta_E s'(y) colsum(E ∘ G_E) + dL/ds(t) v
    dL/dx      += eta_E G_E @ y(t) + dL/dpre @ (w + alpha * PW(t))^T
    dL/deta_E  += sum(G_E ∘ (x ⊗ y - E diag(s(y))))

Memory: O(T B N + (T / K + K) B N^2), as clipped.py (two traces instead of one).
P is N with fanout, else 1.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from plastic_models.fast.driver import (
    Chunk,
    Grads,
    Kernel,
    Layout,
    Plan,
    Segment,
    Stepwise,
    activate,
    dot,
    tanh_backward,
)
from plastic_models.modulation import Neuromodulator


class Retroactive(Stepwise):
    """params: the modulator's v (1, N) and b (1,), then fanout's (N, 1) and (N,) if any."""

    @staticmethod
    def inputs_of(
        w: Tensor, alpha: Tensor, eta: Tensor, modulator: Neuromodulator
    ) -> tuple[Tensor, ...]:
        fanout = modulator.fanout
        source = (w, alpha, eta, modulator.source.weight, modulator.source.bias)
        return source if fanout is None else (*source, fanout.weight, fanout.bias)

    def part(self, c: slice, per: int | None) -> Kernel:
        """Members: the chunk's members' v (m, 1, N), b (m, 1) and fanout's (m, N, 1), (m, N)."""
        part = super().part(c, per)
        if part is not self:
            part.params = tuple(p[part.whole] for p in self.params)
        return part

    @property
    def v(self) -> Tensor:
        return self.params[0]

    @property
    def b(self) -> Tensor:
        return self.params[1]

    @property
    def fanout(self) -> tuple[Tensor, Tensor] | None:
        return None if len(self.params) == 2 else (self.params[2], self.params[3])

    def times_fanout(self, g_m: Tensor) -> Tensor:
        """dL/dm0 (b, 1) from dL/dM (b, N) through M = fw m0 + fb."""
        assert self.fanout is not None
        if self.members is None:
            return g_m @ self.fanout[0]
        by = (self.count, self.per, -1)
        return torch.bmm(g_m.view(by), self.fanout[0]).view(-1, 1)

    def add_times_v(self, gy: Tensor, g_s: Tensor) -> None:
        """gy += dL/ds v, gy (b, N), dL/ds (b, 1)."""
        if self.members is None:
            gy.addmm_(g_s, self.v)
        else:
            by = (self.count, self.per, -1)
            gy.view(by).baddbmm_(g_s.view(by), self.v)

    def snapshot(self, plan: Plan) -> tuple[tuple[int, ...], int]:
        return (2, plan.batch, plan.n, plan.n), 1  # (U(k K - 1), E(k K))

    def layout(self, plan: Plan) -> Layout:
        """m(t) (T, B, 1) and M(t) (T, B, P)."""
        p = plan.n if self.fanout else 1
        return {"m0s": ((plan.steps, plan.batch, 1), 1), "ms": ((plan.steps, plan.batch, p), 1)}

    def grad_layout(self, plan: Plan) -> Layout:
        """dL/dM (T, B, P) and dL/ds, s = v . y + b (T, B, 1)."""
        p = plan.n if self.fanout else 1
        return {"ms": ((plan.steps, plan.batch, p), 1), "s": ((plan.steps, plan.batch, 1), 1)}

    def modulate(self, y: Tensor, m0: Tensor, m: Tensor) -> None:
        """m0 = tanh(v . y + b) (b, 1) and M (b, P) from y (b, N), into the given rows."""
        if self.members is None:
            torch.tanh(torch.addmm(self.b, y, self.v.T), out=m0)
        else:
            by = (self.count, self.per, -1)
            s = torch.baddbmm(self.b.unsqueeze(1), y.view(by), self.v.transpose(1, 2))
            torch.tanh(s.view_as(m0), out=m0)
        if self.fanout is None:
            m.copy_(m0)
        elif self.members is None:
            torch.addmm(self.fanout[1], m0, self.fanout[0].T, out=m)
        else:
            fw, fb = self.fanout
            by = (self.count, self.per, -1)
            m.copy_(torch.baddbmm(fb.unsqueeze(1), m0.view(by), fw.transpose(1, 2)).view_as(m))

    def advance(
        self, h: Tensor, e: Tensor, m: Tensor, u: Tensor, e_out: Tensor, x: Tensor, y: Tensor
    ) -> None:
        """u = U(t) from h = PW(t), e = E(t), M(t) (b, P); e_out = E(t+1) (may be e). The same
        ops in the forward pass and the replay."""
        torch.addcmul(h, m.unsqueeze(1), e, out=u)
        d = self.decay(y)
        if isinstance(d, float) and d == 1.0:  # purely additive: nothing decays
            if e_out is not e:
                e_out.copy_(e)
        else:
            torch.mul(e, d, out=e_out)
        self.add_eta(e_out, x.unsqueeze(2), y.unsqueeze(1))

    def forward(self, plan: Plan, drive: Tensor, c: Chunk, segs: Iterable[Segment]) -> None:
        states, zs, m0s, ms = c.states, c.zs, c.extra["m0s"], c.extra["ms"]
        u = drive.new_zeros(drive.shape[1], plan.n, plan.n)  # U(t-1): PW(t) before the clamp
        e = torch.zeros_like(u)  # E(t)
        h = torch.zeros_like(u)  # PW(t)
        tmp = torch.empty_like(u) if self.connection else None
        for seg in segs:
            for t in range(seg.start, seg.stop):
                x = states[t]
                self.bound(u, h)
                pre = self.times_w(x, drive[t])
                self.read(pre, x, h, tmp, None if zs is None else zs[t])
                y = activate(pre, drive[t], states[t + 1], self.clamp)
                self.modulate(y, m0s[t], ms[t])
                if t < plan.steps - 1:  # the last step's update is never used
                    self.advance(h, e, ms[t], u, e, x, y)
            if seg.snap is not None:
                seg.snap[0].copy_(u)
                seg.snap[1].copy_(e)

    def backward(self, plan: Plan, c: Chunk, g: Grads) -> RetroactiveBackward:
        return RetroactiveBackward(self, plan, c, g)

    def param_grads(
        self, states: Tensor, extra: dict[str, Tensor], grads: dict[str, Tensor]
    ) -> tuple[Tensor | None, ...]:
        g_s, g_ms = grads["s"], grads["ms"]
        g_v = self.steps_sum(g_s * states[1:]).unsqueeze(-2)  # (1, N); members (K, 1, N)
        g_b = g_s.sum().reshape(1) if self.members is None else self.steps_sum(g_s)
        if self.fanout is None:
            return g_v, g_b
        # M = fw m0 + fb per postsynaptic neuron
        return g_v, g_b, self.steps_sum(g_ms * extra["m0s"]).unsqueeze(-1), self.steps_sum(g_ms)


class RetroactiveBackward:
    """One chunk's backward pass: g_p = dL/dU(t) and g_e = dL/dE(t+1), carried step to step."""

    def __init__(self, kernel: Retroactive, plan: Plan, c: Chunk, g: Grads):
        self.k, self.steps, self.states, self.g = kernel, plan.steps, c.states, g
        self.m0s, self.ms = c.extra["m0s"], c.extra["ms"]
        self.g_p = c.states.new_zeros(c.states.shape[1], plan.n, plan.n)
        self.g_e = torch.zeros_like(self.g_p)
        self.zero = torch.zeros_like(self.g_p)  # U(-1) = E(0) = 0
        self.h, self.tmp = torch.empty_like(self.g_p), torch.empty_like(self.g_p)
        self.mask = torch.empty_like(self.g_p, dtype=torch.bool)
        self.slots_u = [torch.empty_like(self.g_p) for _ in range(plan.interval - 1)]
        self.slots_e = [torch.empty_like(self.g_p) for _ in range(plan.interval - 1)]
        self.us: list[Tensor] = []
        self.es: list[Tensor] = []

    def enter(self, seg: Segment) -> None:
        """us[k] = U(start + k - 1), es[k] = E(start + k), from the snapshots."""
        k, xs, h = self.k, self.states, self.h
        first = (self.zero, self.zero) if seg.snap is None else (seg.snap[0], seg.snap[1])
        self.start = seg.start
        self.us, self.es = [first[0], *self.slots_u], [first[1], *self.slots_e]
        for t in range(seg.start, seg.stop - 1):
            i = t - seg.start
            k.bound(self.us[i], h)
            k.advance(h, self.es[i], self.ms[t], self.us[i + 1], self.es[i + 1], xs[t], xs[t + 1])

    def step(self, t: int, gy: Tensor) -> Tensor:
        """Turns g_p from dL/dU(t) into dL/dU(t-1) and g_e from dL/dE(t+1) into dL/dE(t)."""
        k, g, g_p, g_e = self.k, self.g, self.g_p, self.g_e
        u, e = self.us[t - self.start], self.es[t - self.start]
        pw = k.bound(u, self.h)  # PW(t)
        x, y = self.states[t], self.states[t + 1]
        g_x_update = None
        if t < self.steps - 1:  # the last step's update was never made
            g_x_update = k.update_backward(e, x, y, gy, g_e, self.tmp, g.eta)
            g_m = g.extra["ms"][t]
            if k.fanout is None:  # dL/dM = sum_ij G_P E
                g_m.copy_(dot(g_p, e))
                g_m0 = g_m
            else:  # dL/dM_j = sum_i G_P_ij E_ij
                torch.sum(torch.mul(g_p, e, out=self.tmp), 1, out=g_m)
                g_m0 = k.times_fanout(g_m)  # (b, 1)
            m0 = self.m0s[t]
            g_s = torch.mul(g_m0, 1 - m0 * m0, out=g.extra["s"][t])  # dL/ds
            k.add_times_v(gy, g_s)
            g_e.addcmul_(g_p, self.ms[t].unsqueeze(1))  # dL/dE(t)
        g_pre = tanh_backward(gy, y, None if g.free is None else g.free[t], g.g_pre[t])
        g_x = k.times_wt(g_pre)  # (b, N)
        if g_x_update is not None:
            k.add_eta(g_x, g_x_update)
        k.read_backward(pw, x, g_pre, g_x, g_p, self.tmp, g.alpha)  # g_p: dL/dPW(t)
        # dL/dU(t-1): the clamp passes the gradient only where U = PW
        torch.ne(pw, u, out=self.mask)
        g_p.masked_fill_(self.mask, 0)
        return g_x

    def leave(self, seg: Segment) -> None:
        pass
