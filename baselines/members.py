"""A population of RNN, LSTM or GRU baselines (issue #22): K members of one hidden size run as
single batched ops over a leading member dimension K.

The math is torch's (nn.RNN / nn.LSTM / nn.GRU, one layer), written member-batched:

    RNN:  h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
    LSTM: i, f, g, o = chunks of W_ih x + b_ih + W_hh h + b_hh
          c' = sigmoid(f) c + sigmoid(i) tanh(g),   h' = sigmoid(o) tanh(c')
    GRU:  r, z, n chunks;  r = sigmoid(x_r + h_r),  z = sigmoid(x_z + h_z)
          n = tanh(x_n + r * h_n),   h' = (1 - z) n + z h
          (x_* = W_i* x + b_i*, h_* = W_h* h + b_h*)

The inputs of all T steps are projected at once (one batched matmul); each step is one batched
matmul of the hidden state. Tensors are the lone model's, stacked (K, ...) under its names
(`core.weight_ih_l0`, `head.weight`, ...). The state mirrors the lone one with K first:
(K, 1, B, H), and (h, c) for the LSTM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from baselines.recurrent import RecurrentBaseline

State = tuple[Tensor, ...]


def member_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Each member's `nn.Linear`: x (K, B, I) or (T, K, B, I), weight (K, O, I), bias (K, O)
    -> (K, B, O) or (T, K, B, O); a sequence is one batched matmul over all its steps."""
    if x.dim() == 4:
        steps, _, b, _ = x.shape
        out = member_linear(x.movedim(1, 0).flatten(1, 2), weight, bias)  # (K, T B, O)
        return out.unflatten(1, (steps, b)).movedim(0, 1)
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


class RecurrentMembers:
    """The batched computation of K `RecurrentBaseline`s of one cell and hidden size."""

    def __init__(self, models: Sequence[RecurrentBaseline]):
        self.cell = models[0].cell
        self.hidden = models[0].config.hidden

    def input_bias(self, t: Mapping[str, Tensor]) -> Tensor:
        """The bias added with the input's projection: b_ih, and b_hh too where it is only
        added (RNN, LSTM; the GRU's b_hn sits inside r * (...))."""
        if self.cell == "gru":
            return t["core.bias_ih_l0"]
        return t["core.bias_ih_l0"] + t["core.bias_hh_l0"]

    def recur(self, t: Mapping[str, Tensor], gates_x: Tensor, state: State) -> State:
        """One step from the input's part of the gates (K, B, G), its bias `input_bias`
        included, and the state's parts (K, B, H)."""
        h = state[0]
        w_hh = t["core.weight_hh_l0"].transpose(1, 2)  # (K, H, G)
        if self.cell == "rnn":
            return (torch.tanh(torch.baddbmm(gates_x, h, w_hh)),)
        if self.cell == "lstm":
            i, f, g, o = torch.baddbmm(gates_x, h, w_hh).chunk(4, dim=-1)
            c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        gates_h = member_linear(h, t["core.weight_hh_l0"], t["core.bias_hh_l0"])  # (K, B, G)
        x_r, x_z, x_n = gates_x.chunk(3, dim=-1)
        h_r, h_z, h_n = gates_h.chunk(3, dim=-1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (torch.lerp(n, h, z),)  # (1 - z) n + z h

    def forward(self, t: Mapping[str, Tensor], inputs: Tensor) -> Tensor:
        """inputs (T, K, B, I) -> outputs (T, K, B, O)."""
        gates_x = member_linear(inputs, t["core.weight_ih_l0"], self.input_bias(t))
        state = self.initial_state(t, inputs.shape[2], inputs.device, inputs.dtype)
        state = tuple(part.squeeze(1) for part in state)  # (K, B, H)
        hidden = []
        for gates_t in gates_x:  # (K, B, G)
            state = self.recur(t, gates_t, state)
            hidden.append(state[0])
        return member_linear(torch.stack(hidden), t["head.weight"], t["head.bias"])

    def initial_state(
        self,
        t: Mapping[str, Tensor],
        batch_size: int,
        device: torch.device | str,
        dtype: torch.dtype,
    ) -> State:
        k = t["head.weight"].shape[0]
        zero = torch.zeros(k, 1, batch_size, self.hidden, device=device, dtype=dtype)
        return (zero, zero) if self.cell == "lstm" else (zero,)

    def step(self, t: Mapping[str, Tensor], x_t: Tensor, state: State) -> tuple[Tensor, State]:
        """x_t (K, B, I) -> y_t (K, B, O) and the next state."""
        gates_x = member_linear(x_t, t["core.weight_ih_l0"], self.input_bias(t))
        after = self.recur(t, gates_x, tuple(part.squeeze(1) for part in state))
        y = member_linear(after[0], t["head.weight"], t["head.bias"])
        return y, tuple(part.unsqueeze(1) for part in after)
