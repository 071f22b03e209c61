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

State = tuple[Tensor, ...]  # what one step carries to the next: (x,) or (h, c)

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


def _episodes(
    net: PlasticNetwork | PlasticLSTM,
    inputs: Tensor,
    start: Callable[[], State],
    step: Callable[[Tensor, State, Tensor], tuple[State, Tensor, Tensor]],
) -> Tensor:
    """Each batch element's episode, one step at a time: (T, B, N) of the steps' outputs.
    `start()` is an episode's first carried state; `step(input (I,), carried, P (N, N))` gives
    the next carried state, whose first tensor is the step's output (M(t) comes from it), and
    the rule's pre- and postsynaptic activities (N,)."""
    cfg = net.config
    n = net.neurons
    clip = cfg.clip
    if clip is None:  # modulated traces are clipped at 1, as is the additive rule
        clip = 1.0 if cfg.modulation != "none" or cfg.rule == "additive" else None
    episodes = []
    for b in range(inputs.shape[1]):
        carried = start()
        zero = torch.zeros(n, n, dtype=inputs.dtype, device=inputs.device)
        traces = [zero, zero] if cfg.modulation == "retroactive" else [zero]
        outputs = []
        for t in range(inputs.shape[0]):
            carried, pre, post = step(inputs[t, b], carried, traces[0])
            m = _modulation(net.modulator, carried[0])
            traces = _plastic_update(cfg.modulation, cfg.rule, traces, pre, post, net.eta, m, clip)
            outputs.append(carried[0])
        episodes.append(torch.stack(outputs))
    return torch.stack(episodes, dim=1)


def reference_forward(net: PlasticNetwork, inputs: Tensor) -> Tensor:
    """Same contract as `net(inputs)`: (T, B, I) -> (T, B, O), using net's parameters."""
    n = net.neurons
    alpha = net.alpha.expand(n, n)  # per-neuron alpha is per postsynaptic j: alpha[i, j] = a[j]
    drive = net.drive(inputs)

    def start() -> State:
        return (torch.zeros(n, dtype=drive.dtype, device=drive.device),)

    def step(d: Tensor, carried: State, p: Tensor) -> tuple[State, Tensor, Tensor]:
        (x,) = carried
        y = torch.tanh(x @ (net.w + alpha * p) + d)
        if net.config.input_mode == "clamp":  # a neuron given a non-zero input takes its value
            y = torch.where(d != 0, d, y)
        return (y,), x, y

    return net.readout(_episodes(net, drive, start, step))


def reference_lstm_forward(net: PlasticLSTM, inputs: Tensor) -> Tensor:
    """Same contract as `net(inputs)` for a plastic LSTM: (T, B, I) -> (T, B, O)."""
    hid = net.config.hidden
    # the value of alpha, its gradient scaled (the language model divides it by about H)
    scale = net.alpha_grad_scale
    alpha = (net.alpha * scale + (net.alpha * (1 - scale)).detach()).expand(hid, hid)
    w_x, b_x, w_h = net.input.weight, net.input.bias, net.recurrent.weight

    def start() -> State:
        h = torch.zeros(hid, dtype=inputs.dtype, device=inputs.device)
        return h, torch.zeros_like(h)

    def step(x: Tensor, carried: State, p: Tensor) -> tuple[State, Tensor, Tensor]:
        h, c = carried
        gates_x = w_x @ x + b_x  # (4H,): i, f, o, g
        gates_h = w_h @ h  # (3H,): i, f, o
        i = torch.sigmoid(gates_x[:hid] + gates_h[:hid])
        f = torch.sigmoid(gates_x[hid : 2 * hid] + gates_h[hid : 2 * hid])
        o = torch.sigmoid(gates_x[2 * hid : 3 * hid] + gates_h[2 * hid :])
        g = torch.tanh(gates_x[3 * hid :] + h @ (net.w + alpha * p))
        c = f * c + i * g
        return (o * torch.tanh(c), c), h, g

    return net.head(_episodes(net, inputs, start, step))
