"""What the plastic-kernel tests share: the variants, a network, gradients, their distance,
the GPU check and the bytes autograd keeps."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from plastic_models import PlasticConfig, PlasticNetwork, reference_forward
from tests.support.registries import ALPHAS, RULES

VARIANTS = [
    dict(rule=rule, alpha=alpha, clip=clip, hidden=hidden)
    for rule, alpha, clip, hidden in itertools.product(RULES, ALPHAS, [None, 0.05], [None, 6])
]


def plastic_net(**kw: object) -> PlasticNetwork:
    """A float64 9-in, 8-out plastic network from a fixed generator, weights and alphas large
    enough (0.3) that plasticity matters."""
    scale = kw.pop("init_scale", 0.3)
    config = PlasticConfig(init_scale=scale, alpha_scale=scale, **kw)  # type: ignore[arg-type]
    net = PlasticNetwork(9, 8, config)
    net.reset_parameters(torch.Generator().manual_seed(0))
    return net.double()


def grads(net: PlasticNetwork, out: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every parameter's gradient of a fixed squared-error loss on `out`, by name."""
    target = torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)
    loss = (out - target).square().sum()
    names = [n for n, p in net.named_parameters()]
    found = torch.autograd.grad(loss, [p for _, p in net.named_parameters()])
    return dict(zip(names, found, strict=True))


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest difference of `a` from `b`, relative to `b`'s largest magnitude."""
    return float((a - b).detach().abs().max() / b.detach().abs().max().clamp_min(1e-30))


def check_on_gpu(net: PlasticNetwork, x: torch.Tensor) -> None:
    """Every parameter's gradient of `net` on the GPU within 1e-8 of the plain reference's on
    the CPU (float64 inputs x)."""
    g_ref = grads(net, reference_forward(net, x))
    gpu = net.cuda()
    g_gpu = grads(gpu, gpu(x.cuda()))
    for name in g_ref:
        assert max_rel(g_gpu[name].cpu(), g_ref[name]) <= 1e-8, name


def saved_bytes(steps: int, n: int, counted: Callable[[torch.Tensor], bool]) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of an N-neuron retroactive
    network's episode (batch 2) once the forward pass is done, those `counted`, each once."""
    net = PlasticNetwork(n, n, PlasticConfig(modulation="retroactive"))
    kept: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(torch.randn(steps, 2, n))
    big = {t.data_ptr(): t.numel() * t.element_size() for t in kept if counted(t)}
    return sum(big.values())
