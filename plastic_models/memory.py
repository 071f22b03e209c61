"""How much memory one training update of a plastic network (or plastic LSTM) holds for its
activations and traces, per model (a population's member holds the same: its member dimension
is folded into the batch). Counted from the shapes the episodes keep, checked against
measured peaks (benchmarks/population_memory.py, tests/test_memory.py).

    graph="episode": `forward` over the whole episode, then backward (the supervised tasks);
        fast=True on the hand-derived kernels (plastic_models.fast), else the generic
        memory-flat path (plastic_models.checkpointed); None: where the model runs (a
        population's members run where their lone model does).
    graph="steps": `step` unrolled under plain autograd (A2C plays step by step), which keeps
        every step's graph until backward.

Each counts, in (B, N, N) traces of 4-byte floats: the snapshots a memory-flat episode keeps
(one per segment), the graphs of the segments under autograd (the last one's from forward and
the one replayed in backward: two, or one for an episode of one segment), and the gradients
flowing back through the traces; plus the (T, B, N) activations. `trace_tensors` says what one
step keeps under autograd: per trace the rule's decay and addition (2), a clip's output (1),
the product alpha * H per connection (1).
"""

from __future__ import annotations

import math
from typing import Literal

from plastic_models.checkpointed import segment_length
from plastic_models.fast.driver import CHUNK_BYTES
from plastic_models.fast.driver import segment_length as fast_segment_length
from plastic_models.lstm import PlasticLSTM
from plastic_models.network import PlasticNetwork

Graph = Literal["episode", "steps"]
FLOAT = 4  # bytes: float32


def trace_tensors(model: PlasticNetwork | PlasticLSTM) -> int:
    """The (B, N, N) tensors autograd keeps for one step: per trace its update's two (the
    decay, then + rate x ⊗ y), a clip's output, and alpha * H with per-connection alpha."""
    per_connection = model.config.alpha == "connection"
    clipped = model.clip is not None
    return 2 * model.modulation.traces + int(clipped) + int(per_connection)


def small_tensors(model: PlasticNetwork | PlasticLSTM) -> int:
    """The (B, N) tensors one step keeps: the drive, pre-activation, activation, their
    gradients; an LSTM's gates and cell besides."""
    return 14 if isinstance(model, PlasticLSTM) else 6


def activation_bytes(
    model: PlasticNetwork | PlasticLSTM,
    batch: int,
    steps: int,
    graph: Graph = "episode",
    fast: bool | None = None,
) -> int:
    """Peak bytes of one update's activations and traces (no parameters, no inputs), for
    `batch` episodes of `steps` steps (fast: None, as `forward` runs a lone model)."""
    n = model.neurons if isinstance(model, PlasticNetwork) else model.config.hidden
    traces = model.modulation.traces
    per_step = trace_tensors(model)
    square: float  # (B, N, N) tensors
    if graph == "steps":
        square = steps * per_step + traces
    else:
        if fast is None:
            fast = isinstance(model, PlasticNetwork) and model.fast
        if fast:
            # a clipped or retroactive kernel replays a segment from its snapshot, keeping
            # its traces; the linear kernel keeps none (plastic_models/fast/driver.py)
            replays = model.clip is not None or traces > 1
            length = fast_segment_length(steps, replays=replays)
            chunk = min(batch, max(1, CHUNK_BYTES // (n * n * FLOAT)))
            # the snapshots, a replayed segment's traces, the chunk's working buffers
            square = (math.ceil(steps / length) + length * int(replays)) * traces
            square += 6 * traces * chunk / batch
        else:
            length = segment_length(steps)
            snapshots = math.ceil(steps / length) - 1
            # the snapshots, the gradients of the traces between segments (with
            # autograd.grad's temporaries) and a segment's graph: one plain segment's, else
            # two (measured: the last segment's graph from forward is not yet given back
            # when backward replays the segment before it)
            graphs = 1 if snapshots == 0 else 2
            square = snapshots * traces + graphs * length * per_step + 3 * traces
    small = steps * small_tensors(model)
    return int(FLOAT * batch * (square * n * n + small * n))
