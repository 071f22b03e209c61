"""One behavioural contract, run over every registered model family."""

from __future__ import annotations

import pickle
from typing import cast

import pytest
import torch

from sweep.models import (
    FAMILIES,
    Model,
    build_model,
    get_family,
    hidden_for_parameters,
    num_parameters,
)
from tests.conftest import make
from tests.support.registries import ALPHAS, MODULATIONS, PLASTIC_FAMILIES, RULES

T, B, IN, OUT = 7, 3, 9, 8
VARIANTS: list[dict[str, object]] = [
    {"family": family, "rule": rule, "modulation": modulation, "fanout": fanout, "alpha": alpha}
    for family in PLASTIC_FAMILIES
    for rule in RULES
    for modulation in MODULATIONS
    for fanout in [modulation == "simple"]  # fan-out goes with a simple modulator
    for alpha in ALPHAS
]


def inputs(seed: int = 1) -> torch.Tensor:
    return torch.randn(T, B, IN, generator=torch.Generator().manual_seed(seed))


def test_output_shape_and_dtype(family: str) -> None:
    out = make(family)(inputs())
    assert out.shape == (T, B, OUT)
    assert out.dtype == torch.float32


def test_gradient_reaches_every_parameter(family: str) -> None:
    model = make(family)
    model(inputs()).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, f"{family}.{name} got a zero gradient"


def test_same_seed_same_output(family: str) -> None:
    assert torch.equal(make(family)(inputs()), make(family)(inputs()))


def test_different_init_seed_different_output(family: str) -> None:
    a, b = make(family), make(family)
    b.reset_parameters(torch.Generator().manual_seed(1))
    assert not torch.equal(a(inputs()), b(inputs()))


def test_pickle_round_trip(family: str) -> None:
    model = make(family)
    clone = pickle.loads(pickle.dumps(model))
    assert torch.equal(model(inputs()), clone(inputs()))


def test_num_parameters_counts_every_parameter(family: str) -> None:
    model = make(family)
    assert model.num_parameters == sum(p.numel() for p in model.parameters())
    params = {} if family == "plastic" else {"hidden": 12}
    assert num_parameters(family, IN, OUT, params) == model.num_parameters


def test_batch_elements_are_independent(family: str) -> None:
    """Each batch element is its own episode: its output ignores the other elements."""
    model, x = make(family), inputs()
    alone = model(x[:, :1])
    assert torch.allclose(model(x)[:, :1], alone, atol=1e-6)


def _unrolled(model: Model, x: torch.Tensor) -> torch.Tensor:
    state = model.initial_state(x.shape[1], x.device, x.dtype)
    outputs = []
    for x_t in x:
        y, state = model.step(x_t, state)
        outputs.append(y)
    return torch.stack(outputs)


def test_forward_equals_step_unrolled(family: str) -> None:
    """The step interface (closed-loop tasks) is the same model: outputs and gradients."""
    model = make(family)
    x = torch.randn(40, B, IN, generator=torch.Generator().manual_seed(3))  # several segments
    whole, stepped = model(x), _unrolled(model, x)
    assert torch.allclose(whole, stepped, atol=1e-5), (whole - stepped).abs().max()
    named = dict(model.named_parameters())
    g_whole = torch.autograd.grad(whole.square().sum(), list(named.values()))
    g_step = torch.autograd.grad(stepped.square().sum(), list(named.values()))
    for name, a, b in zip(named, g_whole, g_step, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_variants_forward_equals_step_unrolled(variant: dict[str, object]) -> None:
    """Every plastic rule and modulation (the fast kernels and the generic path) and the
    plastic LSTM's."""
    params = {k: v for k, v in variant.items() if k != "family"}
    if variant["family"] != "plastic":
        params["hidden"] = 12
    built = build_model(str(variant["family"]), IN, OUT, params, device="cpu")
    built.reset_parameters(torch.Generator().manual_seed(0))
    model = cast(Model, cast(torch.nn.Module, built).double())
    x = torch.randn(30, B, IN, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert torch.allclose(model(x), _unrolled(model, x), rtol=1e-9, atol=1e-12)


def test_unknown_family_lists_the_known_ones() -> None:
    with pytest.raises(
        ValueError,
        match="unknown model family 'transformer'; valid: plastic, rnn, lstm, gru, plastic_lstm",
    ):
        get_family("transformer")


def test_unknown_parameter_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="has no parameter 'rule'; valid: hidden"):
        build_model("lstm", IN, OUT, {"rule": "oja"})


@pytest.mark.parametrize("baseline", sorted(set(FAMILIES) - {"plastic"}))
def test_hidden_for_parameters_matches_the_paper_comparison(baseline: str) -> None:
    target = num_parameters("plastic", 51, 50, {})  # 5,203 for the simplified task
    hidden = hidden_for_parameters(baseline, target, 51, 50)
    best = num_parameters(baseline, 51, 50, {"hidden": hidden})
    for other in (hidden - 1, hidden + 1):
        assert abs(best - target) <= abs(
            num_parameters(baseline, 51, 50, {"hidden": other}) - target
        )
    assert abs(best - target) / target < 0.05
