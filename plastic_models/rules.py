"""Plasticity rules: one registry, one object per rule (Miconi et al. 2018; Backpropamine 2019).

A rule says how a plastic trace evolves from presynaptic activity x (B, N_pre) and
postsynaptic activity y (B, N_post) at a rate (the learned eta, or the neuromodulator M(t)
that replaces it), and what the forward pass reads from it. Traces are (B, N_pre, N_post),
zero at every episode start unless the rule says otherwise. The networks and the episode
kernels take a rule object and never branch on its name.

Rules of the form

    U = H diag(1 - rate * s(y)) + rate * x ⊗ y          (s: the rule's "shrink")

are linear in the trace; the hand-derived fast kernels (plastic_models/fast: linear.py,
clipped.py) run every such `DecayRule` when it is not modulated, and fast/retroactive.py under
retroactive modulation (the plastic network's). Any other rule or modulation runs on the
generic memory-flat path (checkpointed.py), where autograd differentiates `update` itself: a
new rule needs no gradient.

Register a rule of your own with `@register_rule("name")` on a `Rule` subclass (see README).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor


class Rule:
    """A plasticity rule. Subclasses implement `update`; the rest has working defaults.

    default_clip: the hard clip applied after every update when the network's `clip` is not
        set (None: no clip).
    """

    name: str = ""
    default_clip: float | None = None

    def initial(self, batch: int, pre: int, post: int, like: Tensor) -> Tensor:
        """The trace at an episode's start: zeros (B, N_pre, N_post)."""
        return like.new_zeros(batch, pre, post)

    def update(self, trace: Tensor, x: Tensor, y: Tensor, rate: Tensor) -> Tensor:
        """The next trace from trace (B, N_pre, N_post), x (B, N_pre), y (B, N_post) and rate
        (a scalar, or (B, 1, 1) / (B, 1, N_post) under neuromodulation). Pure: no in-place."""
        raise NotImplementedError

    def read(self, trace: Tensor) -> Tensor:
        """What multiplies alpha in the forward pass: the trace itself by default."""
        return trace


class DecayRule(Rule):
    """U = H diag(1 - rate s(y)) + rate x ⊗ y: linear in H, run by the fast kernels.

    constant: s when it does not depend on y (a float), else None and `shrink` gives s(y).
    """

    constant: float | None = 1.0

    def shrink(self, y: Tensor) -> Tensor:
        """s(y), (B, N_post), for rules whose constant is None."""
        raise NotImplementedError

    def shrink_slope(self, y: Tensor) -> Tensor:
        """ds/dy, (B, N_post), for rules whose constant is None."""
        raise NotImplementedError

    def update(self, trace: Tensor, x: Tensor, y: Tensor, rate: Tensor) -> Tensor:
        # two passes over the (B, N, N) trace (one without decay): the generic path is
        # memory-bound, and autograd saves what each op needs, so fewer, fused ops pay twice
        post = rate * y.unsqueeze(1)  # (B, 1, N_post): rate x_post
        if self.constant != 0:  # 0: purely additive, nothing decays
            s = self.constant if self.constant is not None else self.shrink(y).unsqueeze(1)
            trace = trace * (1 - rate * s)
        return torch.addcmul(trace, x.unsqueeze(2), post)  # + rate x_pre ⊗ x_post


REGISTRY: dict[str, Rule] = {}
R = TypeVar("R", bound=type[Rule])


def register_rule(name: str) -> Callable[[R], R]:
    """Class decorator: registers one instance of the rule under `name`."""

    def add(cls: R) -> R:
        if not name.isidentifier():
            raise ValueError(f"rule name {name!r} must be a Python identifier")
        known = REGISTRY.get(name)
        if known is not None and qualified(type(known)) != qualified(cls):  # not a re-import
            raise ValueError(f"rule {name!r} is already registered by {qualified(type(known))}")
        instance = cls()
        instance.name = name
        REGISTRY[name] = instance
        return cls

    return add


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def unknown(kind: str, name: str, known: list[str]) -> str:
    """One line: the bad name, the valid ones, and a close match if there is one."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""  # as sweep.errors.unknown words it
    return f"unknown {kind} {name!r}; valid: {', '.join(known)}{hint}"


def get_rule(name: str) -> Rule:
    if name not in REGISTRY:
        raise ValueError(unknown("rule", name, list(REGISTRY)))
    return REGISTRY[name]


@register_rule("hebb")
class Hebb(DecayRule):
    """The 2018 decay rule: Hebb <- (1 - eta) Hebb + eta x ⊗ y."""

    constant = 1.0


@register_rule("oja")
class Oja(DecayRule):
    """Oja's rule: Hebb <- Hebb + eta y (x - y Hebb), self-bounding."""

    constant = None

    def shrink(self, y: Tensor) -> Tensor:
        return y * y

    def shrink_slope(self, y: Tensor) -> Tensor:
        return 2 * y


@register_rule("additive")
class Additive(DecayRule):
    """Backpropamine's rule: Hebb <- clip(Hebb + eta x ⊗ y), hard clip at ±1 by default."""

    constant = 0.0
    default_clip = 1.0


def clip_trace(trace: Tensor, clip: float | Tensor | None) -> Tensor:
    """trace clamped to [-clip, clip]; a tensor clip broadcasts (one per member of a
    population, inf for a member without one)."""
    if isinstance(clip, Tensor):
        return torch.clamp(trace, -clip, clip)
    return trace if clip is None else torch.clamp(trace, -clip, clip)
