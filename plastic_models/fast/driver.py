"""The replay driver of the fast plastic episodes: what every hand-derived kernel shares.

Plain autograd (`PlasticNetwork.forward_autograd`) keeps three (B, N, N) tensors per step for
the backward pass: 1.2 GiB for one episode of the 1000-bit task (N = 1001, T = 106). A fast
kernel is one autograd Function for the whole episode that keeps the activations of every step
(T, B, N, small) and its traces only every K ~ sqrt(T) steps, so its memory grows as
sqrt(T) B N^2, not T B N^2 (52 MiB against 1.2 GiB for one training step of the 1000-bit task,
gradients and Adam's temporaries included).

The driver (`Replay`) owns, once for every kernel:
- the chunking: on the CPU the batch runs in chunks whose traces fit the cache (CHUNK_BYTES);
- the segments: the forward pass runs K steps at a time and leaves the kernel's traces at each
  segment's end in a snapshot; the backward pass goes through the segments last first, each
  from the snapshot at its start, and through their steps in reverse, dL/dy(t) being the
  loss's plus dL/dx(t+1) from step t + 1; step 0 (x(0) = 0, traces 0) is tanh's alone;
- the epilogue: dL/dw = sum x ⊗ dL/dpre, dL/dalpha when alpha factors out (per neuron or
  scalar: sum dL/dpre * x @ H), per connection summed over a chunk's elements, and clamp mode.

A kernel (`Kernel`) supplies only its segment's forward pass (`forward`: the steps of each
segment it is handed, its traces into the segment's snapshot) and its backward pass (`backward`
returns an object that `enter`s a segment from its snapshot, `step`s back through one step and
`leave`s it), plus its own buffers and parameters. Kernels: linear.py (no clip: no step's trace
is ever formed), clipped.py and retroactive.py (a segment's steps are replayed from its snapshot
with the forward pass's own ops, bit-identical, so the clamp's zero-gradient mask is exact).

Clamp mode (`input_mode="clamp"`, the image task): y = where(drive != 0, drive, tanh(pre)), the
drive still added to pre. The kernels keep their structure; dL/dpre is 0 where a neuron is
clamped and the drive's gradient takes dL/dy there (the mask is recomputed from the drive).

No kernel undoes the decay update (H(t) = (H(t+1) - eta x ⊗ y) / (1 - eta)): exact on paper, it
blows up in float32 for large eta (NaN at eta = 0.3 over 106 steps).

Shapes: T steps, B batch elements, b of one chunk, N neurons; traces are (b, N, N), indexed
[batch, presynaptic i, postsynaptic j]. `states` is (T + 1, B, N): states[0] = 0 and
states[t + 1] = y(t), so x(t) = states[t].

Members (a population of K networks of one shape, issue #22): the member dimension is folded
into the batch, member-major, B = K P (P: each member's batch): drive (T, K P, N), traces
(K P, N, N); the parameters are stacked (K, ...) — w (K, N, N), alpha (K, N, N), (K, N) or
(K,), eta (K,), a clip per member. A chunk holds whole members (a member's batch is never
split), and the kernel the driver hands it is `part`: its members' w and alpha, eta and clip
one per batch element. The few ops that read w, alpha or eta differently go through the
`Kernel` methods below; lone (members None), each is the op it always was, bit for bit.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from plastic_models.rules import DecayRule, Rule

# On the CPU the batch runs in chunks whose traces fit this size: with the other N x N tensors
# of a step (alpha, w, a snapshot, the gradient buffers) they stay in a 32 MiB last-level cache,
# and batching pays only where nothing fits. On a GPU the whole batch is one chunk.
CHUNK_BYTES = 4 << 20
# Episodes up to this many steps are one segment (no snapshots): each segment costs a few dozen
# small ops, which dominate short episodes (the simplified task has 11 steps).
SHORT_EPISODE = 16

# a kernel's buffer: its shape and the axis the batch runs along
Layout = dict[str, tuple[tuple[int, ...], int]]


def chunk_size(
    batch: int, n: int, dtype: torch.dtype, device: torch.device, per: int | None = None
) -> int:
    """Batch elements per chunk; members (`per` elements each): whole members."""
    if device.type != "cpu":
        return batch
    size = max(1, min(batch, CHUNK_BYTES // (n * n * dtype.itemsize)))
    return size if per is None else per * max(1, size // per)


def segment_length(steps: int, replays: bool) -> int:
    """Steps between snapshots. Replaying a segment keeps all its traces, so T / K + K is
    smallest at K = sqrt(T); a kernel that keeps none takes fewer, longer ones."""
    if steps <= SHORT_EPISODE:
        return steps
    return math.ceil(math.sqrt(steps if replays else 2 * steps))


def has_fast_kernel(rule: Rule) -> bool:
    """The kernels run a `DecayRule` whose trace starts at zero and is read as it is."""
    kind = type(rule)
    return isinstance(rule, DecayRule) and kind.initial is Rule.initial and kind.read is Rule.read


@dataclass(frozen=True)
class Plan:
    """An episode's sizes, its segments of `interval` steps and its chunks of the batch."""

    steps: int
    batch: int
    n: int
    interval: int
    chunk: int
    per: int | None = None  # members: each member's batch (B = K per); None: a lone model

    @property
    def segments(self) -> int:
        return math.ceil(self.steps / self.interval)

    def chunks(self) -> Iterator[slice]:
        return (slice(b, b + self.chunk) for b in range(0, self.batch, self.chunk))


@dataclass(frozen=True)
class Segment:
    """Steps start..stop-1. snap: forward, where the traces at `stop` go (None for the last
    segment); backward, the traces at `start` (None for the first, where they are 0)."""

    index: int
    start: int
    stop: int
    snap: Tensor | None


def segments(plan: Plan, snaps: Tensor, backward: bool = False) -> Iterator[Segment]:
    """The episode's segments in order (forward) or last first (backward)."""
    order = range(plan.segments)
    for seg in reversed(order) if backward else order:
        start, stop = seg * plan.interval, min(plan.steps, (seg + 1) * plan.interval)
        if backward:
            yield Segment(seg, start, stop, snaps[seg - 1] if seg else None)
        else:
            yield Segment(seg, start, stop, snaps[seg] if stop < plan.steps else None)


@dataclass(frozen=True)
class Chunk:
    """One chunk's views of the episode's buffers: states (T + 1, b, N), zs (T, b, N) x @ H
    when alpha factors out (else None), the snapshots and the kernel's own buffers."""

    states: Tensor
    zs: Tensor | None
    snaps: Tensor
    extra: dict[str, Tensor]


@dataclass(frozen=True)
class Grads:
    """One chunk's gradient outputs. g_pre (T, b, N): dL/dpre, written by the kernel for every
    step t >= 1. free (T, b, N): clamp mode, drive == 0, where tanh' counts. alpha: where
    dL/dalpha per connection goes, (b, N, N) or (N, N) as the kernel asks (None when alpha
    factors out). eta: dL/deta, a scalar to add to. extra: the kernel's own, zero at first."""

    g_pre: Tensor
    free: Tensor | None
    alpha: Tensor | None
    eta: Tensor
    extra: dict[str, Tensor]


class Backward(Protocol):
    """One chunk's backward pass, driven segment by segment, step by step."""

    def enter(self, seg: Segment) -> None: ...

    def step(self, t: int, gy: Tensor) -> Tensor:
        """Backward of step t >= 1 of the segment entered: gy = dL/dy(t) (b, N), which the
        kernel may update in place to the step's total; writes dL/dpre(t); returns dL/dx(t)."""
        ...

    def leave(self, seg: Segment) -> None: ...


class Kernel:
    """One episode's parameters and its segment-wise forward and backward passes.

    replays: whether the backward pass keeps all traces of a segment (K ~ sqrt(T)).
    alpha_by_element: whether dL/dalpha per connection goes to a (b, N, N) buffer per chunk
        (summed by the driver), else straight into dL/dalpha (N, N).
    inputs: w, alpha, eta, then the kernel's own tensors that need a gradient (`params`, their
        gradients from `param_grads`).
    """

    replays = True
    alpha_by_element = True
    count: int  # a part's members, their batch each and their rows
    per: int
    whole: slice

    def __init__(
        self, inputs: tuple[Tensor, ...], rule: DecayRule, clamp: bool, members: int | None = None
    ):
        w, alpha, eta, *params = inputs
        self.w, self.alpha, self.rule, self.clamp = w, alpha, rule, clamp
        self.inputs, self.params = inputs, tuple(params)
        self.members = members
        # constant within an episode: a lone model's ops stay on scalars; members: (b, 1)
        self.eta: float | Tensor = float(eta.detach()) if members is None else eta.detach()
        # else per-neuron or scalar: factors out of x @ H
        self.connection = alpha.dim() == (2 if members is None else 3)

    def part(self, c: slice, per: int | None) -> Kernel:
        """The kernel of chunk c: itself when lone; members: a copy with the chunk's members'
        w and alpha, and eta (b, 1) per batch element (alpha too when it factors out)."""
        if per is None:
            return self
        part = copy.copy(self)
        whole = slice(c.start // per, -(-c.stop // per))
        part.w, alpha = self.w[whole], self.alpha[whole]
        part.count, part.per, part.whole = part.w.shape[0], per, whole
        assert isinstance(self.eta, Tensor)
        part.eta = part.each(self.eta[whole])
        part.alpha = alpha if self.connection else part.each(alpha.reshape(part.count, -1))
        return part

    def each(self, per_member: Tensor) -> Tensor:
        """(m, ...) one row per member of a part -> (m P, ...) one per batch element, (m P, 1)
        for (m,)."""
        rows = per_member.reshape(per_member.shape[0], 1, -1)
        return rows.expand(-1, self.per, -1).reshape(-1, rows.shape[-1])

    def times_w(self, x: Tensor, add: Tensor) -> Tensor:
        """add + x @ w for x (b, N)."""
        if self.members is None:
            return torch.addmm(add, x, self.w)
        by = (self.count, self.per, x.shape[-1])
        return torch.baddbmm(add.reshape(by), x.reshape(by), self.w).view_as(x)

    def times_wt(self, g: Tensor, add: Tensor | None = None) -> Tensor:
        """(add +) g @ w^T for g (b, N)."""
        if self.members is None:
            return g @ self.w.T if add is None else torch.addmm(add, g, self.w.T)
        by = (self.count, self.per, g.shape[-1])
        wt = self.w.transpose(1, 2)
        out = (
            torch.bmm(g.reshape(by), wt)
            if add is None
            else torch.baddbmm(add.reshape(by), g.reshape(by), wt)
        )
        return out.view_as(g)

    def times_alpha(self, h: Tensor, out: Tensor) -> Tensor:
        """alpha * h into out, per connection, h (b, N, N)."""
        if self.members is None:
            return torch.mul(h, self.alpha, out=out)
        by = (self.count, self.per, *h.shape[1:])
        torch.mul(h.view(by), self.alpha.unsqueeze(1), out=out.view(by))
        return out

    def add_times_alpha(self, out: Tensor, h: Tensor) -> None:
        """out += alpha * h, per connection, h and out (b, N, N)."""
        if self.members is None:
            out.addcmul_(h, self.alpha)
        else:
            by = (self.count, self.per, *h.shape[1:])
            out.view(by).addcmul_(h.view(by), self.alpha.unsqueeze(1))

    def mm_alpha(self, v: Tensor, transpose: bool = False) -> Tensor:
        """v @ alpha (or alpha^T), per connection, v (..., b, N)."""
        if self.members is None:
            a = self.alpha.T if transpose else self.alpha
            return (v.reshape(-1, v.shape[-1]) @ a).view(v.shape)
        a = self.alpha.transpose(1, 2) if transpose else self.alpha
        by = (*v.shape[:-2], self.count, self.per, v.shape[-1])
        return torch.matmul(v.reshape(by), a).view(v.shape)

    def add_eta(
        self, out: Tensor, v: Tensor, factor: Tensor | None = None, sign: float = 1
    ) -> None:
        """out += sign eta v (* factor), v (b, N) or (b, N, N)."""
        if isinstance(self.eta, float):
            if factor is None:
                out.add_(v, alpha=sign * self.eta)
            else:
                out.addcmul_(v, factor, value=sign * self.eta)
            return
        eta = self.eta if v.dim() == 2 else self.eta.unsqueeze(-1)
        out.addcmul_(v if factor is None else v * factor, eta, value=sign)

    def add_outer(self, out: Tensor, a: Tensor, b: Tensor) -> None:
        """out += sum over the leading axes and the batch of a ⊗ b, a and b (..., b, N): out
        (N, N); members (m, N, N), each member's own sum."""
        n = a.shape[-1]
        if self.members is None:
            rows = a.reshape(-1, n)
            out.addmm_(rows.T, b.reshape(rows.shape))
            return
        by = (-1, self.count, self.per, n)
        a, b = (t.reshape(by).transpose(0, 1).reshape(self.count, -1, n) for t in (a, b))
        out.baddbmm_(a.transpose(1, 2), b)

    def total(self, t: Tensor, axis: int = 0) -> Tensor:
        """The sum of t, per member (m,) when its batch runs along `axis`."""
        if self.members is None:
            return t.sum()
        return t.movedim(axis, 0).reshape(self.count, -1).sum(1)

    def batch_sum(self, t: Tensor) -> Tensor:
        """t (b, ...) summed over each member's batch elements: (...), members (m, ...)."""
        if self.members is None:
            return t.sum(0)
        return t.view(self.count, self.per, *t.shape[1:]).sum(1)

    def steps_sum(self, t: Tensor) -> Tensor:
        """t (T, B, X) summed over steps and batch: (X,); members (K, X), each member's own."""
        if self.members is None:
            return t.sum((0, 1))
        return t.view(t.shape[0], self.members, -1, t.shape[-1]).sum((0, 2))

    def of_part(self, t: Tensor) -> Tensor:
        """A (K, ...) gradient buffer's rows of this part's members (itself when lone)."""
        return t if self.members is None else t[self.whole]

    def snapshot(self, plan: Plan) -> tuple[tuple[int, ...], int]:
        """The shape of one snapshot and its batch axis: one trace (B, N, N) by default."""
        return (plan.batch, plan.n, plan.n), 0

    def layout(self, plan: Plan) -> Layout:
        """The kernel's own buffers, filled by `forward` and saved for backward."""
        return {}

    def grad_layout(self, plan: Plan) -> Layout:
        """The kernel's own gradient buffers, zero at first, filled by `backward`."""
        return {}

    def forward(self, plan: Plan, drive: Tensor, c: Chunk, segs: Iterable[Segment]) -> None:
        """One chunk: drive (T, b, N) -> y(t) into c.states[t + 1], x @ H into c.zs (when
        alpha factors out), the traces at each segment's end into its snapshot."""
        raise NotImplementedError

    def backward(self, plan: Plan, c: Chunk, g: Grads) -> Backward:
        raise NotImplementedError

    def param_grads(
        self, states: Tensor, extra: dict[str, Tensor], grads: dict[str, Tensor]
    ) -> tuple[Tensor | None, ...]:
        """The gradients of `params`, from the whole batch's buffers."""
        return ()


class Stepwise(Kernel):
    """A kernel that forms every step's trace (clipped.py, retroactive.py): the steps a trace
    update U = H diag(d(y)) + eta x ⊗ y and the read x @ (w + alpha * H) share. The traces
    are clipped at ±clip."""

    def __init__(
        self,
        inputs: tuple[Tensor, ...],
        rule: DecayRule,
        clamp: bool,
        clip: float | list[float],
        members: int | None = None,
    ):
        super().__init__(inputs, rule, clamp, members)
        self.clips = clip
        self.clip: float | Tensor = clip if isinstance(clip, float) else 0.0

    def part(self, c: slice, per: int | None) -> Kernel:
        """Members: a clip per batch element (b, 1, 1) when the members' clips differ."""
        part = super().part(c, per)
        if isinstance(part, Stepwise) and isinstance(self.clips, list):
            clips = torch.tensor(self.clips, dtype=self.w.dtype, device=self.w.device)
            part.clip = part.each(clips[part.whole]).unsqueeze(-1)
        return part

    def bound(self, u: Tensor, out: Tensor) -> Tensor:
        """clamp(u, -clip, clip) into out (members: a clip per batch element, (b, 1, 1))."""
        if isinstance(self.clip, Tensor):
            return torch.clamp(u, -self.clip, self.clip, out=out)
        return torch.clamp(u, -self.clip, self.clip, out=out)

    def decay(self, y: Tensor) -> float | Tensor:
        """d(t): a float when the rule's shrink is a constant, else (b, 1, N); members:
        (b, 1, 1) or (b, 1, N)."""
        if self.rule.constant is not None:
            if isinstance(self.eta, Tensor):
                return (1.0 - self.eta * self.rule.constant).unsqueeze(1)
            return 1.0 - self.eta * self.rule.constant
        return (1.0 - self.eta * self.rule.shrink(y)).unsqueeze(1)

    def read(self, pre: Tensor, x: Tensor, h: Tensor, tmp: Tensor | None, z: Tensor | None) -> None:
        """pre += x @ (alpha * h): per connection through tmp, else x @ h into z, times alpha."""
        if tmp is not None:
            self.times_alpha(h, tmp)
            pre.unsqueeze(1).baddbmm_(x.unsqueeze(1), tmp)
        else:
            assert z is not None
            torch.bmm(x.unsqueeze(1), h, out=z.unsqueeze(1))
            pre.addcmul_(z, self.alpha)

    def read_backward(
        self,
        h: Tensor,
        x: Tensor,
        g_pre: Tensor,
        g_x: Tensor,
        g_h: Tensor | None,
        tmp: Tensor,
        acc: Tensor | None,
    ) -> None:
        """Through pre += x @ (alpha * h): g_x += (alpha * h) @ dL/dpre, g_h (if given) +=
        alpha * (x ⊗ dL/dpre) and, per connection, acc += (x ⊗ dL/dpre) * h."""
        if acc is not None:  # per-connection alpha
            self.times_alpha(h, tmp)
            g_x.unsqueeze(2).baddbmm_(tmp, g_pre.unsqueeze(2))  # += (alpha * h) @ dL/dpre
            torch.mul(x.unsqueeze(2), g_pre.unsqueeze(1), out=tmp)  # (b, N, N): x ⊗ dL/dpre
            acc.addcmul_(tmp, h)
            if g_h is not None:
                self.add_times_alpha(g_h, tmp)
        else:
            a_g = self.alpha * g_pre  # (b, N): alpha_j dL/dpre_j
            g_x.unsqueeze(2).baddbmm_(h, a_g.unsqueeze(2))
            if g_h is not None:
                g_h.addcmul_(x.unsqueeze(2), a_g.unsqueeze(1))

    def update_backward(
        self, h: Tensor, x: Tensor, y: Tensor, gy: Tensor, g_u: Tensor, tmp: Tensor, g_eta: Tensor
    ) -> Tensor:
        """Through U = h diag(d(y)) + eta x ⊗ y given g_u = dL/dU: adds dL/dy to gy and dL/deta
        to g_eta, turns g_u into its share of dL/dh (g_u diag(d)); returns sum_j G_ij y_j."""
        v = torch.bmm(x.unsqueeze(1), g_u).squeeze(1)  # (b, N): sum_i x_i G_ij
        g_x = torch.bmm(g_u, y.unsqueeze(2)).squeeze(2)  # (b, N): sum_j G_ij y_j
        self.add_eta(gy, v)
        g_eta += self.total(y * v)  # dU/deta = x ⊗ y - h diag(s(y))
        if self.rule.constant is None:  # dU/dy_j = eta x - eta s'(y_j) h[:, j]
            col = torch.mul(h, g_u, out=tmp).sum(1)  # (b, N): sum_i h_ij G_ij
            self.add_eta(gy, self.rule.shrink_slope(y), col, sign=-1)
            g_eta -= self.total(self.rule.shrink(y) * col)
        elif self.rule.constant != 0:
            g_eta -= self.rule.constant * self.total(dot(h, g_u))
        d = self.decay(y)
        if not (isinstance(d, float) and d == 1.0):  # purely additive: nothing decays
            g_u.mul_(d)
        return g_x


def dot(a: Tensor, b: Tensor) -> Tensor:
    """sum_ij a_ij b_ij per batch element of (b, N, N) tensors, (b, 1): one read of each,
    no (b, N, N) temporary."""
    batch = a.shape[0]
    return torch.bmm(a.reshape(batch, 1, -1), b.reshape(batch, -1, 1)).squeeze(2)


def activate(pre: Tensor, drive: Tensor, out: Tensor, clamp: bool) -> Tensor:
    """y = tanh(pre) into out; clamp mode: where(drive != 0, drive, y)."""
    y = torch.tanh(pre, out=out)
    if clamp:  # where(drive != 0, drive, y) = y * (drive == 0) + drive
        y.mul_(drive == 0).add_(drive)
    return y


def tanh_backward(gy: Tensor, y: Tensor, free: Tensor | None, g_pre: Tensor) -> Tensor:
    """dL/dpre = dL/dy tanh'(pre) into g_pre; 0 where clamp mode holds y at the drive."""
    torch.mul(gy, 1 - y * y, out=g_pre)
    if free is not None:
        g_pre.mul_(free)
    return g_pre


def view(buffers: dict[str, Tensor], layout: Layout, c: slice) -> dict[str, Tensor]:
    """Each buffer's part for the batch elements in c, along its batch axis."""
    return {
        name: t.narrow(layout[name][1], c.start, min(c.stop, t.shape[layout[name][1]]) - c.start)
        for name, t in buffers.items()
    }


def chunk_of(
    states: Tensor, zs: Tensor | None, buffers: dict[str, Tensor], layout: Layout, c: slice
) -> Chunk:
    part = view(buffers, layout, c)
    return Chunk(states[:, c], None if zs is None else zs[:, c], part.pop("snaps"), part)


def run_backward(
    back: Backward, plan: Plan, c: Chunk, g: Grads, grad: Tensor, g_y: Tensor | None
) -> None:
    """One chunk's segments, last first, and their steps in reverse: grad (T, b, N) is the
    loss's dL/dy; the total dL/dy goes into g_y (T, b, N) if given."""
    g_x = torch.zeros_like(grad[0])  # dL/dx(t+1) from step t + 1
    for seg in segments(plan, c.snaps, backward=True):
        back.enter(seg)
        for t in reversed(range(seg.start, seg.stop)):
            gy = torch.add(grad[t], g_x, out=None if g_y is None else g_y[t])
            if t == 0:  # x(0) = 0 and the traces are 0: only the drive's gradient is left
                tanh_backward(gy, c.states[1], None if g.free is None else g.free[0], g.g_pre[0])
            else:
                g_x = back.step(t, gy)
        back.leave(seg)


class Replay(torch.autograd.Function):
    """The whole episode of a kernel: activations (T, B, N) from drive (T, B, N)."""

    @staticmethod
    def forward(ctx: Any, kernel: Kernel, drive: Tensor, *inputs: Tensor) -> Tensor:
        steps, batch, n = drive.shape
        interval = segment_length(steps, kernel.replays)
        per = None if kernel.members is None else batch // kernel.members
        chunk = chunk_size(batch, n, drive.dtype, drive.device, per)
        plan = Plan(steps, batch, n, interval, chunk, per)
        states = drive.new_empty(steps + 1, batch, n)
        states[0] = 0
        zs = None if kernel.connection else torch.empty_like(drive)
        shape, axis = kernel.snapshot(plan)
        layout = {"snaps": ((plan.segments - 1, *shape), axis + 1), **kernel.layout(plan)}
        buffers = {name: drive.new_empty(size) for name, (size, _) in layout.items()}
        for c in plan.chunks():
            part = chunk_of(states, zs, buffers, layout, c)
            kernel.part(c, per).forward(plan, drive[:, c], part, segments(plan, part.snaps))
        ctx.kernel, ctx.plan, ctx.layout = kernel, plan, layout
        clamped = [drive] if kernel.clamp else []  # its mask, drive != 0, is remade in backward
        ctx.save_for_backward(states, *([] if zs is None else [zs]), *buffers.values(), *clamped)
        return states[1:]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        kernel: Kernel = ctx.kernel
        plan: Plan = ctx.plan
        states, *rest = ctx.saved_tensors
        zs = None if kernel.connection else rest.pop(0)  # x @ H when alpha factors out
        buffers = dict(zip(ctx.layout, rest, strict=False))
        free = rest[-1] == 0 if kernel.clamp else None  # clamp mode: where y = tanh(pre)
        g_y = torch.empty_like(grad) if free is not None and ctx.needs_input_grad[1] else None
        g_pre = torch.empty_like(grad)
        g_alpha = torch.zeros_like(kernel.alpha)
        g_eta = grad.new_zeros(() if kernel.members is None else (kernel.members,))
        glayout = kernel.grad_layout(plan)
        extra = {name: grad.new_zeros(size) for name, (size, _) in glayout.items()}
        for c in plan.chunks():
            part = kernel.part(c, plan.per)
            size = states[0, c].shape[0]
            lone = kernel.members is None
            by_element = kernel.connection and kernel.alpha_by_element and (size > 1 or not lone)
            acc = None  # dL/dalpha per connection: per element of the chunk, or g_alpha itself
            if by_element:
                acc = grad.new_zeros(size, plan.n, plan.n)
            elif kernel.connection:
                acc = g_alpha.unsqueeze(0) if kernel.alpha_by_element else part.of_part(g_alpha)
            chunk = chunk_of(states, zs, buffers, ctx.layout, c)
            free_c = None if free is None else free[:, c]
            g_eta_c = part.of_part(g_eta)
            g = Grads(g_pre[:, c], free_c, acc, g_eta_c, view(extra, glayout, c))
            back = part.backward(plan, chunk, g)
            run_backward(back, plan, chunk, g, grad[:, c], None if g_y is None else g_y[:, c])
            if acc is not None and by_element:
                part.of_part(g_alpha).add_(part.batch_sum(acc))
        g_w = outer_sum(states[:-1], g_pre, kernel.members)  # sum of x ⊗ dL/dpre
        if zs is not None:  # alpha factors out: sum of dL/dpre * x @ H
            g_alpha = factored_sum(g_pre * zs, kernel.alpha.shape, kernel.members)
        g_eta_out = g_eta if ctx.needs_input_grad[4] else None
        g_drive = g_pre if ctx.needs_input_grad[1] else None
        if free is not None and g_y is not None:
            # the drive is in pre everywhere and is y where it clamps (there dL/dpre = 0)
            g_drive = torch.where(free, g_pre, g_y)
        params = kernel.param_grads(states, buffers, extra)
        return (None, g_drive, g_w, g_alpha, g_eta_out, *params)


def outer_sum(xs: Tensor, gs: Tensor, members: int | None) -> Tensor:
    """sum over steps and batch of x ⊗ g for xs, gs (T, B, N): (N, N); members (K, N, N)."""
    n = xs.shape[-1]
    if members is None:
        return xs.reshape(-1, n).T @ gs.reshape(-1, n)
    by = (xs.shape[0], members, -1, n)
    rows = [t.reshape(by).transpose(0, 1).reshape(members, -1, n) for t in (xs, gs)]
    return torch.bmm(rows[0].transpose(1, 2), rows[1])


def factored_sum(t: Tensor, shape: torch.Size, members: int | None) -> Tensor:
    """t (T, B, N) summed to alpha's shape (N,) or (); members (K, N) or (K,)."""
    if members is None:
        return t.sum_to_size(shape)
    per_neuron = t.reshape(t.shape[0], members, -1, t.shape[-1]).sum((0, 2))  # (K, N)
    return per_neuron if len(shape) == 2 else per_neuron.sum(1)


def replay(kernel: Kernel, drive: Tensor) -> Tensor:
    """Activations (T, B, N) of the kernel's episode driven by drive (T, B, N)."""
    out: Tensor = Replay.apply(kernel, drive, *kernel.inputs)
    return out
