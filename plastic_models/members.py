"""Populations of plastic networks and plastic LSTMs (issue #22): K members of one shape run as
single batched ops over a leading member dimension K.

Each member's tensors are its lone model's, stacked (K, ...) under the lone names (`w`,
`alpha`, `eta`, `modulator.source.weight`, ...); members may differ in eta, clip, init scales
and (plastic LSTM) alpha_grad_scale. The state mirrors a lone model's with K first:
activations (K, B, N), traces (K, B, N, N). Inside an episode the traces are kept with the
member dimension folded into the batch, (K B, N, N), as the rule gets them, with the rate as a
per-element tensor (K B, 1, 1)
(or M(t), (K B, 1, 1) / (K B, 1, N)), so every registered rule, a plugin's too, runs
unchanged; clips one per member broadcast the same way. A plastic network's episode runs on
the hand-derived fast kernels (plastic_models.fast, given the member count) where its lone
model's does: a rule the kernels know, without modulation or under retroactive modulation.
Every other rule or modulation, and the plastic LSTM, runs on the generic memory-flat path
(plastic_models.checkpointed).

The math is the lone models' own pieces (`plastic_product`, the rule, the modulation,
`scaled_gradient`) given member-shaped tensors; only the cells' few lines of wiring are
written again here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import torch
from torch import Tensor

from baselines.members import member_linear
from plastic_models.checkpointed import unroll
from plastic_models.fast import plastic_episode, retroactive_episode
from plastic_models.lstm import PlasticLSTM
from plastic_models.network import PlasticNetwork, plastic_product, scaled_gradient
from plastic_models.rules import DecayRule

State = tuple[Tensor, ...]
Tensors = Mapping[str, Tensor]


def per_member(values: Sequence[float | None]) -> float | list[float] | None:
    """One float when the members agree (the lone model's numerics exactly), None when no
    member has a value, else one value per member (inf for a member without one)."""
    if all(v == values[0] for v in values):
        return values[0]
    return [float("inf") if v is None else float(v) for v in values]


def folded(per: Tensor, batch: int) -> Tensor:
    """A per-member (K,) tensor as a per-element rate or clip for folded traces: (K B, 1, 1)."""
    k = per.shape[0]
    return per.view(k, 1, 1, 1).expand(k, batch, 1, 1).reshape(k * batch, 1, 1)


class PlasticMembers:
    """What both plastic families' populations share: the rule, modulation, M(t), clips.

    carried: how many (K, B, ...) tensors precede the traces in the state."""

    carried = 1

    def __init__(self, models: Sequence[PlasticNetwork | PlasticLSTM]):
        lone = models[0]
        self.rule, self.modulation = lone.rule, lone.modulation
        self.modulated = lone.modulator is not None
        self.fanout = self.modulated and lone.config.fanout
        self.per_connection = lone.config.alpha == "connection"
        self.clip = per_member([m.clip for m in models])
        self.constants: dict[tuple[str, torch.device, torch.dtype], Tensor] = {}

    def constant(self, name: str, values: list[float], like: Tensor) -> Tensor:
        """`values` (K,) as a tensor on `like`'s device, made once per device and dtype."""
        key = (name, like.device, like.dtype)
        if key not in self.constants:
            self.constants[key] = torch.tensor(values, device=like.device, dtype=like.dtype)
        return self.constants[key]

    def alpha(self, alpha: Tensor) -> Tensor:
        """alpha (K, ...) shaped for `plastic_product`: (K, 1, N, N), (K, 1, N) or (K, 1, 1)."""
        return alpha.view(alpha.shape[0], 1, *(alpha.shape[1:] or (1,)))

    def read(self, trace: Tensor, x: Tensor) -> Tensor:
        """The rule's read of folded traces (K B, N, N), as (K, B, N, N) for activations x
        (K, B, N)."""
        return self.rule.read(trace).view(*x.shape[:2], *trace.shape[1:])

    def modulate(self, t: Tensors, y: Tensor) -> Tensor:
        """M(t) from activations y (K, B, N): (K B, 1, 1), or (K B, 1, N_post) with fanout."""
        m = torch.tanh(
            member_linear(y, t["modulator.source.weight"], t["modulator.source.bias"])
        )  # (K, B, 1)
        if self.fanout:
            m = member_linear(m, t["modulator.fanout.weight"], t["modulator.fanout.bias"])
        return m.flatten(0, 1).unsqueeze(1)

    def advance(
        self, t: Tensors, traces: Sequence[Tensor], x: Tensor, y: Tensor, m: Tensor | None
    ) -> list[Tensor]:
        """The folded traces (K B, N_pre, N_post) after one step with pre x and post y
        (K, B, N)."""
        b = x.shape[1]
        eta = t.get("eta")
        rate = None if eta is None else folded(eta, b)
        clip: float | Tensor | None
        if isinstance(self.clip, list):
            clip = folded(self.constant("clip", self.clip, x), b)
        else:
            clip = self.clip
        return self.modulation.update(
            self.rule, list(traces), x.flatten(0, 1), y.flatten(0, 1), rate, m, clip
        )

    def traces(self, k: int, batch: int, pre: int, post: int, like: Tensor) -> list[Tensor]:
        """The rule's initial traces of an episode, folded: (K B, N_pre, N_post) each."""
        return self.modulation.initial(self.rule, k * batch, pre, post, like)

    def fold(self, state: State) -> State:
        """The public state (traces (K, B, N, N) after `carried` others) as a cell's, with
        the traces folded (K B, N, N)."""
        kept = state[: self.carried]
        return (*kept, *(trace.flatten(0, 1) for trace in state[self.carried :]))

    def unfold(self, state: State) -> State:
        k, b = state[0].shape[:2]
        kept = state[: self.carried]
        return (*kept, *(trace.unflatten(0, (k, b)) for trace in state[self.carried :]))

    def start(
        self, t: Tensors, batch_size: int, device: torch.device | str, dtype: torch.dtype
    ) -> State:
        """An episode's first state, as the cell takes it (traces folded)."""
        raise NotImplementedError

    def initial_state(
        self, t: Tensors, batch_size: int, device: torch.device | str, dtype: torch.dtype
    ) -> State:
        """An episode's first state: the lone model's with K first."""
        return self.unfold(self.start(t, batch_size, device, dtype))


class PlasticNetworkMembers(PlasticMembers):
    """The batched computation of K `PlasticNetwork`s of one shape."""

    def __init__(self, models: Sequence[PlasticNetwork]):
        super().__init__(models)
        lone = models[0]
        self.direct = lone.direct
        self.neurons = lone.neurons
        self.output_size = lone.output_size
        self.clamp = lone.config.input_mode == "clamp"
        self.fast = lone.fast  # episodes on the fast kernels, as the lone model's

    def drive(self, t: Tensors, inputs: Tensor) -> Tensor:
        """(..., K, B, I) -> what each neuron receives from outside, (..., K, B, N)."""
        if self.direct:
            return inputs
        return member_linear(inputs, t["encoder.weight"], t["encoder.bias"])

    def readout(self, t: Tensors, activations: Tensor) -> Tensor:
        if self.direct:
            return activations[..., : self.output_size]
        return member_linear(activations, t["decoder.weight"], t["decoder.bias"])

    def forward(self, t: Tensors, inputs: Tensor) -> Tensor:
        """(T, K, B, I) -> (T, K, B, O), memory-flat."""
        drive = self.drive(t, inputs)  # (T, K, B, N)
        if self.fast:
            return self.readout(t, self.episode(t, drive))
        state = self.start(t, drive.shape[2], drive.device, drive.dtype)
        params = [p for p in t.values() if p.requires_grad]
        return self.readout(t, unroll(partial(self.cell, t), drive, state, params))

    def episode(self, t: Tensors, drive: Tensor) -> Tensor:
        """Activations (T, K, B, N) on the fast kernels, the members folded into the batch."""
        assert isinstance(self.rule, DecayRule)
        k, folded_drive = drive.shape[1], drive.flatten(1, 2)  # (T, K B, N)
        w, alpha, eta = t["w"], t["alpha"], t["eta"]
        if not self.modulated:
            ys = plastic_episode(folded_drive, w, alpha, eta, self.rule, self.clip, self.clamp, k)
        else:
            names = ["modulator.source.weight", "modulator.source.bias"]
            if self.fanout:
                names += ["modulator.fanout.weight", "modulator.fanout.bias"]
            assert self.clip is not None  # retroactive: 1 unless given
            modulator = tuple(t[name] for name in names)
            ys = retroactive_episode(
                folded_drive, w, alpha, eta, modulator, self.rule, self.clip, self.clamp, k
            )
        return ys.view(drive.shape)

    def start(
        self, t: Tensors, batch_size: int, device: torch.device | str, dtype: torch.dtype
    ) -> State:
        k, n = t["w"].shape[0], self.neurons
        like = torch.empty((), device=device, dtype=dtype)
        return (like.new_zeros(k, batch_size, n), *self.traces(k, batch_size, n, n, like))

    def step(self, t: Tensors, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        """x_t (K, B, I) -> y_t (K, B, O) and the next state."""
        y, state = self.cell(t, self.drive(t, x_t), self.fold(state))
        return self.readout(t, y), self.unfold(state)

    def cell(self, t: Tensors, drive: Tensor, state: Sequence[Tensor]) -> tuple[Tensor, State]:
        """PlasticNetwork.cell, each member with its own tensors: drive (K, B, N)."""
        x, *traces = state
        read = self.read(traces[0], x)
        alpha = self.alpha(t["alpha"])
        y = torch.tanh(drive + plastic_product(x, t["w"], alpha, read, self.per_connection))
        if self.clamp:  # a neuron given a non-zero input takes it
            y = torch.where(drive != 0, drive, y)
        m = self.modulate(t, y) if self.modulated else None
        return y, (y, *self.advance(t, traces, x, y, m))


class PlasticLSTMMembers(PlasticMembers):
    """The batched computation of K `PlasticLSTM`s of one shape (alpha_grad_scale may
    differ)."""

    carried = 2  # h, c

    def __init__(self, models: Sequence[PlasticLSTM]):
        super().__init__(models)
        self.hidden = models[0].config.hidden
        self.scale = per_member([m.alpha_grad_scale for m in models])

    def forward(self, t: Tensors, inputs: Tensor) -> Tensor:
        """(T, K, B, I) -> (T, K, B, O), memory-flat."""
        drive = member_linear(inputs, t["input.weight"], t["input.bias"])  # (T, K, B, 4H)
        state = self.start(t, inputs.shape[2], inputs.device, inputs.dtype)
        params = [p for p in t.values() if p.requires_grad]
        hidden = unroll(partial(self.cell, t), drive, state, params)  # (T, K, B, H)
        return member_linear(hidden, t["head.weight"], t["head.bias"])

    def start(
        self, t: Tensors, batch_size: int, device: torch.device | str, dtype: torch.dtype
    ) -> State:
        k, h = t["w"].shape[0], self.hidden
        like = torch.empty((), device=device, dtype=dtype)
        zero = like.new_zeros(k, batch_size, h)
        return (zero, zero, *self.traces(k, batch_size, h, h, like))

    def step(self, t: Tensors, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        drive = member_linear(x_t, t["input.weight"], t["input.bias"])
        hidden, state = self.cell(t, drive, self.fold(state))
        return member_linear(hidden, t["head.weight"], t["head.bias"]), self.unfold(state)

    def alpha_scale(self, alpha: Tensor) -> float | Tensor:
        """alpha_grad_scale: one float, or one per member shaped to broadcast on alpha."""
        if not isinstance(self.scale, list):
            assert self.scale is not None
            return self.scale
        scale = self.constant("scale", self.scale, alpha)
        return scale.view(-1, *(1 for _ in alpha.shape[1:]))

    def cell(self, t: Tensors, drive: Tensor, state: Sequence[Tensor]) -> tuple[Tensor, State]:
        """PlasticLSTM.cell, each member with its own tensors: drive (K, B, 4H)."""
        h, c, *traces = state
        x_i, x_f, x_o, x_g = drive.chunk(4, dim=-1)
        r_i, r_f, r_o = member_linear(h, t["recurrent.weight"], None).chunk(3, dim=-1)
        i, f, o = torch.sigmoid(x_i + r_i), torch.sigmoid(x_f + r_f), torch.sigmoid(x_o + r_o)
        alpha = self.alpha(scaled_gradient(t["alpha"], self.alpha_scale(t["alpha"])))
        plastic = plastic_product(h, t["w"], alpha, self.read(traces[0], h), self.per_connection)
        g = torch.tanh(x_g + plastic)
        c = f * c + i * g
        h_new = o * torch.tanh(c)
        m = self.modulate(t, h_new) if self.modulated else None
        return h_new, (h_new, c, *self.advance(t, traces, h, g, m))
