"""Fast retroactive neuromodulation (Backpropamine, Miconi et al. 2019): one hand-derived
autograd Function per episode, in the style of clipped.py.

Each step t, in the reference code's order, from PW(t) = clamp(U(t-1)) and the eligibility
trace E(t) (both zero at t = 0), with x = y(t-1) (0 at t = 0):

    y(t)     = tanh(drive(t) + x @ (w + alpha * PW(t)))    (clamp mode: the drive where != 0)
    m(t)     = tanh(v . y(t) + b);  M(t) = m(t), or fw * m(t) + fb per postsynaptic neuron
    U(t)     = PW(t) + M(t) * E(t)                          PW(t+1) = clamp(U(t), -clip, clip)
    E(t+1)   = E(t) diag(d(t)) + eta_E x ⊗ y(t)             d = 1 - eta_E s(y): the rule's decay

The forward pass keeps U and E every K ~ sqrt(T) steps (snapshots), the activations and M(t)
of every step; the backward pass replays one segment from its snapshots with the forward pass's
own elementwise ops (bit-identical, so the clamp's mask is exact), keeping its K pairs of
traces, and applies the gradients step by step in reverse. With G_P = dL/dU(t) (the clamp's
mask applied) and G_E = dL/dE(t+1):

    dL/dM(t)_j  = sum_i G_P[i, j] E(t)[i, j]     (summed over j without fanout)
    dL/dE(t)    = G_E diag(d(t)) + M(t) * G_P
    dL/dPW(t)   = G_P + alpha * (x ⊗ dL/dpre(t))
    dL/dy(t)   += eta_E x @ G_E - eta_E s'(y) colsum(E ∘ G_E) + dL/ds(t) v
    dL/dx      += eta_E G_E @ y(t) + dL/dpre @ (w + alpha * PW(t))^T
    dL/deta_E  += sum(G_E ∘ (x ⊗ y - E diag(s(y))))

Memory: O(T B N + (T / K + K) B N^2), as clipped.py (two traces instead of one).
Shapes: T steps, b batch elements of one chunk, N neurons; traces are (b, N, N), indexed
[batch, presynaptic i, postsynaptic j]; P is N with fanout, else 1.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from plastic_models.episode import chunk_size, segment_length
from plastic_models.modulation import Neuromodulator
from plastic_models.rules import DecayRule


class RetroactiveEpisode:
    """One episode's parameters and the steps of its forward and backward passes."""

    def __init__(
        self,
        w: Tensor,
        alpha: Tensor,
        eta: Tensor,
        source: tuple[Tensor, Tensor],
        fanout: tuple[Tensor, Tensor] | None,
        rule: DecayRule,
        clip: float,
        clamp: bool,
        interval: int,
    ):
        self.w, self.alpha, self.rule, self.clip, self.clamp = w, alpha, rule, clip, clamp
        self.eta = float(eta.detach())  # constant within an episode: ops stay on scalars
        self.v, self.b = source  # (1, N), (1,): the modulator's source
        self.fanout = fanout  # (N, 1), (N,): Linear(1 -> N), or None
        self.connection = alpha.dim() == 2  # else per-neuron or scalar: factors out of x @ PW
        self.interval = interval  # K: steps per segment

    def modulate(self, y: Tensor, m0: Tensor, m: Tensor) -> None:
        """m0 = tanh(v . y + b) (b, 1) and M (b, P) from y (b, N), into the given rows."""
        torch.tanh(torch.addmm(self.b, y, self.v.T), out=m0)
        if self.fanout is None:
            m.copy_(m0)
        else:
            torch.addmm(self.fanout[1], m0, self.fanout[0].T, out=m)

    def decay(self, y: Tensor) -> float | Tensor:
        """d(t): a float when the rule's shrink is a constant, else (b, 1, N)."""
        if self.rule.constant is not None:
            return 1.0 - self.eta * self.rule.constant
        return (1.0 - self.eta * self.rule.shrink(y)).unsqueeze(1)

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
        e_out.addcmul_(x.unsqueeze(2), y.unsqueeze(1), value=self.eta)

    def forward(
        self,
        drive: Tensor,
        ys: Tensor,
        zs: Tensor | None,
        m0s: Tensor,
        ms: Tensor,
        snaps: Tensor,
    ) -> None:
        """One chunk: drive (T, b, N) -> activations into ys, x @ PW into zs (per-neuron or
        scalar alpha), m(t) into m0s (T, b, 1), M(t) into ms (T, b, P) and (U(k K - 1),
        E(k K)), k = 1..S, into snaps (S, 2, b, N, N)."""
        steps, batch, n = drive.shape
        u = drive.new_zeros(batch, n, n)  # U(t-1): PW(t) before the clamp
        e = torch.zeros_like(u)  # E(t)
        h = torch.zeros_like(u)  # PW(t)
        tmp = torch.empty_like(u) if self.connection else None
        zero = torch.zeros_like(ys[0])
        for t in range(steps):
            if t and t % self.interval == 0:
                snaps[t // self.interval - 1, 0].copy_(u)
                snaps[t // self.interval - 1, 1].copy_(e)
            x = ys[t - 1] if t else zero
            torch.clamp(u, -self.clip, self.clip, out=h)
            pre = torch.addmm(drive[t], x, self.w)
            if tmp is not None:
                torch.mul(h, self.alpha, out=tmp)
                pre.unsqueeze(1).baddbmm_(x.unsqueeze(1), tmp)
            else:
                assert zs is not None
                torch.bmm(x.unsqueeze(1), h, out=zs[t].unsqueeze(1))
                pre.addcmul_(zs[t], self.alpha)
            torch.tanh(pre, out=ys[t])
            if self.clamp:  # where(drive != 0, drive, y) = y * (drive == 0) + drive
                ys[t].mul_(drive[t] == 0).add_(drive[t])
            self.modulate(ys[t], m0s[t], ms[t])
            if t < steps - 1:  # the last step's update is never used
                self.advance(h, e, ms[t], u, e, x, ys[t])

    def replay(
        self,
        start: int,
        stop: int,
        xs: Tensor,
        ys: Tensor,
        ms: Tensor,
        us: list[Tensor],
        es: list[Tensor],
        h: Tensor,
    ) -> None:
        """us[k] = U(start + k - 1), es[k] = E(start + k), k >= 1, from us[0], es[0]."""
        for t in range(start, stop - 1):
            k = t - start
            torch.clamp(us[k], -self.clip, self.clip, out=h)
            self.advance(h, es[k], ms[t], us[k + 1], es[k + 1], xs[t], ys[t])

    def backward(
        self,
        grad: Tensor,
        ys: Tensor,
        m0s: Tensor,
        ms: Tensor,
        snaps: Tensor,
        g_pre: Tensor,
        g_ms: Tensor,
        g_s: Tensor,
        acc: Tensor | None,
        g_eta: Tensor,
        free: Tensor | None,
        g_y: Tensor | None,
    ) -> None:
        """One chunk, last segment first: dL/dy (T, b, N) -> dL/dpre into g_pre, dL/dM into
        g_ms (T, b, P), dL/ds (s = v . y + b) into g_s (T, b, 1); adds dL/dalpha per connection
        into acc (b, N, N) and dL/deta_E into g_eta. Clamp mode: free (T, b, N) is
        drive == 0, where tanh' counts; the total dL/dy goes into g_y if given."""
        steps = ys.shape[0]
        xs = torch.cat([torch.zeros_like(ys[:1]), ys[:-1]])  # (T, b, N)
        g_p = ys.new_zeros(ys.shape[1], ys.shape[2], ys.shape[2])  # dL/dU(t)
        g_e = torch.zeros_like(g_p)  # dL/dE(t+1)
        zero = torch.zeros_like(g_p)  # U(-1) = E(0) = 0
        h, tmp = torch.empty_like(g_p), torch.empty_like(g_p)
        mask = torch.empty_like(g_p, dtype=torch.bool)
        slots_u = [torch.empty_like(g_p) for _ in range(self.interval - 1)]
        slots_e = [torch.empty_like(g_p) for _ in range(self.interval - 1)]
        g_x = torch.zeros_like(ys[0])  # dL/dx(t+1) from step t + 1
        for seg in reversed(range(math.ceil(steps / self.interval))):
            start, stop = seg * self.interval, min(steps, (seg + 1) * self.interval)
            us = [snaps[seg - 1, 0] if seg else zero, *slots_u]
            es = [snaps[seg - 1, 1] if seg else zero, *slots_e]
            self.replay(start, stop, xs, ys, ms, us, es, h)
            for t in reversed(range(start, stop)):
                gy = torch.add(grad[t], g_x, out=None if g_y is None else g_y[t])
                tanh_at = None if free is None else free[t]
                if t == 0:  # x(0) = 0, PW(0) = E(0) = 0: M(0) and the traces have no effect
                    self.tanh_backward(gy, ys[t], tanh_at, g_pre[t])
                    continue
                pw = torch.clamp(us[t - start], -self.clip, self.clip, out=h)
                g_x = self.step(
                    t == steps - 1,
                    pw,
                    es[t - start],
                    xs[t],
                    ys[t],
                    m0s[t],
                    ms[t],
                    gy,
                    g_p,
                    g_e,
                    tmp,
                    acc,
                    g_pre[t],
                    g_ms[t],
                    g_s[t],
                    g_eta,
                    tanh_at,
                )
                # dL/dU(t-1): the clamp passes the gradient only where U = PW
                torch.ne(pw, us[t - start], out=mask)
                g_p.masked_fill_(mask, 0)

    def step(
        self,
        last: bool,
        pw: Tensor,
        e: Tensor,
        x: Tensor,
        y: Tensor,
        m0: Tensor,
        m: Tensor,
        gy: Tensor,
        g_p: Tensor,
        g_e: Tensor,
        tmp: Tensor,
        acc: Tensor | None,
        g_pre: Tensor,
        g_m: Tensor,
        g_s: Tensor,
        g_eta: Tensor,
        free: Tensor | None,
    ) -> Tensor:
        """Backward of step t >= 1 (pw = PW(t), e = E(t): (b, N, N); x, y, gy = dL/dy: (b, N));
        returns dL/dx(t). Turns g_p from dL/dU(t) into dL/dPW(t) and g_e from dL/dE(t+1)
        into dL/dE(t); gy becomes the step's total dL/dy."""
        eta = self.eta
        if not last:  # the last step's update was never made
            v_e = torch.bmm(x.unsqueeze(1), g_e).squeeze(1)  # (b, N): sum_i x_i G_E_ij
            g_x_update = torch.bmm(g_e, y.unsqueeze(2)).squeeze(2)  # (b, N): sum_j G_E_ij y_j
            gy.add_(v_e, alpha=eta)
            g_eta += (y * v_e).sum()
            if self.rule.constant is None:  # dE/dy_j = eta x - eta s'(y_j) E[:, j]
                col = torch.mul(e, g_e, out=tmp).sum(1)  # (b, N): sum_i E_ij G_E_ij
                gy.addcmul_(self.rule.shrink_slope(y), col, value=-eta)
                g_eta -= (self.rule.shrink(y) * col).sum()
            elif self.rule.constant != 0:
                g_eta -= self.rule.constant * dot(e, g_e).sum()
            if self.fanout is None:  # dL/dM = sum_ij G_P E
                g_m.copy_(dot(g_p, e))
                g_m0 = g_m
            else:  # dL/dM_j = sum_i G_P_ij E_ij
                torch.sum(torch.mul(g_p, e, out=tmp), 1, out=g_m)
                g_m0 = g_m @ self.fanout[0]  # (b, 1)
            torch.mul(g_m0, 1 - m0 * m0, out=g_s)  # dL/ds
            gy.addmm_(g_s, self.v)
            d = self.decay(y)
            if not (isinstance(d, float) and d == 1.0):
                g_e.mul_(d)
            g_e.addcmul_(g_p, m.unsqueeze(1))  # dL/dE(t)
        self.tanh_backward(gy, y, free, g_pre)
        g_x = g_pre @ self.w.T  # (b, N)
        if not last:
            g_x.add_(g_x_update, alpha=eta)
        if acc is not None:  # per-connection alpha
            torch.mul(pw, self.alpha, out=tmp)
            g_x.unsqueeze(2).baddbmm_(tmp, g_pre.unsqueeze(2))  # += (alpha * PW) @ dL/dpre
            torch.mul(x.unsqueeze(2), g_pre.unsqueeze(1), out=tmp)  # (b, N, N): x ⊗ dL/dpre
            acc.addcmul_(tmp, pw)
            g_p.addcmul_(tmp, self.alpha)
        else:
            a_g = self.alpha * g_pre  # (b, N): alpha_j dL/dpre_j
            g_x.unsqueeze(2).baddbmm_(pw, a_g.unsqueeze(2))
            g_p.addcmul_(x.unsqueeze(2), a_g.unsqueeze(1))
        return g_x

    @staticmethod
    def tanh_backward(gy: Tensor, y: Tensor, free: Tensor | None, g_pre: Tensor) -> None:
        """dL/dpre = dL/dy tanh'(pre) into g_pre; 0 where clamp mode holds y at the drive."""
        torch.mul(gy, 1 - y * y, out=g_pre)
        if free is not None:
            g_pre.mul_(free)


def dot(a: Tensor, b: Tensor) -> Tensor:
    """sum_ij a_ij b_ij per batch element of (b, N, N) tensors, (b, 1): one read of each,
    no (b, N, N) temporary."""
    batch = a.shape[0]
    return torch.bmm(a.reshape(batch, 1, -1), b.reshape(batch, -1, 1)).squeeze(2)


class RetroactiveFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        drive: Tensor,
        w: Tensor,
        alpha: Tensor,
        eta: Tensor,
        v: Tensor,
        b: Tensor,
        fw: Tensor | None,
        fb: Tensor | None,
        rule: DecayRule,
        clip: float,
        clamp: bool,
        interval: int,
        chunk: int,
    ) -> Tensor:
        steps, batch, n = drive.shape
        fanout = None if fw is None or fb is None else (fw, fb)
        ep = RetroactiveEpisode(w, alpha, eta, (v, b), fanout, rule, clip, clamp, interval)
        ys = torch.empty_like(drive)
        zs = None if ep.connection else torch.empty_like(drive)
        m0s = drive.new_empty(steps, batch, 1)
        ms = drive.new_empty(steps, batch, n if fanout else 1)
        snaps = drive.new_empty((steps - 1) // ep.interval, 2, batch, n, n)
        for c0 in range(0, batch, chunk):
            c = slice(c0, c0 + chunk)
            part_z = None if zs is None else zs[:, c]
            ep.forward(drive[:, c], ys[:, c], part_z, m0s[:, c], ms[:, c], snaps[:, :, c])
        ctx.ep, ctx.chunk, ctx.factored = ep, chunk, zs is not None
        clamped = [drive] if clamp else []  # its mask, drive != 0, is remade in backward
        ctx.save_for_backward(ys, m0s, ms, snaps, *([] if zs is None else [zs]), *clamped)
        return ys

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        ep: RetroactiveEpisode = ctx.ep
        ys, m0s, ms, snaps, *extra = ctx.saved_tensors
        zs = extra.pop(0) if ctx.factored else None  # x @ PW when alpha factors out
        free = extra[0] == 0 if extra else None  # clamp mode: where y = tanh(pre)
        g_y = torch.empty_like(ys) if free is not None and ctx.needs_input_grad[0] else None
        batch, n = ys.shape[1:]
        g_pre = torch.empty_like(ys)
        g_ms = torch.zeros_like(ms)
        g_s = torch.zeros_like(m0s)
        g_alpha = torch.zeros_like(ep.alpha)
        g_eta = ys.new_zeros(())
        for c0 in range(0, batch, ctx.chunk):
            c = slice(c0, c0 + ctx.chunk)
            size = ys[0, c].shape[0]
            acc = None  # dL/dalpha per batch element of the chunk; g_alpha itself for one
            if ep.connection:
                acc = g_alpha.unsqueeze(0) if size == 1 else ys.new_zeros(size, n, n)
            ep.backward(
                grad[:, c],
                ys[:, c],
                m0s[:, c],
                ms[:, c],
                snaps[:, :, c],
                g_pre[:, c],
                g_ms[:, c],
                g_s[:, c],
                acc,
                g_eta,
                None if free is None else free[:, c],
                None if g_y is None else g_y[:, c],
            )
            if acc is not None and size > 1:
                g_alpha += acc.sum(0)
        xs = torch.cat([torch.zeros_like(ys[:1]), ys[:-1]]).reshape(-1, n)
        g_w = xs.T @ g_pre.reshape(-1, n)  # sum over steps and batch of x ⊗ dL/dpre
        if zs is not None:  # alpha factors out: sum of dL/dpre * x @ PW
            g_alpha = (g_pre * zs).sum_to_size(ep.alpha.shape)
        g_v = (g_s * ys).sum((0, 1)).unsqueeze(0)  # (1, N)
        g_b = g_s.sum().reshape(1)
        g_fw = g_fb = None
        if ep.fanout is not None:  # M = fw m0 + fb per postsynaptic neuron
            g_fw = (g_ms * m0s).sum((0, 1)).unsqueeze(1)  # (N, 1)
            g_fb = g_ms.sum((0, 1))
        g_eta_out = g_eta if ctx.needs_input_grad[3] else None
        g_drive = g_pre if ctx.needs_input_grad[0] else None
        if free is not None and g_y is not None:
            # the drive is in pre everywhere and is y where it clamps (there dL/dpre = 0)
            g_drive = torch.where(free, g_pre, g_y)
        return (g_drive, g_w, g_alpha, g_eta_out, g_v, g_b, g_fw, g_fb, *[None] * 5)


def retroactive_episode(
    drive: Tensor,
    w: Tensor,
    alpha: Tensor,
    eta: Tensor,
    modulator: Neuromodulator,
    rule: DecayRule,
    clip: float,
    clamp: bool = False,
) -> Tensor:
    """Activations (T, B, N) of a retroactively modulated episode driven by drive (T, B, N);
    both traces start at zero. Same numbers and gradients as the generic path."""
    steps, batch, n = drive.shape
    chunk = chunk_size(batch, n, drive.dtype, drive.device)
    interval = segment_length(steps, clip)
    fanout = modulator.fanout
    out: Tensor = RetroactiveFunction.apply(
        drive,
        w,
        alpha,
        eta,
        modulator.source.weight,
        modulator.source.bias,
        None if fanout is None else fanout.weight,
        None if fanout is None else fanout.bias,
        rule,
        clip,
        clamp,
        interval,
        chunk,
    )
    return out
