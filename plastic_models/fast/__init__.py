"""Fast plastic episodes: hand-derived kernels run by one replay driver (see driver.py).

`plastic_episode` runs a `DecayRule` without modulation (linear.py without a clip, clipped.py
with one), `retroactive_episode` under retroactive modulation (retroactive.py). Same numbers
and gradients as `PlasticNetwork.forward_autograd` and the plain reference. Given `members`,
they run a population of that many networks at once (driver.py): the drive (T, K P, N) and the
parameters stacked (K, ...), eta (K,), a clip per member as a list (inf for none).
"""

from __future__ import annotations

from torch import Tensor

from plastic_models.fast.clipped import Clipped
from plastic_models.fast.driver import has_fast_kernel, replay
from plastic_models.fast.linear import Linear
from plastic_models.fast.retroactive import Retroactive
from plastic_models.modulation import Neuromodulator
from plastic_models.rules import DecayRule

__all__ = ["has_fast_kernel", "plastic_episode", "retroactive_episode"]


def plastic_episode(
    drive: Tensor,
    w: Tensor,
    alpha: Tensor,
    eta: Tensor,
    rule: DecayRule,
    clip: float | list[float] | None,
    clamp: bool = False,
    members: int | None = None,
) -> Tensor:
    """Activations (T, B, N) of a plastic episode driven by drive (T, B, N); the trace starts
    at zero. clamp: a neuron whose drive is non-zero at a step takes that value instead of
    tanh(pre)."""
    inputs = (w, alpha, eta)
    if clip is None:
        return replay(Linear(inputs, rule, clamp, members), drive)
    return replay(Clipped(inputs, rule, clamp, clip, members), drive)


def retroactive_episode(
    drive: Tensor,
    w: Tensor,
    alpha: Tensor,
    eta: Tensor,
    modulator: Neuromodulator | tuple[Tensor, ...],
    rule: DecayRule,
    clip: float | list[float],
    clamp: bool = False,
    members: int | None = None,
) -> Tensor:
    """Activations (T, B, N) of a retroactively modulated episode driven by drive (T, B, N);
    both traces start at zero. Members: the modulator's tensors stacked, (v, b[, fw, fb])."""
    if isinstance(modulator, tuple):
        inputs = (w, alpha, eta, *modulator)
    else:
        inputs = Retroactive.inputs_of(w, alpha, eta, modulator)
    return replay(Retroactive(inputs, rule, clamp, clip, members), drive)
