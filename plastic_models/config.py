"""Settings of a plastic recurrent network (Miconi, Clune & Stanley, ICML 2018, §2; Miconi et
al., "Backpropamine", ICLR 2019) and of the plastic LSTM."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt
from pydantic.dataclasses import dataclass

from plastic_models.rules import get_rule

ModulationName = Literal["none", "simple", "retroactive"]
InitDistribution = Literal["normal", "uniform"]
InputMode = Literal["add", "clamp"]
AlphaGranularity = Literal["connection", "neuron", "scalar"]


def _known_rule(name: str) -> str:
    get_rule(name)  # one line naming the known rules (and a close match)
    return name


RuleName = Annotated[str, AfterValidator(_known_rule)]  # a name in the rule registry


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class PlasticConfig:
    """Hyperparameters of a plastic network; input/output sizes come from the task.

    hidden: number of recurrent neurons N. None selects the paper's *direct* architecture
        (one neuron per input channel, input added to the pre-activation, the first
        `output_size` activations are the output). A number selects the general form with
        a linear input layer (I -> N) and a linear readout (N -> O).
    rule: a name in the rule registry (plastic_models.rules): "hebb" is the paper's decay
        rule, Hebb <- (1 - eta) Hebb + eta x_pre x_post; "oja" is
        Hebb <- Hebb + eta x_post (x_pre - x_post Hebb); "additive" is Backpropamine's
        Hebb <- clip(Hebb + eta x_pre x_post); plugins may register more.
    alpha: plasticity coefficient per connection (N x N), per postsynaptic neuron (N) or
        one scalar for the whole network.
    eta: initial (or fixed, see learn_eta) plasticity rate; under retroactive modulation the
        eligibility trace's rate eta_E; unused (no parameter) under simple modulation.
    learn_eta: train eta by gradient descent (the paper) or keep it fixed.
    clip: if set, the trace is clamped to [-clip, clip] after every update. Unset: 1 under
        modulation (the plastic weights, as in the Backpropamine code), else the rule's own
        clip ("additive": 1; none for "hebb" and "oja").
    modulation: "none" (eta drives the rule), "simple" (M(t) = tanh(v . y(t) + b) replaces
        eta) or "retroactive" (M(t) turns an eligibility trace into plastic weights).
    fanout: under modulation, M(t) goes through a learned Linear(1 -> N): one value per
        postsynaptic neuron instead of one per batch element (ignored without modulation, so
        a search may cross the two freely).
    init: w and alpha are drawn from init_scale * N(0, 1) ("normal", the 2018 code) or
        init_scale * U[0, 1) ("uniform", the Backpropamine code).
    init_scale: scale of w's initial values (0.01 in both reference codes).
    alpha_scale: scale of alpha's initial values (0.01 in both reference codes).
    input_mode: "add" adds the input to the pre-activation (the paper's pattern task);
        "clamp" sets a neuron that receives a non-zero input to that input (the paper's
        image task). Clamping needs the direct architecture; both modes run on the fast
        episode path.
    """

    hidden: PositiveInt | None = None
    rule: RuleName = "hebb"
    alpha: AlphaGranularity = "connection"
    eta: Annotated[float, Field(gt=0, le=1)] = 0.01
    learn_eta: bool = True
    clip: PositiveFloat | None = None
    modulation: ModulationName = "none"
    fanout: bool = False
    init: InitDistribution = "normal"
    init_scale: NonNegativeFloat = 0.01
    alpha_scale: NonNegativeFloat = 0.01
    input_mode: InputMode = "add"


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
    rule: RuleName = "additive"
    alpha: AlphaGranularity = "neuron"
    eta: Annotated[float, Field(gt=0, le=1)] = 0.01
    learn_eta: bool = True
    clip: PositiveFloat | None = 2.0
    modulation: ModulationName = "none"
    fanout: bool = True
    init: InitDistribution = "uniform"
    alpha_scale: NonNegativeFloat = 1e-4
    alpha_grad_scale: PositiveFloat | None = None
