"""Non-plastic recurrent baselines with the plastic network's sequence-level interface.

`forward(inputs[T, B, I]) -> outputs[T, B, O]`: a whole-sequence torch RNN core (cuDNN on a
GPU) followed by a linear readout of the hidden state at every step. The step interface
(`initial_state`, `step`) runs the same core one step at a time, for closed-loop tasks.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import ConfigDict, PositiveInt
from pydantic.dataclasses import dataclass
from torch import Tensor, nn

Cell = Literal["rnn", "lstm", "gru"]
_CORES: dict[str, type[nn.RNN | nn.LSTM | nn.GRU]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class BaselineConfig:
    """hidden: number of hidden units (neurons) of the recurrent core."""

    hidden: PositiveInt = 64


class RecurrentBaseline(nn.Module):
    """Elman RNN (tanh), LSTM or GRU core plus a linear readout."""

    def __init__(
        self, cell: Cell, input_size: int, output_size: int, config: BaselineConfig | None = None
    ):
        super().__init__()
        if cell not in _CORES:
            raise ValueError(f"unknown cell {cell!r}; valid: {', '.join(_CORES)}")
        config = config or BaselineConfig()
        self.cell = cell
        self.input_size = input_size
        self.output_size = output_size
        self.config = config
        self.core = _CORES[cell](input_size, config.hidden)
        self.head = nn.Linear(config.hidden, output_size)
        self.reset_parameters()

    @property
    def neurons(self) -> int:
        return self.config.hidden

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """PyTorch's default recurrent init, U(-1/sqrt(H), 1/sqrt(H)), from `generator`."""
        bound = 1.0 / math.sqrt(self.config.hidden)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound, generator=generator)

    def forward(self, inputs: Tensor) -> Tensor:
        hidden, _ = self.core(inputs)  # (T, B, H)
        return self.head(hidden)  # (T, B, O)

    def initial_state(
        self, batch_size: int, device: torch.device | str, dtype: torch.dtype | None = None
    ) -> tuple[Tensor, ...]:
        """Zero hidden state (1, B, H); the LSTM's is (h, c)."""
        dtype = dtype or self.head.weight.dtype
        zero = torch.zeros(1, batch_size, self.config.hidden, device=device, dtype=dtype)
        return (zero, zero) if isinstance(self.core, nn.LSTM) else (zero,)

    def step(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One time step: x_t (B, I) -> y_t (B, O) and the next state."""
        carried = state if isinstance(self.core, nn.LSTM) else state[0]
        hidden, after = self.core(x_t.unsqueeze(0), carried)  # (1, B, H)
        return self.head(hidden[0]), tuple(after) if isinstance(after, tuple) else (after,)
