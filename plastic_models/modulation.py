"""Neuromodulation (Backpropamine, Miconi et al., ICLR 2019): how a rule's traces are driven.

- none: the rule at the learned rate eta (the 2018 networks).
- simple: M(t) = tanh(v · y(t) + b) from the new activations, one value per batch element (or
  one per postsynaptic neuron through a learned Linear(1 -> N), "fanout"), replaces eta; the
  trace is clipped (at 1 unless set), as in the reference code: a negative M would otherwise
  let a decaying trace grow without bound.
- retroactive: an eligibility trace E follows the rule at the learned rate eta_E (for the decay
  rule, E <- (1 - eta_E) E + eta_E x ⊗ y) and the plastic weights take PW <- clip(PW + M(t) E)
  with the *old* E, before E is updated: the reference code's order.

Traces are a tuple: (H,) for none and simple, (PW, E) for retroactive. The forward pass reads
`rule.read` of the first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from plastic_models.rules import Rule, clip_trace


class Neuromodulator(nn.Module):
    """M(t) from activations y (B, N): (B, 1, 1), or (B, 1, N_post) with fanout."""

    def __init__(self, neurons: int, post: int, fanout: bool):
        super().__init__()
        self.source = nn.Linear(neurons, 1)  # v and b
        self.fanout = nn.Linear(1, post) if fanout else None

    def forward(self, y: Tensor) -> Tensor:
        m = torch.tanh(self.source(y))  # (B, 1)
        if self.fanout is not None:
            m = self.fanout(m)  # (B, N_post): one value per postsynaptic neuron
        return m.unsqueeze(1)  # broadcasts over presynaptic rows of a (B, N_pre, N_post) trace


@dataclass(frozen=True)
class Modulation:
    """How the traces of `rule` advance one step.

    traces: how many (B, N_pre, N_post) traces the state holds.
    uses_eta: whether the learned eta (or eta_E) enters the update.
    uses_modulator: whether M(t) is computed.
    default_clip: the clip of the traces when neither the network nor the rule sets one.
    fast_kernels: whether a hand-derived kernel runs it (for a rule the kernels know):
        plastic_models/fast without modulation and for retroactive modulation.
    """

    name: str
    traces: int
    uses_eta: bool
    uses_modulator: bool
    default_clip: float | None = None
    fast_kernels: bool = False

    def clip(self, rule: Rule, clip: float | None) -> float | None:
        """The network's clip if set, else this modulation's, else the rule's."""
        if clip is not None:
            return clip
        return self.default_clip if self.default_clip is not None else rule.default_clip

    def initial(self, rule: Rule, batch: int, pre: int, post: int, like: Tensor) -> list[Tensor]:
        return [rule.initial(batch, pre, post, like) for _ in range(self.traces)]

    def update(
        self,
        rule: Rule,
        traces: list[Tensor],
        x: Tensor,
        y: Tensor,
        eta: Tensor | None,
        m: Tensor | None,
        clip: float | Tensor | None,
    ) -> list[Tensor]:
        """The traces after one step with presynaptic x and postsynaptic y (B, N)."""
        if self.traces == 2:  # retroactive: PW from the old E, then E
            assert m is not None and eta is not None
            plastic, eligibility = traces
            plastic = clip_trace(torch.addcmul(plastic, m, eligibility), clip)
            return [plastic, rule.update(eligibility, x, y, eta)]
        rate = m if self.uses_modulator else eta
        assert rate is not None
        return [clip_trace(rule.update(traces[0], x, y, rate), clip)]


MODULATIONS: dict[str, Modulation] = {
    m.name: m
    for m in (
        Modulation("none", traces=1, uses_eta=True, uses_modulator=False, fast_kernels=True),
        Modulation("simple", traces=1, uses_eta=False, uses_modulator=True, default_clip=1.0),
        Modulation(
            "retroactive",
            traces=2,
            uses_eta=True,
            uses_modulator=True,
            default_clip=1.0,
            fast_kernels=True,
        ),
    )
}
