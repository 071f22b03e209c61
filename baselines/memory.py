"""How much memory one training update of an RNN, LSTM or GRU holds for its activations, per
model (a population's member holds the same). Counted from the shapes, not measured.

Each step keeps, under autograd, the pre-activations of its gates and their activations
(2 G, G = H, 4 H, 3 H for RNN, LSTM, GRU), the cell and hidden states and their gradients
(4 H); the whole episode's input projection (T, B, G) besides. `graph` ("episode": `forward`
then backward; "steps": `step` unrolled, as A2C plays) keeps the same here.
"""

from __future__ import annotations

from typing import Literal

from baselines.recurrent import RecurrentBaseline

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
FLOAT = 4  # bytes: float32


def activation_bytes(
    model: RecurrentBaseline, batch: int, steps: int, graph: Literal["episode", "steps"] = "episode"
) -> int:
    """Peak bytes of one update's activations (no parameters, no inputs)."""
    h = model.config.hidden
    gates = GATES[model.cell] * h
    per_step = 3 * gates + 4 * h
    return FLOAT * batch * steps * per_step
