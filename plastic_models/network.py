"""Plastic recurrent network: every connection is `w + alpha * Hebb` (Miconi et al. 2018),
optionally neuromodulated (Backpropamine, Miconi et al. 2019).

Shapes: T time steps, B batch elements, I input channels, N neurons, O outputs.
The traces are (B, N, N), indexed [batch, presynaptic i, postsynaptic j]; they are created
at the start of every forward pass (one episode) and never stored on the module, so the
trained network keeps learning inside each episode and forgets between them.

`forward` runs the whole episode memory-flat: a rule the fast kernels know (a `DecayRule`) runs
as one hand-derived autograd Function without modulation and under retroactive modulation
(plastic_models.fast); every other rule or modulation runs on the generic checkpointed path
(plastic_models.checkpointed). Both
keep O(T B N + sqrt(T) B N^2) memory instead of plain autograd's ~3 T B N^2.
`forward_autograd` is `step` unrolled under plain autograd, kept as a baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from plastic_models.checkpointed import unroll
from plastic_models.config import PlasticConfig, PlasticLSTMConfig
from plastic_models.fast import has_fast_kernel, plastic_episode, retroactive_episode
from plastic_models.modulation import MODULATIONS, Neuromodulator
from plastic_models.rules import DecayRule, get_rule

State = tuple[Tensor, ...]


def alpha_shape(granularity: str, pre: int, post: int) -> tuple[int, ...]:
    """Per connection (pre, post), per postsynaptic neuron (post,) or one scalar ()."""
    return {"connection": (pre, post), "neuron": (post,), "scalar": ()}[granularity]


def plastic_product(
    x: Tensor, w: Tensor, alpha: Tensor, trace: Tensor, per_connection: bool | None = None
) -> Tensor:
    """x @ (w + alpha * trace) for x (B, N_pre), trace (B, N_pre, N_post): (B, N_post).
    Leading dimensions broadcast: a population's members pass x (K, B, N_pre), w (K, N_pre,
    N_post), trace (K, B, N_pre, N_post) and alpha shaped to broadcast against the trace
    (per connection) or the product (per neuron or scalar), saying which (`per_connection`;
    None: alpha is per connection when it is a matrix)."""
    if per_connection is None:
        per_connection = alpha.dim() == 2
    fixed = x @ w
    pre, post = trace.shape[-2:]
    # a per-neuron or scalar alpha factors out of the product, so only per-connection alpha
    # pays for an elementwise (B, N, N) multiply.
    plastic = alpha * trace if per_connection else trace
    # one (1, N_pre) @ (N_pre, N_post) product per batch element (and member)
    product = torch.bmm(x.reshape(-1, 1, pre), plastic.reshape(-1, pre, post)).view_as(fixed)
    return fixed + product if per_connection else fixed + product * alpha


def scaled_gradient(tensor: Tensor, scale: float | Tensor) -> Tensor:
    """`tensor`'s value, with its gradient multiplied by `scale` on the way back (a tensor
    scale broadcasts: one per member of a population)."""
    if isinstance(scale, float) and scale == 1.0:
        return tensor
    return tensor * scale + (tensor * (1.0 - scale)).detach()


def draw(
    tensor: Tensor, distribution: str, scale: float, generator: torch.Generator | None
) -> None:
    """tensor <- scale * N(0, 1) or scale * U[0, 1), in place. A meta tensor (shapes only: a
    model built to count its parameters) has no values to draw: its `normal_` would import
    torch's compiler for the meta kernel, over a CPU-second of every process that checks a
    spec."""
    if tensor.is_meta:
        return
    if distribution == "uniform":
        tensor.uniform_(0.0, 1.0, generator=generator)
    else:
        tensor.normal_(0.0, 1.0, generator=generator)
    tensor.mul_(scale)


def reset_linear(layer: nn.Linear, generator: torch.Generator | None) -> None:
    """PyTorch's default Linear init, U(-1/sqrt(in), 1/sqrt(in)), from `generator`."""
    bound = 1.0 / math.sqrt(layer.in_features)
    layer.weight.uniform_(-bound, bound, generator=generator)
    layer.bias.uniform_(-bound, bound, generator=generator)


class PlasticModule(nn.Module):
    """What the plastic network and the plastic LSTM share: one plastic N x N matrix
    `w + alpha * P` [pre, post], driven by a rule under a modulation, with its eta and its
    neuromodulator."""

    eta: Tensor | None

    def add_plastic_matrix(self, config: PlasticConfig | PlasticLSTMConfig, n: int) -> None:
        """The rule, modulation and clip of `config`; w and alpha (uninitialised); eta (a
        parameter, a fixed buffer, or None where the modulation uses none); the
        neuromodulator (None without)."""
        self.rule = get_rule(config.rule)
        self.modulation = MODULATIONS[config.modulation]
        self.clip = self.modulation.clip(self.rule, config.clip)
        self.w = nn.Parameter(torch.empty(n, n))  # [pre, post]
        self.alpha = nn.Parameter(torch.empty(alpha_shape(config.alpha, n, n)))
        eta = torch.tensor(float(config.eta))
        if not self.modulation.uses_eta:  # simple modulation: M(t) is the rate
            self.register_parameter("eta", None)
        elif config.learn_eta:
            self.eta = nn.Parameter(eta)
        else:
            self.register_buffer("eta", eta)
        self.modulator = (
            Neuromodulator(n, n, config.fanout) if self.modulation.uses_modulator else None
        )

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def reset_linear_layers(
        self, layers: list[nn.Linear | None], generator: torch.Generator | None
    ) -> None:
        """`layers` and the neuromodulator's to PyTorch's default Linear init."""
        if self.modulator is not None:
            layers = [*layers, self.modulator.source, self.modulator.fanout]
        for layer in layers:
            if layer is not None:
                reset_linear(layer, generator)


class PlasticNetwork(PlasticModule):
    """Sequence-level plastic RNN: `forward(inputs[T, B, I]) -> outputs[T, B, O]`, and the step
    interface `initial_state(B, device)`, `step(x_t (B, I), state) -> (y_t (B, O), state)`.

    The state is (x (B, N), *traces): the activations of the last step, then the
    modulation's traces (B, N, N) — (Hebb,) or, retroactive, (PW, E).
    """

    def __init__(self, input_size: int, output_size: int, config: PlasticConfig | None = None):
        super().__init__()
        config = config or PlasticConfig()
        self.input_size = input_size
        self.output_size = output_size
        self.config = config
        self.direct = config.hidden is None
        if not self.direct and config.input_mode == "clamp":
            raise ValueError("input_mode 'clamp' needs the direct architecture (no hidden)")
        if self.direct and output_size > input_size:
            raise ValueError(
                f"the direct architecture needs output_size ({output_size}) <= input_size "
                f"({input_size}); set hidden to use input and readout layers"
            )
        n = input_size if config.hidden is None else config.hidden
        self.neurons = n
        self.add_plastic_matrix(config, n)
        self.encoder = None if self.direct else nn.Linear(input_size, n)
        self.decoder = None if self.direct else nn.Linear(n, output_size)
        self.reset_parameters()

    @property
    def fast(self) -> bool:
        """Whether `forward` runs on the hand-derived fast kernels."""
        return self.modulation.fast_kernels and has_fast_kernel(self.rule)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """w, alpha ~ scale * N(0, 1) or U[0, 1) as in the references; eta back to its initial
        value; linear layers PyTorch's default."""
        cfg = self.config
        with torch.no_grad():
            draw(self.w, cfg.init, cfg.init_scale, generator)
            draw(self.alpha, cfg.init, cfg.alpha_scale, generator)
            if self.eta is not None:
                self.eta.fill_(cfg.eta)
            self.reset_linear_layers([self.encoder, self.decoder], generator)

    def drive(self, inputs: Tensor) -> Tensor:
        """What each neuron receives from outside, added to its pre-activation: (..., N)."""
        return inputs if self.encoder is None else self.encoder(inputs)

    def readout(self, activations: Tensor) -> Tensor:
        """(..., N) activations -> (..., O) outputs."""
        if self.decoder is None:
            return activations[..., : self.output_size]
        return self.decoder(activations)

    def forward(self, inputs: Tensor) -> Tensor:
        """(T, B, I) inputs -> (T, B, O) outputs, memory-flat (either input mode)."""
        drive = self.drive(inputs)  # (T, B, N)
        if self.fast:
            assert self.eta is not None and isinstance(self.rule, DecayRule)
            clamp = self.config.input_mode == "clamp"
            if self.modulator is None:
                activations = plastic_episode(
                    drive, self.w, self.alpha, self.eta, self.rule, self.clip, clamp
                )
            else:  # retroactive: its clip is always set (1 unless given)
                assert self.clip is not None
                activations = retroactive_episode(
                    drive, self.w, self.alpha, self.eta, self.modulator, self.rule, self.clip, clamp
                )
        else:
            state = self.initial_state(drive.shape[1], drive.device, drive.dtype)
            activations = unroll(self.cell, drive, state, list(self.parameters()))
        return self.readout(activations)  # (T, B, O)

    def forward_autograd(self, inputs: Tensor) -> Tensor:
        """`step` unrolled under plain autograd: keeps several (B, N, N) tensors per step."""
        state = self.initial_state(inputs.shape[1], inputs.device, inputs.dtype)
        outputs = []
        for x_t in inputs:
            y, state = self.step(x_t, state)
            outputs.append(y)
        return torch.stack(outputs)  # (T, B, O)

    def initial_state(
        self, batch_size: int, device: torch.device | str, dtype: torch.dtype | None = None
    ) -> State:
        """Zero activations (B, N) and the rule's initial traces (B, N, N) of an episode."""
        n = self.neurons
        like = torch.empty((), device=device, dtype=dtype or self.w.dtype)
        x = like.new_zeros(batch_size, n)
        return (x, *self.modulation.initial(self.rule, batch_size, n, n, like))

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        """One time step of the episode: x_t (B, I) -> y_t (B, O) and the next state."""
        y, state = self.cell(self.drive(x_t), state)
        return self.readout(y), state

    def cell(self, drive: Tensor, state: Sequence[Tensor]) -> tuple[Tensor, State]:
        """One step on the neurons: drive (B, N) -> activations y (B, N), next state.
        Order (Backpropamine's): y from the current traces, M(t) from y, then the traces."""
        x, *traces = state
        pre = drive + plastic_product(x, self.w, self.alpha, self.rule.read(traces[0]))
        y = torch.tanh(pre)  # (B, N)
        if self.config.input_mode == "clamp":  # a neuron given a non-zero input takes it
            y = torch.where(drive != 0, drive, y)
        m = None if self.modulator is None else self.modulator(y)
        traces = self.modulation.update(self.rule, traces, x, y, self.eta, m, self.clip)
        return y, (y, *traces)
