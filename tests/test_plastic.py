"""The plastic network against the paper's equations."""

from __future__ import annotations

import pytest
import torch

from plastic_models import PlasticConfig, PlasticNetwork, reference_forward
from sweep.models import num_parameters
from tests.support.kernels import VARIANTS, grads, max_rel, plastic_net


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_fast_path_matches_reference(variant: dict[str, object]) -> None:
    net = plastic_net(eta=0.1, **variant)
    x = torch.randn(12, 3, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    fast, ref = net(x), reference_forward(net, x)
    assert max_rel(fast, ref) <= 1e-10
    g_fast, g_ref = grads(net, fast), grads(net, ref)
    for name in g_ref:  # float64: every rule's hand-derived backward, additive's included
        assert max_rel(g_fast[name], g_ref[name]) <= 1e-8, name


@pytest.mark.parametrize("rule", ["hebb", "oja"])
def test_large_eta_long_episode_in_float32(rule: str) -> None:
    """eta = 0.3 over 106 steps (the full task's length), in float32, gradients within 1e-4."""
    net = plastic_net(eta=0.3, rule=rule, init_scale=0.1).float()
    x = torch.randn(106, 2, 9, generator=torch.Generator().manual_seed(3)) * 3
    g_fast, g_ref = grads(net, net(x)), grads(net, reference_forward(net, x))
    for name in g_ref:
        assert torch.isfinite(g_fast[name]).all()
        assert max_rel(g_fast[name], g_ref[name]) <= 1e-4, name


def test_hebb_trace_follows_the_decay_equation_by_hand() -> None:
    """Three steps of a 2-neuron network computed by hand from the paper's equations."""
    eta, alpha = 0.5, 2.0
    net = PlasticNetwork(2, 2, PlasticConfig(eta=eta))
    w = torch.tensor([[0.0, 1.0], [0.5, 0.0]])
    with torch.no_grad():
        net.w.copy_(w)
        net.alpha.fill_(alpha)
    x = torch.tensor([[[1.0, -1.0]], [[0.5, 0.0]], [[0.0, 0.0]]])  # (T=3, B=1, I=2)
    out = net(x).detach()[:, 0]
    y1 = torch.tanh(x[0, 0])  # x(0) = 0: input only, and the trace stays zero
    y2 = torch.tanh(y1 @ w + x[1, 0])
    hebb = eta * torch.outer(y1, y2)  # (1 - eta) * 0 + eta * x_pre * x_post
    y3 = torch.tanh(y2 @ (w + alpha * hebb))
    assert torch.allclose(out, torch.stack([y1, y2, y3]))


def test_trace_starts_at_zero_every_episode_and_is_not_stored() -> None:
    net = plastic_net()
    x = torch.randn(5, 2, 9, dtype=torch.float64)
    first = net(x)
    assert torch.equal(first, net(x))  # no trace carried between episodes
    assert not any("hebb" in name for name, _ in net.state_dict().items())


def test_eta_learned_or_fixed() -> None:
    assert "eta" in dict(PlasticNetwork(3, 2).named_parameters())
    fixed = PlasticNetwork(3, 2, PlasticConfig(learn_eta=False, eta=0.2))
    assert "eta" not in dict(fixed.named_parameters())
    assert fixed.eta is not None and fixed.eta.item() == pytest.approx(0.2)


def test_paper_parameter_counts() -> None:
    """REFERENCE §2: 2,004,003 parameters for the 1000-bit task, 5,203 for the simplified."""
    assert num_parameters("plastic", 1001, 1000, {}) == 2_004_003
    assert num_parameters("plastic", 51, 50, {}) == 5_203


def test_direct_architecture_needs_enough_neurons() -> None:
    with pytest.raises(ValueError, match="set hidden"):
        PlasticNetwork(3, 5)


def test_clamp_mode_follows_the_reference_and_holds_inputs() -> None:
    """The image task's input mode: a neuron given a non-zero input takes that value."""
    net = plastic_net(eta=0.1, input_mode="clamp")
    x = torch.randn(12, 3, 9, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x[:, :, ::2] = 0.0  # half the neurons free, half clamped
    fast, ref = net(x), reference_forward(net, x)
    assert max_rel(fast, ref) <= 1e-10
    assert torch.equal(fast[:, :, 1::2], x[:, :, 1:8:2])
    g_fast, g_ref = grads(net, fast), grads(net, ref)
    for name in g_ref:
        assert max_rel(g_fast[name], g_ref[name]) <= 1e-4, name


def test_clamp_mode_needs_the_direct_architecture() -> None:
    with pytest.raises(ValueError, match="direct architecture"):
        PlasticNetwork(9, 8, PlasticConfig(hidden=6, input_mode="clamp"))
