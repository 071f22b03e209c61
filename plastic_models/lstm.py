"""Plastic LSTM (Miconi et al., "Backpropamine", ICLR 2019, the language model): an LSTM whose
hidden -> cell-candidate matrix is plastic, `w + alpha * P`, with any rule and modulation.

    i, f, o = sigmoid(W_x x(t) + b + U h(t-1))                  (each (B, H))
    g       = tanh(W_xg x(t) + b_g + h(t-1) (w + alpha * P))     (P read from the traces)
    c(t)    = f c(t-1) + i g,   h(t) = o tanh(c(t)),   y(t) = head(h(t))

The rule's presynaptic activity is h(t-1), its postsynaptic activity g; M(t) comes from h(t).
Shapes: T steps, B batch, I inputs, H hidden units, O outputs; traces (B, H, H) indexed
[batch, pre, post], zero at each episode start, never stored on the module. The episode runs
on the generic memory-flat path (plastic_models.checkpointed).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from plastic_models.checkpointed import unroll
from plastic_models.config import PlasticLSTMConfig
from plastic_models.network import PlasticModule, draw, plastic_product, scaled_gradient

State = tuple[Tensor, ...]


class PlasticLSTM(PlasticModule):
    """`forward(inputs[T, B, I]) -> outputs[T, B, O]`, and the step interface
    `initial_state(B, device)`, `step(x_t (B, I), state) -> (y_t (B, O), state)`.
    The state is (h (B, H), c (B, H), *traces (B, H, H))."""

    def __init__(self, input_size: int, output_size: int, config: PlasticLSTMConfig | None = None):
        super().__init__()
        config = config or PlasticLSTMConfig()
        h = config.hidden
        self.input_size, self.output_size, self.config = input_size, output_size, config
        self.input = nn.Linear(input_size, 4 * h)  # i, f, o, g from x(t), with the biases
        self.recurrent = nn.Linear(h, 3 * h, bias=False)  # i, f, o from h(t-1)
        self.add_plastic_matrix(config, h)  # w: h(t-1) -> g
        self.head = nn.Linear(h, output_size)
        self.reset_parameters()

    @property
    def neurons(self) -> int:
        return self.config.hidden

    @property
    def alpha_grad_scale(self) -> float:
        scale = self.config.alpha_grad_scale
        return 1.0 / self.config.hidden if scale is None else scale

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        cfg = self.config
        bound = 1.0 / cfg.hidden**0.5
        with torch.no_grad():
            self.w.uniform_(-bound, bound, generator=generator)
            draw(self.alpha, cfg.init, cfg.alpha_scale, generator)
            if self.eta is not None:
                self.eta.fill_(cfg.eta)
            self.input.weight.uniform_(-bound, bound, generator=generator)
            self.input.bias.uniform_(-bound, bound, generator=generator)
            self.recurrent.weight.uniform_(-bound, bound, generator=generator)
            self.reset_linear_layers([self.head], generator)

    def forward(self, inputs: Tensor) -> Tensor:
        """(T, B, I) -> (T, B, O), memory-flat for any rule and modulation."""
        state = self.initial_state(inputs.shape[1], inputs.device, inputs.dtype)
        hidden = unroll(self.cell, self.input(inputs), state, list(self.parameters()))  # (T, B, H)
        return self.head(hidden)

    def initial_state(
        self, batch_size: int, device: torch.device | str, dtype: torch.dtype | None = None
    ) -> State:
        h = self.config.hidden
        like = torch.empty((), device=device, dtype=dtype or self.w.dtype)
        zero = like.new_zeros(batch_size, h)
        return (zero, zero, *self.modulation.initial(self.rule, batch_size, h, h, like))

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        hidden, state = self.cell(self.input(x_t), state)
        return self.head(hidden), state

    def cell(self, drive: Tensor, state: Sequence[Tensor]) -> tuple[Tensor, State]:
        """drive (B, 4H): the input's part of i, f, o, g. Returns h(t) (B, H), next state."""
        h, c, *traces = state
        x_i, x_f, x_o, x_g = drive.chunk(4, dim=-1)
        r_i, r_f, r_o = self.recurrent(h).chunk(3, dim=-1)
        i, f, o = torch.sigmoid(x_i + r_i), torch.sigmoid(x_f + r_f), torch.sigmoid(x_o + r_o)
        alpha = scaled_gradient(self.alpha, self.alpha_grad_scale)
        g = torch.tanh(x_g + plastic_product(h, self.w, alpha, self.rule.read(traces[0])))
        c = f * c + i * g
        h_new = o * torch.tanh(c)
        m = None if self.modulator is None else self.modulator(h_new)
        traces = self.modulation.update(self.rule, traces, h, g, self.eta, m, self.clip)
        return h_new, (h_new, c, *traces)
