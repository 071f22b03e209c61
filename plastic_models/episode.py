"""Fast plastic episodes: one autograd Function for the whole episode (Miconi et al. 2018).

Plain autograd (`PlasticNetwork.forward_autograd`) keeps three (B, N, N) tensors per step for
the backward pass: 1.2 GiB for one episode of the 1000-bit task (N = 1001, T = 106). The fast
path keeps the activations of every step (T, B, N, small) and the Hebbian trace only every
K ~ sqrt(T) steps, so its memory grows as sqrt(T) B N^2, not T B N^2 (52 MiB against 1.2 GiB
for one training step of the 1000-bit task, gradients and Adam's temporaries included):

- `linear.py`, no clipping: the trace update is linear, so within a segment the trace is its
  snapshot (column-scaled) plus a low-rank sum over the segment's activations. No step's trace
  is ever formed; products with it become products with the snapshot plus small GEMMs.
- `clipped.py`, with clipping: the steps of one segment are replayed from its snapshot with the
  forward pass's own ops (bit-identical, so the clamp's zero-gradient mask is exact).

Clamp mode (`input_mode="clamp"`, the image task): y = where(drive != 0, drive, tanh(pre)), the
drive still added to pre. Both paths keep their structure; dL/dpre is 0 where a neuron is
clamped and the drive's gradient takes dL/dy there (the mask is recomputed from the drive).

Neither undoes the decay update (H(t) = (H(t+1) - eta x ⊗ y) / (1 - eta)): exact on paper, it
blows up in float32 for large eta (NaN at eta = 0.3 over 106 steps).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from plastic_models.clipped import ClippedFunction
from plastic_models.linear import LinearFunction
from plastic_models.rules import DecayRule, Rule

# On the CPU the batch runs in chunks whose traces fit this size: with the other N x N tensors
# of a step (alpha, w, a snapshot, the gradient buffers) they stay in a 32 MiB last-level cache,
# and batching pays only where nothing fits. On a GPU the whole batch is one chunk.
CHUNK_BYTES = 4 << 20
# Episodes up to this many steps are one segment (no snapshots): each segment costs a few dozen
# small ops, which dominate short episodes (the simplified task has 11 steps).
SHORT_EPISODE = 16


def chunk_size(batch: int, n: int, dtype: torch.dtype, device: torch.device) -> int:
    if device.type != "cpu":
        return batch
    return max(1, min(batch, CHUNK_BYTES // (n * n * dtype.itemsize)))


def segment_length(steps: int, clip: float | None) -> int:
    """Steps between snapshots. Replaying a clipped segment keeps all its traces, so T / K + K
    is smallest at K = sqrt(T); the linear path keeps none, so it takes fewer, longer ones."""
    if steps <= SHORT_EPISODE:
        return steps
    return math.ceil(math.sqrt(steps if clip is not None else 2 * steps))


def has_fast_kernel(rule: Rule) -> bool:
    """The kernels run a `DecayRule` whose trace starts at zero and is read as it is."""
    kind = type(rule)
    return isinstance(rule, DecayRule) and kind.initial is Rule.initial and kind.read is Rule.read


def plastic_episode(
    drive: Tensor,
    w: Tensor,
    alpha: Tensor,
    eta: Tensor,
    rule: DecayRule,
    clip: float | None,
    clamp: bool = False,
) -> Tensor:
    """Activations (T, B, N) of a plastic episode driven by drive (T, B, N); the trace starts
    at zero. clamp: a neuron whose drive is non-zero at a step takes that value instead of
    tanh(pre). Same numbers and gradients as `PlasticNetwork.forward_autograd`."""
    steps, batch, n = drive.shape
    chunk = chunk_size(batch, n, drive.dtype, drive.device)
    interval = segment_length(steps, clip)
    out: Tensor
    if clip is None:
        out = LinearFunction.apply(drive, w, alpha, eta, rule, clamp, interval, chunk)
    else:
        out = ClippedFunction.apply(drive, w, alpha, eta, rule, clip, clamp, interval, chunk)
    return out
