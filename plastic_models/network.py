"""Plastic recurrent network: every connection is `w + alpha * Hebb` (Miconi et al. 2018).

Shapes: T time steps, B batch elements, I input channels, N neurons, O outputs.
The Hebbian trace is (B, N, N), indexed [batch, presynaptic i, postsynaptic j]; it is
created at zero at the start of every forward pass (one episode) and never stored on the
module, so the trained network keeps learning inside each episode and forgets between them.

`forward` runs the whole episode as one autograd Function (plastic_models.episode): memory
O(T B N + sqrt(T) B N^2) instead of plain autograd's 3 T B N^2. `forward_autograd` is the plain
batched autograd path through `step`, kept as a baseline; both give the same gradients.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from plastic_models.config import PlasticConfig
from plastic_models.episode import plastic_episode


class PlasticNetwork(nn.Module):
    """Sequence-level plastic RNN: `forward(inputs[T, B, I]) -> outputs[T, B, O]`."""

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
        self.w = nn.Parameter(torch.empty(n, n))  # [pre, post]
        alpha_shape = {"connection": (n, n), "neuron": (n,), "scalar": ()}[config.alpha]
        self.alpha = nn.Parameter(torch.empty(alpha_shape))
        eta = torch.tensor(float(config.eta))
        if config.learn_eta:
            self.eta = nn.Parameter(eta)
        else:
            self.register_buffer("eta", eta)
        self.encoder = None if self.direct else nn.Linear(input_size, n)
        self.decoder = None if self.direct else nn.Linear(n, output_size)
        self.reset_parameters()

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """w, alpha ~ scale * N(0, 1) as in the reference; eta back to its initial value."""
        with torch.no_grad():
            self.w.normal_(0.0, 1.0, generator=generator).mul_(self.config.init_scale)
            self.alpha.normal_(0.0, 1.0, generator=generator).mul_(self.config.alpha_scale)
            self.eta.fill_(self.config.eta)
            for layer in (self.encoder, self.decoder):
                if layer is not None:
                    bound = 1.0 / math.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)

    def drive(self, inputs: Tensor) -> Tensor:
        """What each neuron receives from outside, added to its pre-activation: (T, B, N)."""
        return inputs if self.encoder is None else self.encoder(inputs)

    def readout(self, activations: Tensor) -> Tensor:
        """(T, B, N) activations -> (T, B, O) outputs."""
        if self.decoder is None:
            return activations[..., : self.output_size]
        return self.decoder(activations)

    def forward(self, inputs: Tensor) -> Tensor:
        """(T, B, I) inputs -> (T, B, O) outputs, by the fast episode (either input mode)."""
        drive = self.drive(inputs)  # (T, B, N)
        cfg = self.config
        clamp = cfg.input_mode == "clamp"
        activations = plastic_episode(
            drive, self.w, self.alpha, self.eta, cfg.rule, cfg.clip, clamp
        )
        return self.readout(activations)  # (T, B, O)

    def forward_autograd(self, inputs: Tensor) -> Tensor:
        """Plain batched autograd through `step`: keeps three (B, N, N) tensors per step."""
        drive = self.drive(inputs)  # (T, B, N)
        steps, batch, n = drive.shape
        x = drive.new_zeros(batch, n)
        hebb = drive.new_zeros(batch, n, n)
        activations = []
        for t in range(steps):
            x, hebb = self.step(x, hebb, drive[t])
            activations.append(x)
        return self.readout(torch.stack(activations))  # (T, B, O)

    def step(self, x: Tensor, hebb: Tensor, drive: Tensor) -> tuple[Tensor, Tensor]:
        """One time step. x: (B, N) previous activations, hebb: (B, N, N), drive: (B, N)."""
        fixed = torch.addmm(drive, x, self.w)  # (B, N)
        # x @ (alpha * Hebb): a per-neuron or scalar alpha factors out of the product, so only
        # per-connection alpha pays for an elementwise (B, N, N) multiply.
        if self.alpha.dim() == 2:
            plastic = torch.bmm(x.unsqueeze(1), self.alpha * hebb).squeeze(1)
        else:
            plastic = torch.bmm(x.unsqueeze(1), hebb).squeeze(1) * self.alpha
        y = torch.tanh(fixed + plastic)  # (B, N)
        if self.config.input_mode == "clamp":
            y = torch.where(drive != 0, drive, y)
        outer = x.unsqueeze(2) * y.unsqueeze(1)  # (B, N, N): x_pre[i] * y_post[j]
        if self.config.rule == "hebb":
            hebb = torch.lerp(hebb, outer, self.eta)  # (1 - eta) Hebb + eta outer
        else:
            hebb = hebb + self.eta * (outer - y.square().unsqueeze(1) * hebb)
        if self.config.clip is not None:
            hebb = hebb.clamp(-self.config.clip, self.config.clip)
        return y, hebb
