"""Every rule x modulation x alpha granularity on the generic memory-flat path, against the
plain reference (plastic_models.reference), in float32 and float64, over long episodes."""

from __future__ import annotations

import itertools

import pytest
import torch

from plastic_models import (
    PlasticConfig,
    PlasticLSTM,
    PlasticLSTMConfig,
    PlasticNetwork,
    reference_forward,
    reference_lstm_forward,
)
from tests.support.kernels import check_on_gpu, grads, max_rel, saved_bytes
from tests.support.registries import ALPHAS, MODULATIONS, RULES

TOLERANCE = {torch.float64: (1e-10, 1e-8), torch.float32: (1e-5, 1e-3)}  # outputs, gradients


def _net(dtype: torch.dtype, scale: float = 0.3, **kw: object) -> PlasticNetwork:
    config = PlasticConfig(init_scale=scale, alpha_scale=scale, **kw)  # type: ignore[arg-type]
    net = PlasticNetwork(9, 8, config)
    net.reset_parameters(torch.Generator().manual_seed(0))
    return net.to(dtype)


def _check(net: PlasticNetwork, x: torch.Tensor) -> None:
    out_tol, grad_tol = TOLERANCE[x.dtype]
    out, ref = net(x), reference_forward(net, x)
    assert max_rel(out, ref) <= out_tol
    g_out, g_ref = grads(net, out), grads(net, ref)
    assert g_out.keys() == g_ref.keys() == dict(net.named_parameters()).keys()
    for name in g_ref:
        assert torch.isfinite(g_out[name]).all(), name
        assert g_ref[name].abs().sum() > 0, name  # every parameter matters
        assert max_rel(g_out[name], g_ref[name]) <= grad_tol, name


def _generic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every network runs on the generic checkpointed path, hand-derived kernels or not."""
    monkeypatch.setattr(PlasticNetwork, "fast", property(lambda self: False))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(
    ("rule", "modulation", "alpha"), list(itertools.product(RULES, MODULATIONS, ALPHAS))
)
def test_generic_path_matches_reference_at_long_episodes(
    rule: str, modulation: str, alpha: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """120 steps: 11 segments of 11, ten of them recomputed in the backward pass. Weights
    small enough that float32 rounding is not amplified by chaotic dynamics."""
    _generic(monkeypatch)
    net = _net(dtype, 0.1, rule=rule, modulation=modulation, alpha=alpha, eta=0.2)
    x = torch.randn(120, 2, 9, generator=torch.Generator().manual_seed(1), dtype=dtype)
    _check(net, x)


@pytest.mark.parametrize("modulation", ["simple", "retroactive"])
@pytest.mark.parametrize("hidden", [None, 6])
def test_fanout_and_hidden_layers_match_reference(modulation: str, hidden: int | None) -> None:
    net = _net(torch.float64, modulation=modulation, fanout=True, hidden=hidden, clip=0.5)
    x = torch.randn(60, 3, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _check(net, x)


def test_clamp_mode_with_retroactive_modulation_matches_reference() -> None:
    net = _net(torch.float64, modulation="retroactive", input_mode="clamp")
    x = torch.randn(40, 2, 9, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x[:, :, ::2] = 0.0
    _check(net, x)


def test_rule_on_the_generic_path_equals_the_fast_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-modulated decay rule forced onto the generic path gives the fast kernel's numbers."""
    net = _net(torch.float64, rule="oja", eta=0.3)
    x = torch.randn(50, 2, 9, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert net.fast
    fast = net(x)
    g_fast = grads(net, fast)
    monkeypatch.setattr(PlasticNetwork, "fast", property(lambda self: False))
    generic = net(x)
    assert max_rel(generic, fast) <= 1e-12
    g_generic = grads(net, generic)
    for name in g_fast:
        assert max_rel(g_generic[name], g_fast[name]) <= 1e-10, name


def _saved_bytes(steps: int, n: int) -> int:
    """Bytes of the (B, N, N) tensors autograd keeps for the backward pass once the forward
    pass is done: the segments' snapshots and the last segment's own graph."""
    return saved_bytes(steps, n, lambda t: t.dim() == 3)


def test_memory_grows_as_sqrt_of_episode_length_not_linearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Plain autograd keeps several traces per step; the generic path two per snapshot
    (every ~sqrt(T) steps) and the last segment's steps."""
    _generic(monkeypatch)
    short, long = _saved_bytes(100, 24), _saved_bytes(400, 24)
    trace = 2 * 24 * 24 * 4
    assert long <= 12 * 20 * trace  # 20 = sqrt(400): a dozen traces per snapshot and step
    assert long / short <= 2.5  # sqrt(4) = 2, plus rounding of the segment count


def test_simple_modulation_has_no_eta_and_retroactive_learns_eta_e() -> None:
    simple = PlasticNetwork(5, 4, PlasticConfig(modulation="simple", fanout=True))
    names = dict(simple.named_parameters())
    assert "eta" not in names
    assert names["modulator.fanout.weight"].shape == (5, 1)
    retro = PlasticNetwork(5, 4, PlasticConfig(modulation="retroactive", eta=0.1))
    assert float(dict(retro.named_parameters())["eta"].detach()) == pytest.approx(0.1)
    assert retro.clip == 1.0  # the plastic weights are clipped at 1 unless clip is set


def test_unknown_rule_is_one_line_with_the_known_ones_and_a_close_match() -> None:
    with pytest.raises(ValueError) as err:
        PlasticConfig(rule="ojaa")
    line = str(err.value).splitlines()
    assert any("unknown rule 'ojaa'; valid: hebb, oja, additive" in s for s in line)
    assert any("did you mean 'oja'?" in s for s in line)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(
    ("rule", "modulation", "alpha"), list(itertools.product(RULES, MODULATIONS, ALPHAS))
)
def test_plastic_lstm_matches_reference_at_long_episodes(
    rule: str, modulation: str, alpha: str, dtype: torch.dtype
) -> None:
    config = PlasticLSTMConfig(
        hidden=7,
        rule=rule,
        modulation=modulation,  # type: ignore[arg-type]
        alpha=alpha,  # type: ignore[arg-type]
        eta=0.2,
        alpha_scale=0.3,
        fanout=modulation == "simple",
    )
    net = PlasticLSTM(9, 8, config)
    net.reset_parameters(torch.Generator().manual_seed(0))
    net = net.to(dtype)
    x = torch.randn(70, 1, 9, generator=torch.Generator().manual_seed(5), dtype=dtype)
    out_tol, grad_tol = TOLERANCE[dtype]
    out, ref = net(x), reference_lstm_forward(net, x)
    assert max_rel(out, ref) <= out_tol
    g_out, g_ref = grads(net, out), grads(net, ref)  # type: ignore[arg-type]
    for name in g_ref:
        assert g_ref[name].abs().sum() > 0, name
        assert max_rel(g_out[name], g_ref[name]) <= grad_tol, name


@pytest.mark.cuda  # skipped without CUDA (conftest.py)
@pytest.mark.parametrize("modulation", MODULATIONS)
def test_generic_path_on_gpu_matches_reference(modulation: str) -> None:
    net = _net(torch.float64, 0.1, rule="oja", modulation=modulation, fanout=True)
    x = torch.randn(60, 3, 9, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    check_on_gpu(net, x)


def test_retroactive_order_by_hand() -> None:
    """Four steps of a 2-neuron network from the Backpropamine equations, computed by hand:
    y(t) from the current PW, M(t) from y(t), PW from the *old* E, then E. So E first holds
    y(1) ⊗ y(2) after step 2, PW first changes in step 3, and y(4) is the first output that
    plasticity touches."""
    eta_e, alpha = 0.5, 2.0
    net = PlasticNetwork(2, 2, PlasticConfig(modulation="retroactive", eta=eta_e))
    w = torch.tensor([[0.0, 1.0], [0.5, 0.0]])
    v, b = torch.tensor([1.0, -2.0]), 0.3
    with torch.no_grad():
        net.w.copy_(w)
        net.alpha.fill_(alpha)
        assert net.modulator is not None
        net.modulator.source.weight.copy_(v[None])
        net.modulator.source.bias.fill_(b)
    x = torch.tensor([[[1.0, -1.0]], [[0.5, 0.0]], [[0.0, 0.2]], [[0.0, 0.0]]])  # (T=4, B=1, 2)
    out = net(x).detach()[:, 0]
    y1 = torch.tanh(x[0, 0])
    y2 = torch.tanh(y1 @ w + x[1, 0])  # PW = 0: M(1) multiplied E = 0
    e2 = eta_e * torch.outer(y1, y2)  # E after step 2 ((1 - eta_E) * 0 + eta_E y1 ⊗ y2)
    y3 = torch.tanh(y2 @ w + x[2, 0])  # PW still 0: step 2 used the old E = 0
    m3 = torch.tanh(v @ y3 + b)
    pw3 = torch.clamp(m3 * e2, -1, 1)
    y4 = torch.tanh(y3 @ (w + alpha * pw3) + x[3, 0])
    assert torch.allclose(out, torch.stack([y1, y2, y3, y4]))
    assert not torch.allclose(y4, torch.tanh(y3 @ w))  # plasticity did act
