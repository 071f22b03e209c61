"""Settings of a plastic recurrent network (Miconi, Clune & Stanley, ICML 2018, §2)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt
from pydantic.dataclasses import dataclass

Rule = Literal["hebb", "oja"]
InputMode = Literal["add", "clamp"]
AlphaGranularity = Literal["connection", "neuron", "scalar"]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class PlasticConfig:
    """Hyperparameters of a plastic network; input/output sizes come from the task.

    hidden: number of recurrent neurons N. None selects the paper's *direct* architecture
        (one neuron per input channel, input added to the pre-activation, the first
        `output_size` activations are the output). A number selects the general form with
        a linear input layer (I -> N) and a linear readout (N -> O).
    rule: "hebb" is the paper's decay rule, Hebb <- (1 - eta) Hebb + eta x_pre x_post;
        "oja" is Hebb <- Hebb + eta x_post (x_pre - x_post Hebb).
    alpha: plasticity coefficient per connection (N x N), per postsynaptic neuron (N) or
        one scalar for the whole network.
    eta: initial (or fixed, see learn_eta) plasticity rate.
    learn_eta: train eta by gradient descent (the paper) or keep it fixed.
    clip: if set, the trace is clamped to [-clip, clip] after every update.
    init_scale: w is drawn from init_scale * N(0, 1) (0.01 in the reference).
    alpha_scale: alpha is drawn from alpha_scale * N(0, 1) (0.01 in the reference).
    input_mode: "add" adds the input to the pre-activation (the paper's pattern task);
        "clamp" sets a neuron that receives a non-zero input to that input (the paper's
        image task). Clamping needs the direct architecture; both modes run on the fast
        episode path.
    """

    hidden: PositiveInt | None = None
    rule: Rule = "hebb"
    alpha: AlphaGranularity = "connection"
    eta: Annotated[float, Field(gt=0, le=1)] = 0.01
    learn_eta: bool = True
    clip: PositiveFloat | None = None
    init_scale: NonNegativeFloat = 0.01
    alpha_scale: NonNegativeFloat = 0.01
    input_mode: InputMode = "add"
