"""Plain reference implementation, written straight from the paper's equations.

    x_j(t)         = tanh( sum_i (w[i,j] + alpha[i,j] * Hebb[i,j](t)) * x_i(t-1) + input_j(t) )
    Hebb[i,j](t+1) = (1 - eta) * Hebb[i,j](t) + eta * x_i(t-1) * x_j(t)          (decay Hebb)
    Hebb[i,j](t+1) = Hebb[i,j](t) + eta * x_j(t) * (x_i(t-1) - x_j(t) Hebb[i,j])  (Oja)

One batch element at a time, the full connection matrix formed at every step. Slow on
purpose: it is the yardstick every faster path in `PlasticNetwork` is tested against.
"""

from __future__ import annotations

import torch
from torch import Tensor

from plastic_models.network import PlasticNetwork


def reference_forward(net: PlasticNetwork, inputs: Tensor) -> Tensor:
    """Same contract as `net(inputs)`: (T, B, I) -> (T, B, O), using net's parameters."""
    cfg = net.config
    n = net.neurons
    alpha = net.alpha.expand(n, n)  # per-neuron alpha is per postsynaptic j: alpha[i, j] = a[j]
    drive = net.drive(inputs)
    episodes = []
    for b in range(drive.shape[1]):
        x = torch.zeros(n, dtype=drive.dtype, device=drive.device)
        hebb = torch.zeros(n, n, dtype=drive.dtype, device=drive.device)
        xs = []
        for t in range(drive.shape[0]):
            weights = net.w + alpha * hebb
            y = torch.tanh(x @ weights + drive[t, b])
            if cfg.input_mode == "clamp":  # a neuron given a non-zero input takes its value
                y = torch.where(drive[t, b] != 0, drive[t, b], y)
            if cfg.rule == "hebb":
                hebb = (1 - net.eta) * hebb + net.eta * torch.outer(x, y)
            else:
                hebb = hebb + net.eta * y[None, :] * (x[:, None] - y[None, :] * hebb)
            if cfg.clip is not None:
                hebb = torch.clamp(hebb, -cfg.clip, cfg.clip)
            x = y
            xs.append(y)
        episodes.append(torch.stack(xs))
    return net.readout(torch.stack(episodes, dim=1))
