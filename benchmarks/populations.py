"""Populations against lone trials: trials per hour when K trials of a cell train as one model.

For each case and K in --members (1, 4, 16): K trials of `--episodes` training episodes each
(batch 16, one evaluation of 64 episodes at the end), with different seeds and learning rates,
trained (a) as one `sweep.population.PopulationTrial` of K members and (b) as K lone
`sweep.train.Trial`s one after another, as K one-CPU Ray Tune trials on one core would run
them. One torch thread. Trials per hour = K x 3600 / wall seconds; the ratio is (a) / (b).
Both sides pay model building and evaluation, not Ray's start-up (see `sweep run` for that).

Cases: the plastic network at the pattern task's `paper-simplified` level (direct, N = 51, 11
steps; the lone trials and the population on the hand-derived fast kernels), a 64-unit LSTM on
the same level, and a 32-neuron plastic maze agent (simple neuromodulation, additive rule,
`tiny` maze, trained by A2C: closed loop, one batched step per time step).

    .venv/bin/python benchmarks/populations.py [--members 1 4 16] [--episodes 480]
    .venv/bin/python benchmarks/populations.py --cases "lstm 2000, paper-simplified" \\
        --members 1 4 --episodes 96       # compute-bound: not expected to gain
    .venv/bin/python benchmarks/populations.py --sweep 5

`--sweep K`: instead, the quick demo (examples/quick.yaml, with `early_stop: none`, or as
written, ASHA deciding for each member, with `--asha`) run by `sweep run` on embedded Ray
with `members: 1`, then with `members: K`; the wall of each command, its trials rows, when
its first trial started and its last ended (the rest is the sweep's fixed start and end),
the training seconds by family and phase (a population counted once), and the ratio.

Run it on a quiet machine (nothing else computing): the figures are wall times.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from machine import cpu_model  # benchmarks/machine.py, beside this script

from sweep.population import Member, PopulationTrial
from sweep.tasks import make_task
from sweep.train import TrainConfig, Trial


@dataclass(frozen=True)
class Case:
    name: str
    task: str
    level: str
    family: str
    params: dict[str, Any]
    default: bool = True  # run without --cases


CASES = [
    Case("plastic, paper-simplified", "patterns", "paper-simplified", "plastic", {}),
    Case("lstm 64, paper-simplified", "patterns", "paper-simplified", "lstm", {"hidden": 64}),
    Case(
        "plastic maze agent, 32 neurons",
        "maze",
        "tiny",
        "plastic",
        {"hidden": 32, "modulation": "simple", "rule": "additive"},
    ),
    # compute-bound: where populations do not pay (README; not in the default run)
    Case(
        "lstm 2000, paper-simplified",
        "patterns",
        "paper-simplified",
        "lstm",
        {"hidden": 2000},
        False,
    ),
]


def configs(k: int, episodes: int) -> list[TrainConfig]:
    """K trials' settings: seeds 0..K-1, learning rates spread over a decade."""
    return [
        TrainConfig(
            episodes=episodes,
            batch_size=16,
            lr=1e-3 * 10 ** (i / max(1, k) - 0.5),
            eval_every=episodes,
            eval_episodes=64,
            seed=i,
        )
        for i in range(k)
    ]


def wall(work: Callable[[], None]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def measure(case: Case, k: int, episodes: int) -> tuple[float, float]:
    """Wall seconds of (population, lone trials one after another)."""
    task = make_task(case.task, case.level)
    trains = configs(k, episodes)

    def population() -> None:
        members = [Member(str(i), case.params, t) for i, t in enumerate(trains)]
        for _ in PopulationTrial(task, case.family, members).reports():
            pass

    def lone() -> None:
        for t in trains:
            for _ in Trial(task, case.family, case.params, t).reports():
                pass

    return wall(population), wall(lone)


def sweep_wall(members: int, folder: Path, asha: bool) -> tuple[float, pd.DataFrame]:
    """Wall seconds of `sweep run` of the quick demo with `members`, its trials rows, and
    each row's start and end in seconds from the command's start (`begin`, `end`)."""
    root = Path(__file__).resolve().parents[1]
    spec = yaml.safe_load((root / "examples" / "quick.yaml").read_text())
    spec |= {"name": f"quick-members-{members}", "storage": str(folder)}
    if not asha:
        spec["early_stop"] = "none"
    spec["resources"] |= {"members": members}
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    sweep = str(Path(sys.executable).with_name("sweep"))
    started = pd.Timestamp.now(tz="UTC")
    start = time.perf_counter()
    subprocess.run([sweep, "run", str(path)], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    trials = pd.read_parquet(folder / spec["name"] / "trials")
    for column, stamp in (("begin", "started_at"), ("end", "finished_at")):
        trials[column] = (pd.to_datetime(trials[stamp]) - started).dt.total_seconds()
    return seconds, trials


def where_the_time_goes(trials: pd.DataFrame) -> pd.DataFrame:
    """Training seconds by family and phase, a population counted once (its members share
    one `train_seconds`), and the Tune trials (lone trials or populations) behind them."""
    unit = trials["population"].fillna(trials["trial_id"])
    units = (
        trials.assign(unit=unit)
        .groupby("unit")
        .agg(family=("family", "first"), phase=("phase", "first"), train_s=("train_seconds", "max"))
    )
    table = units.groupby(["family", "phase"]).agg(
        tune_trials=("train_s", "size"), train_s=("train_s", "sum")
    )
    trials_rows = trials.groupby(["family", "phase"]).size().rename("trials_rows")
    return table.join(trials_rows).round(1)


def sweeps(members: int, asha: bool) -> None:
    stop = "ASHA as written" if asha else "early_stop none"
    print(f"{cpu_model()}, torch {torch.__version__}: examples/quick.yaml, {stop}")
    with tempfile.TemporaryDirectory() as folder:
        one, rows_one = sweep_wall(1, Path(folder), asha)
        many, rows_many = sweep_wall(members, Path(folder), asha)
    for k, wall_s, rows in ((1, one, rows_one), (members, many, rows_many)):
        print(
            f"members: {k}  {wall_s:.0f} s, {len(rows)} trials rows; the first trial started "
            f"at {rows['begin'].min():.1f} s, the last ended at {rows['end'].max():.1f} s"
        )
    both = where_the_time_goes(rows_one).add_suffix(" (1)")
    both = both.join(where_the_time_goes(rows_many).add_suffix(f" ({members})"))
    both["train ratio"] = (both["train_s (1)"] / both[f"train_s ({members})"]).round(2)
    print(both.to_string())
    total_one, total_many = both["train_s (1)"].sum(), both[f"train_s ({members})"].sum()
    print(
        f"training, all cells: {total_one:.1f} s against {total_many:.1f} s, "
        f"{total_one / total_many:.2f}x"
    )
    print(f"ratio: {one / many:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--episodes", type=int, default=480)
    parser.add_argument("--sweep", type=int, metavar="K", help="time the quick demo's sweep")
    parser.add_argument("--asha", action="store_true", help="--sweep keeps the demo's ASHA")
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=[c.name for c in CASES],
        help="these cases (default: all but the compute-bound LSTM)",
    )
    args = parser.parse_args()
    if args.sweep:
        sweeps(args.sweep, args.asha)
        return
    torch.set_num_threads(1)
    print(f"{cpu_model()}, torch {torch.__version__}, 1 thread, {args.episodes} episodes a trial")
    print("| case | K | population s | lone s | population trials/h | lone trials/h | ratio |")
    print("|---|---|---|---|---|---|---|")
    for case in CASES:
        if case.name not in (args.cases or [c.name for c in CASES if c.default]):
            continue
        measure(case, 2, 32)  # warm-up: first calls, allocations
        for k in args.members:
            pop, lone = measure(case, k, args.episodes)
            print(
                f"| {case.name} | {k} | {pop:.1f} | {lone:.1f} | {k * 3600 / pop:.0f} | "
                f"{k * 3600 / lone:.0f} | {lone / pop:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
