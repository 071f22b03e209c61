"""The hand-derived retroactive-modulation kernel (plastic_models/fast/retroactive.py) against the
plain reference and the generic checkpointed path: every rule with a fast form x alpha
granularity x fanout, both input modes, several batch layouts, long episodes, and the clip
actually binding (so the replayed clamp masks are exercised)."""

from __future__ import annotations

import itertools

import pytest
import torch

from plastic_models import PlasticConfig, PlasticNetwork, reference_forward
from plastic_models.fast import driver as episode_module
from tests.support.kernels import check_on_gpu, grads, max_rel, saved_bytes

RULES = ["hebb", "oja", "additive"]
ALPHAS = ["connection", "neuron", "scalar"]
TOLERANCE = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-3)}  # outputs, gradients


def _net(dtype: torch.dtype, scale: float = 0.3, **kw: object) -> PlasticNetwork:
    config = PlasticConfig(
        init_scale=scale,
        alpha_scale=scale,
        modulation="retroactive",
        eta=0.2,
        **kw,  # type: ignore[arg-type]
    )
    net = PlasticNetwork(9, 8, config)
    net.reset_parameters(torch.Generator().manual_seed(0))
    return net.to(dtype)


def _inputs(steps: int, batch: int, dtype: torch.dtype, seed: int = 1) -> torch.Tensor:
    return torch.randn(steps, batch, 9, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _clip_binds(net: PlasticNetwork, x: torch.Tensor) -> bool:
    """Whether the plastic weights reach the clip somewhere in the episode."""
    assert net.clip is not None
    state = net.initial_state(x.shape[1], x.device, x.dtype)
    hits = False
    with torch.no_grad():
        for x_t in x:
            _, state = net.step(x_t, state)
            hits = hits or bool((state[1].abs() == net.clip).any())
    return hits


def _generic_grads(
    net: PlasticNetwork, x: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """Outputs, parameter gradients and input gradient on the generic checkpointed path."""
    with monkeypatch.context() as patch:
        patch.setattr(PlasticNetwork, "fast", property(lambda self: False))
        return _all_grads(net, x)


def _all_grads(
    net: PlasticNetwork, x: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    x = x.detach().requires_grad_(True)
    out = net(x)
    found = grads(net, out)
    g_x = torch.autograd.grad(net(x).square().sum(), x)[0]
    return out.detach(), found, g_x


def _check(net: PlasticNetwork, x: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    out_tol, grad_tol = TOLERANCE[x.dtype]
    assert net.fast  # the kernel, not the generic path
    out, fast, g_x = _all_grads(net, x)
    ref = reference_forward(net, x)
    assert max_rel(out, ref) <= out_tol
    g_ref = grads(net, ref)
    assert fast.keys() == g_ref.keys() == dict(net.named_parameters()).keys()
    for name in g_ref:
        assert torch.isfinite(fast[name]).all(), name
        assert g_ref[name].abs().sum() > 0, name  # every parameter matters
        assert max_rel(fast[name], g_ref[name]) <= grad_tol, name
    if x.dtype == torch.float64:  # the generic path: same numbers to rounding
        gen_out, gen_grads, gen_x = _generic_grads(net, x, monkeypatch)
        assert max_rel(out, gen_out) <= 1e-12
        for name in g_ref:
            assert max_rel(fast[name], gen_grads[name]) <= 1e-10, name
        assert max_rel(g_x, gen_x) <= 1e-10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(
    ("rule", "alpha", "fanout"), list(itertools.product(RULES, ALPHAS, [False, True]))
)
def test_kernel_matches_reference_and_generic_path_at_long_episodes(
    rule: str, alpha: str, fanout: bool, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """120 steps: 11 segments of 11, each replayed from its snapshots. A clip of 0.3 binds."""
    net = _net(dtype, 0.2, rule=rule, alpha=alpha, fanout=fanout, clip=0.3)
    x = _inputs(120, 2, dtype)
    assert _clip_binds(net, x)
    _check(net, x, monkeypatch)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("fanout", [False, True])
def test_kernel_in_clamp_mode_matches_reference(
    alpha: str, fanout: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clamped neurons take their input: dL/dpre = 0 there, the input takes dL/dy."""
    net = _net(torch.float64, alpha=alpha, fanout=fanout, input_mode="clamp", clip=0.3)
    x = _inputs(60, 2, torch.float64, seed=3)
    x[:, :, ::2] = 0.0
    x[::7, :, 1] = 0.0  # some neurons are clamped at some steps only
    assert _clip_binds(net, x)
    _check(net, x, monkeypatch)


@pytest.mark.parametrize(("batch", "chunk_bytes"), [(1, None), (3, None), (3, 1), (4, 2 * 81 * 8)])
def test_batch_layouts_and_chunks_match_reference(
    batch: int, chunk_bytes: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One element, a whole batch in one chunk, one element per chunk, chunks of two."""
    if chunk_bytes is not None:
        monkeypatch.setattr(episode_module, "CHUNK_BYTES", chunk_bytes)
    net = _net(torch.float64, rule="oja", fanout=True, clip=0.3)
    x = _inputs(50, batch, torch.float64, seed=4)
    _check(net, x, monkeypatch)


@pytest.mark.parametrize("steps", [4, 5, 16, 17, 34])
def test_short_and_boundary_episode_lengths(steps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shortest episode every parameter acts in (PW(t) = 0 up to t = 2), one segment, and
    lengths just past a segment boundary."""
    net = _net(torch.float64, alpha="neuron", fanout=True, clip=0.3)
    _check(net, _inputs(steps, 2, torch.float64, seed=5), monkeypatch)


def test_hidden_layers_and_fixed_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Input and readout layers around the neurons; eta_E a buffer (no gradient asked)."""
    net = _net(torch.float64, hidden=6, learn_eta=False, clip=0.3, fanout=True)
    assert "eta" not in dict(net.named_parameters())
    _check(net, _inputs(40, 3, torch.float64, seed=6), monkeypatch)


def test_default_configuration_is_on_the_kernel() -> None:
    """Retroactive modulation with a rule the kernels know runs on the kernel."""
    for rule in RULES:
        assert PlasticNetwork(4, 4, PlasticConfig(rule=rule, modulation="retroactive")).fast
    assert not PlasticNetwork(4, 4, PlasticConfig(modulation="simple")).fast


def _kernel_trace_bytes(steps: int, n: int) -> int:
    """Bytes of the tensors holding (N x N) traces that the kernel keeps for backward."""
    return saved_bytes(steps, n, lambda t: t.shape[-2:] == (n, n))


def test_kernel_memory_grows_as_sqrt_of_episode_length() -> None:
    """Two traces per snapshot, a snapshot every ~sqrt(T) steps: 4x the steps, ~2x the bytes."""
    short, long = _kernel_trace_bytes(100, 24), _kernel_trace_bytes(400, 24)
    trace = 2 * 24 * 24 * 4  # (B, N, N) float32
    assert long == 2 * 19 * trace  # (400 - 1) // 20 snapshots of (PW, E)
    assert long / short <= 2.5


@pytest.mark.cuda  # skipped without CUDA (conftest.py)
@pytest.mark.parametrize("alpha", ALPHAS)
def test_kernel_on_gpu_matches_reference(alpha: str) -> None:
    """The whole batch as one chunk on the GPU, against the reference on the CPU."""
    net = _net(torch.float64, rule="oja", alpha=alpha, fanout=True, clip=0.3)
    assert net.fast
    check_on_gpu(net, _inputs(60, 3, torch.float64, seed=7))
