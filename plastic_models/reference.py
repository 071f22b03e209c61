"""Plain reference implementation, written straight from the papers' equations.

    x_j(t)         = tanh( sum_i (w[i,j] + alpha[i,j] * P[i,j](t)) * x_i(t-1) + input_j(t) )

Rules, at a rate r (eta, or M(t) under simple modulation):

    hebb:      H <- (1 - r) H + r x_i(t-1) x_j(t)
    oja:       H <- H + r x_j(t) (x_i(t-1) - x_j(t) H)
    additive:  H <- H + r x_i(t-1) x_j(t)                    (Backpropamine; clip 1 by default)

Modulation (Backpropamine): M(t) = tanh(v . x(t) + b), fanned out as fw * M + fb per
postsynaptic neuron j if asked. none: P = H, r = eta. simple: P = H, r = M(t). retroactive:
P = PW; after x(t) and M(t), PW <- clip(PW + M(t) E) with the old E, then E follows the rule at
r = eta_E. The clip is applied after every update of H (none, simple) or PW; unless set, it
is 1 under modulation and for the additive rule, none otherwise.

Plastic LSTM (Backpropamine's language model): only the hidden -> cell-candidate matrix is
plastic, g = tanh(W_xg x + b_g + h(t-1) (w + alpha P)), c = f c + i g, h = o tanh(c), the
rule's pre- and postsynaptic activities are h(t-1) and g, M(t) comes from h(t).

One batch element at a time, the full connection matrix formed at every step. Slow on
purpose: it is the yardstick every faster path is tested against.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from plastic_models.lstm import PlasticLSTM
from plastic_models.modulation import Neuromodulator
from plastic_models.network import PlasticNetwork

# rule(H, x_pre, x_post, r) -> the next H, r a scalar or a vector over postsynaptic j
RULES: dict[str, Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]] = {
    "hebb": lambda h, x, y, r: (1 - r) * h + r * torch.outer(x, y),
    "oja": lambda h, x, y, r: h + r * y[None, :] * (x[:, None] - y[None, :] * h),
    "additive": lambda h, x, y, r: h + r * torch.outer(x, y),
}


def _clip(h: Tensor, clip: float | None) -> Tensor:
    return h if clip is None else torch.clamp(h, -clip, clip)


def _modulation(modulator: Neuromodulator | None, x: Tensor) -> Tensor | None:
    """M(t) from activations x (N,): a scalar, or a vector over postsynaptic neurons."""
    if modulator is None:
        return None
    m = torch.tanh(modulator.source.weight[0] @ x + modulator.source.bias[0])
    if modulator.fanout is not None:
        m = modulator.fanout.weight[:, 0] * m + modulator.fanout.bias
    return m


def _plastic_update(
    mode: str,
    rule: str,
    traces: list[Tensor],
    pre: Tensor,
    post: Tensor,
    eta: Tensor | None,
    m: Tensor | None,
    clip: float | None,
) -> list[Tensor]:
    if mode == "none":
        assert eta is not None
        return [_clip(RULES[rule](traces[0], pre, post, eta), clip)]
    assert m is not None
    if mode == "simple":
        return [_clip(RULES[rule](traces[0], pre, post, m), clip)]
    assert eta is not None
    plastic, eligibility = traces  # retroactive
    plastic = _clip(plastic + m * eligibility, clip)
    return [plastic, RULES[rule](eligibility, pre, post, eta)]


def reference_forward(net: PlasticNetwork, inputs: Tensor) -> Tensor:
    """Same contract as `net(inputs)`: (T, B, I) -> (T, B, O), using net's parameters."""
    cfg = net.config
    n = net.neurons
    alpha = net.alpha.expand(n, n)  # per-neuron alpha is per postsynaptic j: alpha[i, j] = a[j]
    clip = cfg.clip
    if clip is None:  # modulated traces are clipped at 1, as is the additive rule
        clip = 1.0 if cfg.modulation != "none" or cfg.rule == "additive" else None
    drive = net.drive(inputs)
    episodes = []
    for b in range(drive.shape[1]):
        x = torch.zeros(n, dtype=drive.dtype, device=drive.device)
        zero = torch.zeros(n, n, dtype=drive.dtype, device=drive.device)
        traces = [zero, zero] if cfg.modulation == "retroactive" else [zero]
        xs = []
        for t in range(drive.shape[0]):
            weights = net.w + alpha * traces[0]
            y = torch.tanh(x @ weights + drive[t, b])
            if cfg.input_mode == "clamp":  # a neuron given a non-zero input takes its value
                y = torch.where(drive[t, b] != 0, drive[t, b], y)
            m = _modulation(net.modulator, y)
            traces = _plastic_update(cfg.modulation, cfg.rule, traces, x, y, net.eta, m, clip)
            x = y
            xs.append(y)
        episodes.append(torch.stack(xs))
    return net.readout(torch.stack(episodes, dim=1))


def reference_lstm_forward(net: PlasticLSTM, inputs: Tensor) -> Tensor:
    """Same contract as `net(inputs)` for a plastic LSTM: (T, B, I) -> (T, B, O)."""
    cfg = net.config
    hid = cfg.hidden
    # the value of alpha, its gradient scaled (the language model divides it by about H)
    scale = net.alpha_grad_scale
    alpha = (net.alpha * scale + (net.alpha * (1 - scale)).detach()).expand(hid, hid)
    clip = cfg.clip
    if clip is None:
        clip = 1.0 if cfg.modulation != "none" or cfg.rule == "additive" else None
    w_x, b_x, w_h = net.input.weight, net.input.bias, net.recurrent.weight
    episodes = []
    for b in range(inputs.shape[1]):
        h = torch.zeros(hid, dtype=inputs.dtype, device=inputs.device)
        c = torch.zeros_like(h)
        zero = torch.zeros(hid, hid, dtype=inputs.dtype, device=inputs.device)
        traces = [zero, zero] if cfg.modulation == "retroactive" else [zero]
        hs = []
        for t in range(inputs.shape[0]):
            x = inputs[t, b]
            gates_x = w_x @ x + b_x  # (4H,): i, f, o, g
            gates_h = w_h @ h  # (3H,): i, f, o
            i = torch.sigmoid(gates_x[:hid] + gates_h[:hid])
            f = torch.sigmoid(gates_x[hid : 2 * hid] + gates_h[hid : 2 * hid])
            o = torch.sigmoid(gates_x[2 * hid : 3 * hid] + gates_h[2 * hid :])
            g = torch.tanh(gates_x[3 * hid :] + h @ (net.w + alpha * traces[0]))
            c = f * c + i * g
            h_new = o * torch.tanh(c)
            m = _modulation(net.modulator, h_new)
            traces = _plastic_update(cfg.modulation, cfg.rule, traces, h, g, net.eta, m, clip)
            h = h_new
            hs.append(h)
        episodes.append(torch.stack(hs))
    return net.head(torch.stack(episodes, dim=1))
