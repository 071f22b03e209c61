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
from typing import Annotated

import torch
from pydantic import (
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    field_validator,
)
from pydantic.dataclasses import dataclass
from torch import Tensor, nn

from plastic_models.checkpointed import unroll
from plastic_models.config import AlphaGranularity, InitDistribution, ModulationName
from plastic_models.modulation import MODULATIONS, Neuromodulator
from plastic_models.network import (
    alpha_shape,
    draw,
    plastic_product,
    reset_linear,
    scaled_gradient,
)
from plastic_models.rules import get_rule

State = tuple[Tensor, ...]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class PlasticLSTMConfig:
    """Hyperparameters of a plastic LSTM; input/output sizes come from the task.

    Defaults are the reference language model's (backpropamine awd-lstm-lm/mylstm.py and
    main.py): the additive rule clipped at 2 (`cliptype clip`, `clipval 2.0`), M(t) through
    the fanout, alpha per neuron ~ 1e-4 U[0, 1), alpha's gradient divided by about H
    (`--agdiv`), eta 0.01 without modulation.

    hidden: number of LSTM units H.
    rule, eta, learn_eta, modulation, fanout: as for the plastic network (PlasticConfig).
    alpha: per connection (H x H), per postsynaptic unit (H, the language model's default) or
        one scalar.
    clip: the traces' hard clip; None: no clip unless the modulation or the rule sets one.
    init, alpha_scale: alpha ~ alpha_scale * N(0, 1) or U[0, 1). w and the other weights get
        PyTorch's LSTM init, U(-1/sqrt(H), 1/sqrt(H)).
    alpha_grad_scale: alpha's gradient is multiplied by this (its value is unchanged);
        None: 1 / H, the reference's `--agdiv H`; 1: plain gradient descent.
    """

    hidden: PositiveInt = 64
    rule: str = "additive"
    alpha: AlphaGranularity = "neuron"
    eta: Annotated[float, Field(gt=0, le=1)] = 0.01
    learn_eta: bool = True
    clip: PositiveFloat | None = 2.0
    modulation: ModulationName = "none"
    fanout: bool = True
    init: InitDistribution = "uniform"
    alpha_scale: NonNegativeFloat = 1e-4
    alpha_grad_scale: PositiveFloat | None = None

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, name: str) -> str:
        get_rule(name)
        return name


class PlasticLSTM(nn.Module):
    """`forward(inputs[T, B, I]) -> outputs[T, B, O]`, and the step interface
    `initial_state(B, device)`, `step(x_t (B, I), state) -> (y_t (B, O), state)`.
    The state is (h (B, H), c (B, H), *traces (B, H, H))."""

    eta: Tensor | None

    def __init__(self, input_size: int, output_size: int, config: PlasticLSTMConfig | None = None):
        super().__init__()
        config = config or PlasticLSTMConfig()
        h = config.hidden
        self.input_size, self.output_size, self.config = input_size, output_size, config
        self.rule = get_rule(config.rule)
        self.modulation = MODULATIONS[config.modulation]
        self.clip = self.modulation.clip(self.rule, config.clip)
        self.input = nn.Linear(input_size, 4 * h)  # i, f, o, g from x(t), with the biases
        self.recurrent = nn.Linear(h, 3 * h, bias=False)  # i, f, o from h(t-1)
        self.w = nn.Parameter(torch.empty(h, h))  # h(t-1) -> g, [pre, post]
        self.alpha = nn.Parameter(torch.empty(alpha_shape(config.alpha, h, h)))
        eta = torch.tensor(float(config.eta))
        if not self.modulation.uses_eta:
            self.register_parameter("eta", None)
        elif config.learn_eta:
            self.eta = nn.Parameter(eta)
        else:
            self.register_buffer("eta", eta)
        self.modulator = (
            Neuromodulator(h, h, config.fanout) if self.modulation.uses_modulator else None
        )
        self.head = nn.Linear(h, output_size)
        self.reset_parameters()

    @property
    def neurons(self) -> int:
        return self.config.hidden

    @property
    def alpha_grad_scale(self) -> float:
        scale = self.config.alpha_grad_scale
        return 1.0 / self.config.hidden if scale is None else scale

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

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
            layers: list[nn.Linear | None] = [self.head]
            if self.modulator is not None:
                layers += [self.modulator.source, self.modulator.fanout]
            for layer in layers:
                if layer is not None:
                    reset_linear(layer, generator)

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
