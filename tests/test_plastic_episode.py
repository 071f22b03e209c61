"""The fast episode (plastic_models.fast) against the plain reference and plain autograd."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import plastic_models.fast.driver as episode
from plastic_models import PlasticConfig, PlasticNetwork, reference_forward
from plastic_models.fast import plastic_episode
from plastic_models.rules import DecayRule, get_rule
from tests.support.kernels import VARIANTS, check_on_gpu, grads, max_rel, plastic_net

DTYPES = [torch.float32, torch.float64]


def _ids(v: dict[str, object]) -> str:
    return "-".join(map(str, v.values()))


@pytest.fixture(params=["segments", "one-segment", "one-at-a-time"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Long episodes run in segments, small networks' batch as one chunk. Force the others:
    one segment (short episodes), one batch element at a time (the CPU at N = 1001)."""
    if request.param == "one-segment":
        monkeypatch.setattr(episode, "SHORT_EPISODE", 10**6)
    if request.param == "one-at-a-time":
        monkeypatch.setattr(episode, "CHUNK_BYTES", 1)
    return str(request.param)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
def test_long_episode_with_large_eta_matches_reference(
    variant: dict[str, object], dtype: torch.dtype, layout: str
) -> None:
    """eta = 0.3 over 106 steps (the full task's length): undoing the decay would give NaN in
    float32; gradients within 1e-4 (float32) or 1e-8 (float64) of the per-element reference
    for every parameter."""
    net = plastic_net(eta=0.3, init_scale=0.1, **variant).to(dtype)
    x = torch.randn(106, 2, 9, generator=torch.Generator().manual_seed(3), dtype=dtype) * 3
    fast, ref = net(x), reference_forward(net, x)
    assert max_rel(fast, ref) <= (1e-10 if dtype == torch.float64 else 1e-5)
    g_fast, g_ref = grads(net, fast), grads(net, ref)
    tolerance = 1e-8 if dtype == torch.float64 else 1e-4
    for name in g_ref:
        assert torch.isfinite(g_fast[name]).all(), name
        assert max_rel(g_fast[name], g_ref[name]) <= tolerance, name


@pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
def test_plain_autograd_path_matches_reference(variant: dict[str, object]) -> None:
    """forward_autograd stays as the plain batched baseline the benchmark compares against."""
    net = plastic_net(eta=0.1, **variant)
    x = torch.randn(12, 3, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    plain, ref = net.forward_autograd(x), reference_forward(net, x)
    assert max_rel(plain, ref) <= 1e-10
    g_plain, g_ref = grads(net, plain), grads(net, ref)
    for name in g_ref:
        assert max_rel(g_plain[name], g_ref[name]) <= 1e-10, name


@pytest.mark.parametrize("clip", [None, 0.05])
@pytest.mark.parametrize("rule", ["hebb", "oja", "additive"])
def test_eta_one_and_a_saturated_clip_match_autograd(
    rule: str, clip: float | None, layout: str
) -> None:
    """eta = 1: the decay is 0 (hebb), the trace is the last outer product (additive: the sum
    of them, clipped at 1 unless set); with clip = 0.05 most of it sits outside the range,
    where the clamp's gradient is exactly zero."""
    net = plastic_net(eta=1.0, rule=rule, clip=clip)
    x = torch.randn(30, 2, 9, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    fast, plain = net(x), net.forward_autograd(x)
    assert max_rel(fast, plain) <= 1e-10
    g_fast, g_plain = grads(net, fast), grads(net, plain)
    for name in g_plain:
        assert max_rel(g_fast[name], g_plain[name]) <= 1e-8, name


def test_fixed_eta_gets_no_gradient_and_the_rest_still_matches() -> None:
    net = plastic_net(eta=0.2, learn_eta=False, hidden=6)
    x = torch.randn(20, 2, 9, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    g_fast, g_ref = grads(net, net(x)), grads(net, reference_forward(net, x))
    assert "eta" not in g_fast
    for name in g_ref:
        assert max_rel(g_fast[name], g_ref[name]) <= 1e-8, name


@pytest.mark.parametrize("clip", [None, 0.05])
def test_without_grad_the_same_activations(clip: float | None) -> None:
    net = plastic_net(eta=0.1, clip=clip)
    x = torch.randn(15, 3, 9, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with torch.no_grad():
        quiet = net(x)
    assert torch.equal(quiet, net(x).detach())


def _saved_traces(steps: int, n: int, clip: float | None) -> float:
    """N x N tensors the episode keeps for its backward pass, in units of B N^2 elements."""
    batch = 2
    w = torch.zeros(n, n, requires_grad=True)
    alpha = torch.zeros(n, n, requires_grad=True)
    eta = torch.tensor(0.1, requires_grad=True)
    hebb = get_rule("hebb")
    assert isinstance(hebb, DecayRule)
    out = plastic_episode(torch.randn(steps, batch, n), w, alpha, eta, hebb, clip)
    assert out.grad_fn is not None
    saved = out.grad_fn.saved_tensors  # type: ignore[attr-defined]
    big = sum(t.numel() for t in saved if t.dim() == 4 and t.shape[-2:] == (n, n))
    return big / (batch * n * n)


@pytest.mark.parametrize("clip", [None, 0.05])
def test_memory_grows_as_sqrt_of_episode_length_not_linearly(clip: float | None) -> None:
    """Plain autograd keeps 3 T traces; the fast path a snapshot every ~sqrt(T) steps."""
    short, long = _saved_traces(100, 24, clip), _saved_traces(400, 24, clip)
    assert long <= 2 * math.sqrt(2 * 400)
    assert long / short <= 2.5  # sqrt(4) = 2, plus rounding of the segment count


@pytest.mark.cuda  # skipped without CUDA (conftest.py)
@pytest.mark.parametrize("variant", VARIANTS[::5], ids=_ids)
def test_fast_path_on_gpu_matches_reference(variant: dict[str, object]) -> None:
    net = plastic_net(eta=0.3, init_scale=0.1, **variant)
    x = torch.randn(40, 3, 9, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    check_on_gpu(net, x)


def test_hand_sized_network_is_unchanged_by_the_fast_path() -> None:
    """The 2-neuron example of test_plastic, via both paths."""
    net = PlasticNetwork(2, 2, PlasticConfig(eta=0.5))
    x = torch.tensor([[[1.0, -1.0]], [[0.5, 0.0]], [[0.0, 0.0]]])
    assert torch.allclose(net(x), net.forward_autograd(x))


CLAMP_VARIANTS = [
    dict(rule=rule, alpha=alpha, clip=clip)
    for rule in ["hebb", "oja"]
    for clip in [None, 0.05]
    for alpha in ["connection", "neuron", "scalar"]
]


def _image_like(steps: int, batch: int, dtype: torch.dtype) -> torch.Tensor:
    """Inputs (T, B, 9) shaped like the image task's: patterns held for 4 steps with 2 blank
    steps between them, dense (every channel non-zero) or sparse (about 1 in 3 zero), then a
    half-occluded test pattern to the end; channel 8, not read out, is a bias always 1."""
    gen = torch.Generator().manual_seed(8)
    x = torch.zeros(steps, batch, 9, dtype=dtype)
    first = None
    for p, start in enumerate(range(0, steps - 8, 6)):
        magnitude = torch.rand(batch, 8, generator=gen, dtype=dtype) * 0.9 + 0.1
        pattern = torch.where(torch.rand(batch, 8, generator=gen) < 0.5, -1, 1) * magnitude
        if p % 2:  # sparse
            pattern *= torch.rand(batch, 8, generator=gen) > 0.35
        first = pattern if first is None else first
        x[start : start + 4, :, :8] = pattern
    assert first is not None
    test = first.clone()
    test[:, 4:] = 0  # occluded half: free neurons, to be completed by the network
    x[-6:, :, :8] = test
    x[..., 8] = 1.0
    return x


def _grads_with_inputs(
    net: PlasticNetwork, x: torch.Tensor, out: torch.Tensor
) -> dict[str, torch.Tensor]:
    """_grads plus dL/dinputs (x requires grad)."""
    target = torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)
    loss = (out - target).square().sum()
    named = dict(net.named_parameters())
    grads = torch.autograd.grad(loss, [*named.values(), x])
    return dict(zip([*named, "inputs"], grads, strict=True))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("variant", CLAMP_VARIANTS, ids=_ids)
def test_clamp_mode_matches_plain_path_and_reference(
    variant: dict[str, object], dtype: torch.dtype, layout: str
) -> None:
    """input_mode="clamp" on the fast path: a neuron with a non-zero input holds it (exactly),
    no gradient through its tanh, its input's gradient is dL/dy; w, alpha, eta and the
    inputs' gradients match plain autograd (and the per-element reference) in every layout."""
    net = plastic_net(eta=0.3, input_mode="clamp", **variant).to(dtype)
    x = _image_like(40, 2, dtype).requires_grad_()
    fast = net(x)
    held = x[:, :, :8] != 0
    assert torch.equal(fast[held], x[:, :, :8][held])
    plain = net.forward_autograd(x)
    tight = dtype == torch.float64
    assert max_rel(fast, plain) <= (1e-12 if tight else 1e-5)
    g_fast, g_plain = _grads_with_inputs(net, x, fast), _grads_with_inputs(net, x, plain)
    for name in g_plain:
        assert torch.isfinite(g_fast[name]).all(), name
        assert max_rel(g_fast[name], g_plain[name]) <= (1e-10 if tight else 1e-4), name
    if layout == "segments":  # the per-element yardstick once per variant and dtype
        ref = reference_forward(net, x)
        assert max_rel(fast, ref) <= (1e-12 if tight else 1e-5)
        g_ref = _grads_with_inputs(net, x, ref)
        for name in g_ref:
            assert max_rel(g_fast[name], g_ref[name]) <= (1e-10 if tight else 1e-4), name


@pytest.mark.parametrize("clip", [None, 0.05])
def test_clamp_mode_held_neuron_passes_its_gradient_only_to_its_input(clip: float | None) -> None:
    """The output of a neuron held at its input is that input: the gradient is 1 there and
    exactly 0 for every other input and every parameter. A blank episode (no input at all)
    is the additive mode's."""
    net = plastic_net(eta=0.1, clip=clip, input_mode="clamp")
    x = torch.zeros(20, 1, 9, dtype=torch.float64)
    x[:, 0, 8] = 1.0  # bias
    x[3, 0, 2] = 0.7
    x.requires_grad_()
    grads = torch.autograd.grad(net(x)[3, 0, 2], [x, *net.parameters()])
    assert grads[0][3, 0, 2] == 1.0
    grads[0][3, 0, 2] = 0
    assert all((g == 0).all() for g in grads)
    blank = torch.zeros(20, 1, 9, dtype=torch.float64)
    additive = PlasticNetwork(9, 8, dataclasses.replace(net.config, input_mode="add")).double()
    additive.load_state_dict(net.state_dict())
    assert torch.equal(net(blank), additive(blank))


@pytest.mark.cuda  # skipped without CUDA (conftest.py)
@pytest.mark.parametrize("variant", CLAMP_VARIANTS[::4], ids=_ids)
def test_clamp_mode_on_gpu_matches_reference(variant: dict[str, object]) -> None:
    net = plastic_net(eta=0.3, input_mode="clamp", **variant)
    x = _image_like(40, 3, torch.float64)
    g_ref = grads(net, reference_forward(net, x))
    gpu = net.cuda()
    g_gpu = grads(gpu, gpu(x.cuda()))
    for name in g_ref:
        assert max_rel(g_gpu[name].cpu(), g_ref[name]) <= 1e-8, name


@pytest.mark.parametrize("clamp", [False, True], ids=["add", "clamp"])
@pytest.mark.parametrize("variant", CLAMP_VARIANTS, ids=_ids)
def test_a_batch_split_into_uneven_chunks_matches_autograd(
    variant: dict[str, object], clamp: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the CPU a batch whose traces outgrow the cache runs in chunks (the image task's
    `medium` level, N = 257 at batch 16, runs as 15 + 1): chunks of 2, 2 and 1 here, each a
    strided slice of the episode's buffers, over several segments."""
    monkeypatch.setattr(episode, "CHUNK_BYTES", 2 * 9 * 9 * 8)  # 2 float64 traces of N = 9
    net = plastic_net(eta=0.2, input_mode="clamp" if clamp else "add", **variant)
    assert episode.chunk_size(5, 9, torch.float64, torch.device("cpu")) == 2
    x = _image_like(40, 5, torch.float64)
    fast, plain = net(x), net.forward_autograd(x)
    assert max_rel(fast, plain) <= 1e-10
    g_fast, g_plain = grads(net, fast), grads(net, plain)
    for name in g_plain:
        assert max_rel(g_fast[name], g_plain[name]) <= 1e-8, name
