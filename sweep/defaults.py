"""The published methods' defaults, resolved in one place per (task, family, modulation).

A setting the spec, the search or the command line leaves unset takes the value of the
public code of the method it belongs to (README, "Parity with the reference code"):

- a task names its reference (`Method`): the 2018 paper's code for the pattern and image
  tasks, Backpropamine's for the reward tasks, with that code's training settings (A2C,
  Adam's eps, batch, gradient clip) and, for the plastic network, its sizes scaled to the
  level;
- the plastic network follows the variant it runs: under neuromodulation Backpropamine's
  (simple: the additive rule `clip(H + M x⊗y, ±1)`; retroactive: the eligibility trace's
  decay update and `clip(PW + M E)`; w and alpha ~ 0.01 U[0, 1)); without it the task's
  reference (the 2018 decay rule on the 2018 tasks, Backpropamine's additive rule at its eta
  on the reward tasks);
- every other family keeps its own defaults (the plastic LSTM's are the reference language
  model's, in its config class).

What this resolves is what the trial runs and what its results row records (`hp.rule` is
`additive` and `hp.clip` 1 for a simple-modulated network given neither).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MICONI_2018 = "miconi2018"
BACKPROPAMINE = "backpropamine"


@dataclass(frozen=True)
class Method:
    """What a task's reference code sets. source: which code (MICONI_2018 or BACKPROPAMINE).
    train: training settings it uses (TrainConfig fields). plastic: plastic-network settings
    it uses at this level beyond the variant's (`hidden`, the unmodulated network's `eta`)."""

    source: str = MICONI_2018
    train: Mapping[str, Any] = field(default_factory=dict)
    plastic: Mapping[str, Any] = field(default_factory=dict)


def method_of(task: object) -> Method:
    """A task's reference (`task.method`); a plugin task that declares none gets the families'
    own defaults."""
    method = getattr(task, "method", None)
    return method if isinstance(method, Method) else Method()


def model_defaults(method: Method, family: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the published method has for those of `given` that are unset."""
    if family != "plastic":
        return {}
    modulation = given.get("modulation", "none")
    found: dict[str, Any] = {}
    if modulation != "none" or method.source == BACKPROPAMINE:
        found["init"] = "uniform"
        found["rule"] = "hebb" if modulation == "retroactive" else "additive"
    if method.source == BACKPROPAMINE:
        found |= method.plastic
        if modulation == "simple":  # M(t) is the rate: no eta
            found.pop("eta", None)
    clip = _clip_in_effect(modulation, given.get("rule", found.get("rule", "hebb")))
    if clip is not None:
        found["clip"] = clip
    return {k: v for k, v in found.items() if k not in given}


def _clip_in_effect(modulation: str, rule: str) -> float | None:
    """The clip the network applies when given none (the modulation's, else the rule's), so
    the row records it; None for a name the spec check reports as unknown."""
    from plastic_models.modulation import MODULATIONS
    from plastic_models.rules import REGISTRY

    if modulation not in MODULATIONS or rule not in REGISTRY:
        return None
    return MODULATIONS[modulation].clip(REGISTRY[rule], None)


def resolve_model(method: Method, family: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """`given` with the published method's values for what it leaves unset."""
    return {**model_defaults(method, family, given), **given}


def resolve_train(method: Method, given: Mapping[str, Any]) -> dict[str, Any]:
    """Training settings: `given`, then the task's reference, then TrainConfig's defaults."""
    return {**method.train, **given}


def cell_params(
    method: Method, models: Mapping[str, Any], name: str, sizes: tuple[int, int]
) -> dict[str, Any]:
    """The fixed parameters of spec model `name` (a `sweep.spec.ModelEntry`: `family`,
    `params()`, `match`) at a task of (input, output) `sizes`: a model with
    match_parameters gets the hidden size closest to the other model's parameter count (at
    its fixed settings), one with match_neurons the other model's number of neurons. Raises
    ValueError or TypeError when a model cannot be built at these sizes."""
    from sweep.models import build_model, hidden_for_parameters, num_parameters

    entry = models[name]
    params: dict[str, Any] = entry.params()
    if entry.match is None:
        return params
    kind, other_name = entry.match
    other = models[other_name]
    theirs = resolve_model(method, other.family, other.params())
    if kind == "neurons":
        params["hidden"] = build_model(other.family, *sizes, theirs).neurons
    else:
        target = num_parameters(other.family, *sizes, theirs)
        ours = resolve_model(method, entry.family, params)
        params["hidden"] = hidden_for_parameters(entry.family, target, *sizes, ours)
    return params
