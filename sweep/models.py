"""The model registry: one table from family name to config class and constructor."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from functools import partial
from typing import Any, Protocol, cast

import torch
from pydantic import ValidationError
from torch import nn

from baselines import BaselineConfig, RecurrentBaseline
from plastic_models import PlasticConfig, PlasticLSTM, PlasticLSTMConfig, PlasticNetwork
from plastic_models.rules import qualified
from sweep.errors import describe, did_you_mean, registered


class Model(Protocol):
    """What every family builds: a sequence model `(T, B, I) -> (T, B, O)`, and the same
    model one step at a time (`forward` equals `step` unrolled from `initial_state`)."""

    @property
    def num_parameters(self) -> int: ...

    @property
    def neurons(self) -> int:
        """Recurrent units: the plastic network's N, a baseline's hidden size."""
        ...

    def reset_parameters(self, generator: torch.Generator | None = None) -> None: ...

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor: ...

    def initial_state(
        self, batch_size: int, device: torch.device | str, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, ...]: ...

    def step(
        self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]: ...

    def to(self, device: torch.device | str) -> nn.Module: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> Any: ...


def step_unrolled(model: Any, inputs: torch.Tensor) -> torch.Tensor:
    """`step` unrolled from `initial_state` over inputs (T, ..., B, I): what `forward` must
    equal (a model's, or a population's with the member dimension K before B)."""
    state = model.initial_state(inputs.shape[-2], inputs.device)
    outputs = []
    for x_t in inputs:
        y, state = model.step(x_t, state)
        outputs.append(y)
    return torch.stack(outputs)


@dataclass(frozen=True)
class Family:
    name: str
    config: type  # frozen pydantic dataclass of the family's hyperparameters
    build: Callable[[int, int, Any], nn.Module]  # (input_size, output_size, config) -> model

    @property
    def parameters(self) -> list[str]:
        """Names of the hyperparameters this family has (what a search may set)."""
        return [f.name for f in fields(self.config)]


FAMILIES: dict[str, Family] = {
    "plastic": Family("plastic", PlasticConfig, PlasticNetwork),
    "rnn": Family("rnn", BaselineConfig, partial(RecurrentBaseline, "rnn")),
    "lstm": Family("lstm", BaselineConfig, partial(RecurrentBaseline, "lstm")),
    "gru": Family("gru", BaselineConfig, partial(RecurrentBaseline, "gru")),
    "plastic_lstm": Family("plastic_lstm", PlasticLSTMConfig, PlasticLSTM),
}


def register_family(name: str, config: type, build: Callable[[int, int, Any], nn.Module]) -> None:
    """Add a model family (a plugin's): `config` a frozen pydantic dataclass whose fields are
    its hyperparameters (with `hidden` if it can be size-matched), `build(input_size,
    output_size, config)` a model with the `Model` interface."""
    if not name.isidentifier():
        raise ValueError(f"family name {name!r} must be a Python identifier")
    known = FAMILIES.get(name)
    if known is not None and qualified(known.config) != qualified(config):  # not a re-import
        raise ValueError(
            f"model family {name!r} is already registered by {qualified(known.config)}"
        )
    FAMILIES[name] = Family(name, config, build)


def get_family(name: str) -> Family:
    return registered(FAMILIES, "model family", name)


def make_config(family: str, params: Mapping[str, Any] | None = None) -> Any:
    """Validated config of `family` from plain values; bad or unknown keys raise ValueError."""
    fam = get_family(family)
    params = dict(params or {})
    extra = sorted(set(params) - set(fam.parameters))
    if extra:
        raise ValueError(
            f"model family {family!r} has no parameter {', '.join(map(repr, extra))}; "
            f"valid: {', '.join(fam.parameters)}{did_you_mean(extra[0], fam.parameters)}"
        )
    try:
        return fam.config(**params)
    except ValidationError as e:
        raise ValueError(f"{family} {describe(e, schema=fam.config)[0]}") from None


def build_model(
    family: str,
    input_size: int,
    output_size: int,
    params: Mapping[str, Any] | None = None,
    device: torch.device | str = "meta",
) -> Model:
    """Build a model of `family` on `device` (default "meta": shapes only, no memory)."""
    config = make_config(family, params)
    with torch.device(device):
        return cast(Model, get_family(family).build(input_size, output_size, config))


def num_parameters(
    family: str, input_size: int, output_size: int, params: Mapping[str, Any]
) -> int:
    return build_model(family, input_size, output_size, params, device="meta").num_parameters


def hidden_for_parameters(
    family: str,
    target: int,
    input_size: int,
    output_size: int,
    params: Mapping[str, Any] | None = None,
) -> int:
    """The hidden size at which `family` has the parameter count closest to `target`.

    The paper compares neuron-matched and parameter-matched networks; this sizes the latter.
    """
    params = dict(params or {})

    def count(hidden: int) -> int:
        return num_parameters(family, input_size, output_size, {**params, "hidden": hidden})

    lo, hi = 1, 1
    while count(hi) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # smallest hidden with count >= target lies in (lo, hi]
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    return min((lo, hi), key=lambda h: (abs(count(h) - target), h))
