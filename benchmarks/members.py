"""Populations against lone models: episodes per second of K members trained as one model.

For each case and K in --members (1, 4, 16): one training batch of 16 episodes per member,
forward and backward (no optimizer step), one thread, (a) the population of K members
(`sweep.members.stack_members`, batched) and (b) the K lone models one after another, as K
lone trials would run them. Episodes per second = K x 16 / seconds per round, from each
round's median CPU seconds (one thread); the ratio is (a) / (b). Cases: the plastic network at
the pattern task's `paper-simplified` level (direct, N = 51, 11 steps, `forward`: the lone
models and the population on the hand-derived fast kernels, the population's members folded
into the kernels' batch; `--loop` adds LoopMembers), a 64-unit LSTM on the same level, and a
32-neuron plastic maze agent (simple neuromodulation, additive rule, the maze's 16 inputs and 5
outputs, the `tiny` level's 50 steps, run by `step` as the A2C learner runs it; random
observations stand in for the maze, whose stepping costs the same either way).

    .venv/bin/python benchmarks/members.py [--members 1 4 16] [--seconds 2] [--loop]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from machine import cpu_model  # benchmarks/machine.py, beside this script

from sweep.members import stack_members
from sweep.models import build_model, step_unrolled
from sweep.tasks import make_task
from sweep.train import seeded

BATCH = 16


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    params: dict[str, Any]
    inputs: int
    outputs: int
    steps: int
    by_step: bool  # closed loop: the step interface, as the A2C learner runs it


def cases() -> list[Case]:
    patterns = make_task("patterns", "paper-simplified")
    maze = make_task("maze", "tiny")
    io = (patterns.input_size, patterns.output_size, patterns.steps)
    return [
        Case("plastic, paper-simplified", "plastic", {}, *io, by_step=False),
        Case("lstm 64, paper-simplified", "lstm", {"hidden": 64}, *io, by_step=False),
        Case(
            "plastic maze agent, 32 neurons",
            "plastic",
            {"hidden": 32, "modulation": "simple", "rule": "additive"},
            maze.input_size,
            maze.output_size,
            maze.steps,
            by_step=True,
        ),
    ]


def run(model: Any, inputs: torch.Tensor, by_step: bool) -> torch.Tensor:
    return step_unrolled(model, inputs) if by_step else model(inputs)


def timed(work: Callable[[], None], seconds: float) -> float:
    """Median CPU seconds of `work` over about `seconds` of wall time, after two warm-up calls
    (CPU seconds: one thread, so less disturbed than wall time by other work on the machine)."""
    work()
    work()
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.process_time()
        work()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def measure(case: Case, k: int, seconds: float, loop: bool) -> dict[str, float]:
    """Seconds per round (K members x one batch, forward + backward) for each way."""
    seeds = list(range(k))
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(case.steps, k, BATCH, case.inputs, generator=g)
    lone: list[torch.nn.Module] = []
    for s in seeds:
        model = build_model(case.family, case.inputs, case.outputs, case.params, device="cpu")
        model.reset_parameters(seeded(s, 0))
        lone.append(cast(torch.nn.Module, model))

    def population(batched: bool) -> Callable[[], None]:
        pop = stack_members(
            case.family,
            case.inputs,
            case.outputs,
            [case.params] * k,
            [seeded(s, 0) for s in seeds],
            batched=batched,
        )

        def work() -> None:
            pop.zero_grad()
            run(pop, inputs, case.by_step).square().mean().backward()

        return work

    def one_after_another() -> None:
        for i, model in enumerate(lone):
            model.zero_grad()
            run(model, inputs[:, i], case.by_step).square().mean().backward()

    result = {
        "lone": timed(one_after_another, seconds),
        "batched": timed(population(True), seconds),
    }
    if loop:
        result["loop"] = timed(population(False), seconds)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--loop", action="store_true", help="also time LoopMembers")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{cpu_model()}, torch {torch.__version__}, 1 thread, batch {BATCH} per member")
    ways = ["lone", "batched", *(["loop"] if args.loop else [])]
    head = " | ".join(f"{w} eps/s" for w in ways)
    print(f"| case | K | {head} | batched / lone |")
    print("|---|---|" + "---|" * len(ways) + "---|")
    for case in cases():
        for k in args.members:
            seconds = measure(case, k, args.seconds, args.loop)
            eps = {w: k * BATCH / seconds[w] for w in ways}
            cells = " | ".join(f"{eps[w]:.0f}" for w in ways)
            print(
                f"| {case.name} | {k} | {cells} | **{eps['batched'] / eps['lone']:.2f}×** |",
                flush=True,
            )


if __name__ == "__main__":
    main()
