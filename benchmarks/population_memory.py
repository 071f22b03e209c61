"""The memory estimate of populations (`sweep.memory`) against a measured peak, on the CPU.

Each case runs in a process of its own (forked from this one, which runs no torch op): it
builds the population (or, `lone`, one model on the fast kernels), then trains one update
(forward, backward, clipping and Adam, as `sweep.population.PopulationTrial` does) on one
thread; measured = the growth of the process's peak resident memory (getrusage's ru_maxrss)
over that update. The estimate of the same: K x (the member's estimate less its parameters'
values, which exist before the update). Prints one JSON line per case.

    .venv/bin/python benchmarks/population_memory.py [--case NAME ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
from dataclasses import dataclass, field
from typing import Any, cast

# sweep's modules, imported once here so that every forked case shares them (no torch op runs
# in this process: a forked child of a process that ran OpenMP code may hang)
from plastic_models.network import PlasticNetwork
from sweep.learners import LEARNERS
from sweep.memory import member_bytes
from sweep.models import build_model
from sweep.population import Member, PopulationTrial
from sweep.tasks import make_task
from sweep.tasks.base import learner_of
from sweep.train import TrainConfig


@dataclass(frozen=True)
class Case:
    name: str
    task: str
    level: str
    family: str
    members: int
    batch: int
    params: dict[str, Any] = field(default_factory=dict)
    lone: bool = False  # one lone model (the fast kernels), not a population


CASES = [
    # the fast linear kernel with members folded into its batch, N = 251, 86 steps
    Case("plastic-large", "patterns", "large", "plastic", members=8, batch=4),
    # the generic memory-flat path (simple modulation has no kernel), N = 251, 86 steps
    Case(
        "plastic-simple-large",
        "patterns",
        "large",
        "plastic",
        members=4,
        batch=4,
        params={"modulation": "simple"},
    ),
    # N = 101, 40 steps, retroactive modulation (two traces, clipped): its fast kernel
    Case(
        "plastic-retroactive-medium",
        "patterns",
        "medium",
        "plastic",
        members=4,
        batch=16,
        params={"modulation": "retroactive"},
    ),
    Case("plastic_lstm-medium", "patterns", "medium", "plastic_lstm", 4, 16, {"hidden": 128}),
    Case("lstm-large", "patterns", "large", "lstm", members=8, batch=16, params={"hidden": 256}),
    # A2C: step by step under plain autograd, every step's graph kept
    Case("plastic-a2c-maze", "maze", "tiny", "plastic", 4, 8, {"hidden": 100}),
    # a lone plastic network on the fast kernel: N = 1001, 106 steps
    Case("plastic-fast-paper-full", "patterns", "paper-full", "plastic", 1, 3, lone=True),
]


def peak() -> int:
    """This process's peak resident memory so far, in bytes (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(case: Case) -> dict[str, Any]:
    """In this (forked) process: one update of the case; its estimate and measured peak."""
    import torch

    from plastic_models import memory as plastic_memory

    torch.set_num_threads(1)
    task = make_task(case.task, case.level)
    model = build_model(case.family, task.input_size, task.output_size, case.params)
    parameters = sum(p.numel() for p in model.parameters())
    if case.lone:
        lone = build_model(case.family, task.input_size, task.output_size, case.params, "cpu")
        optimizer = torch.optim.Adam(lone.parameters())
        episode = task.sample(case.batch, torch.Generator().manual_seed(0), "cpu")
        before = peak()
        task.loss(lone(episode.inputs), episode).backward()
        optimizer.step()
        learner = LEARNERS[learner_of(task)]
        plastic = cast(PlasticNetwork, model)
        activations = lambda b, t, graph: plastic_memory.activation_bytes(  # noqa: E731
            plastic, b, t, graph, fast=True
        )
        update = 3 * 4 * parameters + learner.update_bytes(activations, task, case.batch)
    else:
        train = TrainConfig(episodes=case.batch, batch_size=case.batch, device="cpu")
        members = [
            Member(str(k), case.params, dataclasses.replace(train, seed=k))
            for k in range(case.members)
        ]
        population = PopulationTrial(task, case.family, members)
        before = peak()
        population._update(case.batch)
        need = member_bytes(case.family, model, task, case.batch)
        assert need is not None
        update = case.members * (need - 4 * parameters)  # the values exist before the update
    return {
        "case": case.name,
        "members": case.members,
        "batch": case.batch,
        "estimate": update,
        "measured": peak() - before,
    }


def run(case: Case) -> dict[str, Any]:
    """`measure` in a forked child, its answer through a pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        try:
            answer = json.dumps(measure(case))
        except BaseException as e:  # reported to the parent, whatever it is
            answer = json.dumps({"case": case.name, "error": f"{type(e).__name__}: {e}"})
        with os.fdopen(write, "w") as out:
            out.write(answer)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as got:
        text = got.read()
    os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(text)
    if "measured" in result:
        result["ratio"] = round(result["estimate"] / max(1, result["measured"]), 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", nargs="*", choices=[c.name for c in CASES])
    args = parser.parse_args()
    for case in CASES:
        if not args.case or case.name in args.case:
            print(json.dumps(run(case)), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
