"""Will a population fit? K members of a cell against the memory a trial gets (issue #22).

A member's estimate adds what its family and its learner each answer for themselves:

    member = 4 x 4 bytes x parameters (values, gradients, Adam's two moments)
           + the learner's `update_bytes`: the family's activations and traces for one update
             of `batch_size` episodes (plastic_models/memory.py, baselines/memory.py), as the
             learner runs the model (whole episodes, or A2C's step by step), and its own tensors

and a population of K needs K members (the member dimension is folded into the batch). A
family without an estimate here (a plugin's) is not checked.

The memory a trial gets: on the CPU, this machine's available memory (MemAvailable) shared by
the trials that run at once (max_concurrent, or CPUs / resources.cpu); on a GPU
(resources.gpu > 0), that fraction of the smallest visible GPU. `sweep validate` and
`sweep run` refuse a cell that cannot fit, one line each (`population_errors`); a driver
without a GPU (a cluster's head) leaves it to the trial, which checks the device it was given
before its population starts (`check_population`, one line as the trial's error).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch

from baselines import memory as baselines_memory
from plastic_models import memory as plastic_memory
from sweep.defaults import resolve_model
from sweep.learners import LEARNERS
from sweep.models import build_model
from sweep.plan import Cell, make_cells
from sweep.spec import SweepSpec
from sweep.tasks import Task, make_task
from sweep.tasks.base import learner_of

# a family's activation memory: (model, batch, steps, graph) -> bytes (see the modules above)
ACTIVATIONS: dict[str, Callable[..., int]] = {
    # a population's plastic members run where their lone model does: the fast kernels
    # (members folded into their batch) or the generic memory-flat path
    "plastic": plastic_memory.activation_bytes,
    "plastic_lstm": plastic_memory.activation_bytes,
    "rnn": baselines_memory.activation_bytes,
    "lstm": baselines_memory.activation_bytes,
    "gru": baselines_memory.activation_bytes,
}
# a parameter's value, its gradient and Adam's two moments, float32 each
PARAMETER_BYTES = 4 * 4
GIB = 1 << 30


class PopulationTooLarge(MemoryError):
    """A population that cannot fit the memory its trial was given (one line)."""


def member_bytes(family: str, model: Any, task: Task, batch: int) -> int | None:
    """One member's estimate (see the module docstring) for a model of `family` (an
    nn.Module, on the meta device will do); None: no estimate for `family`."""
    activations = ACTIVATIONS.get(family)
    if activations is None:
        return None
    learner = LEARNERS[learner_of(task)]
    parameters = sum(p.numel() for p in model.parameters())
    return PARAMETER_BYTES * parameters + learner.update_bytes(
        partial(activations, model), task, batch
    )


def gib(size: float) -> str:
    return f"{size / GIB:.1f} GiB"


def refusal(members: int, model: str, difficulty: str, need: int, budget: int, where: str) -> str:
    """The one line: what K members need, what a trial gets, and the largest K that fits."""
    fit = budget // max(1, need // members)
    most = f"the most that fit: {fit}" if fit else "not even one member fits"
    return (
        f"resources.members: {members} members of {model} at {difficulty} need ~{gib(need)}; "
        f"{where}; {most}"
    )


def available_memory() -> int:
    """This machine's available memory in bytes (MemAvailable: free plus what the kernel can
    reclaim), else its free pages."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def concurrent_trials(spec: SweepSpec, cpus: int | None = None) -> int:
    """How many trials run at once on this machine: max_concurrent, at most CPUs / cpu."""
    slots = max(1, math.floor((cpus or os.cpu_count() or 1) / spec.resources.cpu))
    return min(slots, spec.max_concurrent or slots)


def trial_budget(spec: SweepSpec, cpus: int | None = None) -> tuple[int, str] | None:
    """(bytes, how) a trial gets here, or None where the driver cannot tell (a GPU trial and
    no GPU visible here: the trial checks)."""
    gpu = spec.resources.gpu
    if gpu > 0:
        if not torch.cuda.is_available():
            return None
        sizes = [
            torch.cuda.get_device_properties(i).total_memory
            for i in range(torch.cuda.device_count())
        ]
        budget = int(min(sizes) * gpu)
        return budget, f"a trial gets {gib(budget)} of GPU memory here (gpu: {gpu:g})"
    trials = concurrent_trials(spec, cpus)
    budget = available_memory() // trials
    at_once = f"{trials} trials at once" if trials > 1 else "one trial at a time"
    return budget, f"a trial gets {gib(budget)} here ({at_once})"


def largest(cell: Cell, name: str, value: Any) -> Any:
    """`value`, or the largest the cell's search may give `name` (its bounds or choices)."""
    found = cell.space.get(name)
    if found is None:
        return value
    numbers = [v for v in found.values() if isinstance(v, int | float) and not isinstance(v, bool)]
    return max(numbers) if numbers else value


def cell_member_bytes(spec: SweepSpec, cell: Cell, task: Task) -> int | None:
    """A member of `cell` at its largest searched `hidden` and `batch_size`."""
    params = dict(cell.params)
    if "hidden" in cell.space:
        params["hidden"] = largest(cell, "hidden", params.get("hidden"))
    model = build_model(
        cell.family,
        task.input_size,
        task.output_size,
        resolve_model(cell.task.method, cell.family, params),
    )
    batch = int(largest(cell, "batch_size", spec.train_config(cell.task.method.train).batch_size))
    return member_bytes(cell.family, model, task, batch)


def population_errors(spec: SweepSpec, budget: tuple[int, str]) -> list[str]:
    """One line per cell whose population of `resources.members` cannot fit `budget`."""
    members = spec.resources.members
    if members == 1:
        return []
    size, where = budget
    tasks: dict[str, Task] = {}
    errors = []
    for cell in make_cells(spec):
        if cell.family not in ACTIVATIONS:
            continue
        info, name = cell.task, cell.difficulty
        if name not in tasks:
            tasks[name] = make_task(spec.task, info.level, info.overrides, name)
        need = cell_member_bytes(spec, cell, tasks[name])
        if need is not None and members * need > size:
            errors.append(refusal(members, cell.model, name, members * need, size, where))
    return errors


def device_budget(device: torch.device, gpu: float) -> tuple[int, str]:
    """What a trial's device has for it now: the free memory of its GPU (at most its share,
    `gpu`, of the GPU), or this machine's available memory."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        budget = int(min(free, total * gpu)) if gpu > 0 else int(free)
        return budget, f"this trial's {device} has {gib(budget)} for it"
    budget = available_memory()
    return budget, f"this trial's node has {gib(budget)} available"


def check_population(
    family: str,
    model_params: Mapping[str, Any],
    task: Task,
    batch: int,
    members: int,
    names: tuple[str, str],
    budget: tuple[int, str],
) -> None:
    """Raise PopulationTooLarge (one line) when `members` members of this cell's shape need
    more than `budget`; names: (model, difficulty) as the spec names them."""
    if family not in ACTIVATIONS:
        return
    model = build_model(family, task.input_size, task.output_size, dict(model_params))
    need = member_bytes(family, model, task, batch)
    if need is not None and members * need > budget[0]:
        raise PopulationTooLarge(refusal(members, *names, members * need, *budget))
