"""Calibrate the difficulty ladders: is every level at least as hard as the one before it?

Trains every model family at its default size on every level of a task's ladder with one
fixed budget (`sweep.train.Trial`: Adam at one learning rate per family, no tuning, fixed
seeds), and prints a table level x family -> median final error in units of the level's
solved threshold ("x thr": 1 is exactly solved; for patterns it is the wrong bits per
recalled pattern) with its IQR, and the fraction of seeds that solved the level (the final
value reached the threshold, as `analysis` counts it). Then it checks that the ladder is
monotone for every family: going one level up, the solved fraction must not rise and the
median error (in threshold units) must not fall, beyond noise:

- solved fraction: a rise of one seed (1/seeds) is tolerated. With a handful of seeds a cell
  whose true solve rate is near one half gains or loses a seed by chance alone; two or more
  seeds is a violation.
- median error: a fall is tolerated up to the larger IQR of the two cells (what the seeds of
  one cell already disagree by) and never less than `--floor` (0.5 threshold units, half a
  wrong bit per pattern: well inside the seed spread of cells near the threshold, and too
  small to move a cell from unsolved to solved).

Exit status 1 when some family violates monotonicity (each violation is one line), else 0.

    .venv/bin/python benchmarks/calibrate_ladders.py --task patterns --json patterns.json
    .venv/bin/python benchmarks/calibrate_ladders.py --task images --levels tiny small medium
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import torch
from machine import cpu_model  # benchmarks/machine.py, beside this script

from sweep.store import reached
from sweep.tasks import levels, make_task
from sweep.train import TrainConfig, Trial

FAMILIES = ("plastic", "plastic_lstm", "rnn", "lstm", "gru")
# One learning rate per family, each inside quick.yaml's search range, picked so that every
# family learns something within the small budget; no tuning, the same at every level.
LEARNING_RATES = {"plastic": 3e-3, "plastic_lstm": 3e-3, "rnn": 1e-3, "lstm": 3e-3, "gru": 3e-3}


@dataclass(frozen=True)
class Run:
    task: str
    level: str
    family: str
    seed: int
    episodes: int
    batch_size: int
    eval_episodes: int


@dataclass(frozen=True)
class Outcome:
    run: Run
    final_error: float
    threshold: float
    solved: bool  # the final value reached the threshold (as `analysis` counts a seed)
    seconds: float


@dataclass(frozen=True)
class Cell:
    """One (level, family): the median and IQR of the seeds' final errors in units of the
    level's solved threshold, and how many of its seeds solved it."""

    median: float
    iqr: float
    solved: int
    seeds: int

    @property
    def solved_fraction(self) -> float:
        return self.solved / self.seeds


def train_one(run: Run) -> Outcome:
    """One real training run on one thread (runs go in parallel processes instead)."""
    torch.set_num_threads(1)
    task = make_task(run.task, run.level)
    config = TrainConfig(
        episodes=run.episodes,
        batch_size=run.batch_size,
        lr=LEARNING_RATES[run.family],
        eval_every=max(run.episodes // 4, run.batch_size),
        eval_episodes=run.eval_episodes,
        seed=run.seed,
    )
    start = time.perf_counter()
    *_, last = Trial(task, run.family, {}, config).reports()
    error = last.value if not last.diverged else task.chance
    solved = not last.diverged and bool(reached(error, task.solved_threshold, task.goal))
    return Outcome(run, error, task.solved_threshold, solved, time.perf_counter() - start)


def cells(outcomes: Sequence[Outcome]) -> dict[tuple[str, str], Cell]:
    """(level, family) -> Cell over the seeds."""
    grouped: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        grouped.setdefault((o.run.level, o.run.family), []).append(o)
    table = {}
    for key, runs in grouped.items():
        units = sorted(o.final_error / o.threshold for o in runs)
        q = statistics.quantiles(units, n=4, method="inclusive") if len(units) > 1 else [0, 0, 0]
        table[key] = Cell(statistics.median(units), q[2] - q[0], sum(o.solved for o in runs),
                          len(runs))  # fmt: skip
    return table


def violations(
    table: Mapping[tuple[str, str], Cell],
    level_order: Sequence[str],
    families: Sequence[str],
    floor: float = 0.5,
) -> list[str]:
    """Every place where a level is easier than the one before it for some family, beyond
    the noise tolerance described in the module docstring; one line each."""
    found = []
    for family in families:
        for easier, harder in itertools.pairwise(level_order):
            a, b = table.get((easier, family)), table.get((harder, family))
            if a is None or b is None:
                continue
            rise = b.solved_fraction - a.solved_fraction
            if rise > 1 / min(a.seeds, b.seeds) + 1e-9:
                found.append(
                    f"{family}: {harder} solved by {b.solved}/{b.seeds} seeds, "
                    f"more than easier {easier} ({a.solved}/{a.seeds})"
                )
            tolerance = max(a.iqr, b.iqr, floor)
            if a.median - b.median > tolerance:
                found.append(
                    f"{family}: {harder} median {b.median:.3g} x threshold, below easier "
                    f"{easier} ({a.median:.3g}) by more than {tolerance:.3g}"
                )
    return found


def markdown(
    table: Mapping[tuple[str, str], Cell], level_order: Sequence[str], families: Sequence[str]
) -> str:
    lines = [
        "| level | " + " | ".join(families) + " |",
        "|---|" + "---|" * len(families),
    ]
    for level in level_order:
        row = []
        for family in families:
            c = table.get((level, family))
            row.append("–" if c is None else f"{c.median:.3g} [{c.iqr:.2g}] {c.solved}/{c.seeds}")
        lines.append(f"| `{level}` | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["patterns", "images"], default="patterns")
    parser.add_argument("--levels", nargs="+", help="in ladder order (default: all)")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-episodes", type=int, default=256)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--floor", type=float, default=0.5, help="least tolerated fall, x thr")
    parser.add_argument("--json", help="write every run's outcome here")
    args = parser.parse_args()
    ladder = levels(args.task)
    chosen = args.levels or ladder
    unknown = [name for name in chosen if name not in ladder]
    if unknown:
        print(f"error: unknown {args.task} levels {unknown}; valid: {', '.join(ladder)}")
        return 2
    order = [name for name in ladder if name in chosen]
    runs = [
        Run(args.task, level, family, seed, args.episodes, args.batch_size, args.eval_episodes)
        for level in order
        for family in args.families
        for seed in range(args.seeds)
    ]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        outcomes = []
        for o in pool.map(train_one, runs):
            outcomes.append(o)
            r = o.run
            print(f"{r.level} {r.family} seed {r.seed}: error {o.final_error:.4g} "
                  f"(thr {o.threshold:.3g}) {o.seconds:.0f} s", file=sys.stderr)  # fmt: skip
    wall = time.perf_counter() - start
    table = cells(outcomes)
    print(f"{args.task}: {args.episodes} episodes, batch {args.batch_size}, {args.seeds} seeds, "
          f"lr {LEARNING_RATES}; {cpu_model()}, torch {torch.__version__}, {args.jobs} jobs, "
          f"{wall:.0f} s, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("cells: median final error in solved-threshold units [IQR], seeds solved / seeds")
    print(markdown(table, order, args.families))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(o) for o in outcomes], f, indent=1)
    found = violations(table, order, args.families, args.floor)
    for line in found:
        print(f"not monotone: {line}")
    if not found:
        print("monotone for every family (within the noise tolerance)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
