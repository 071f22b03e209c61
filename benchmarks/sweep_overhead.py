"""Sweep overhead: the same trials back to back in one process, and as a sweep on Ray.

Slot utilization = (sum of in-trial training seconds) / (sweep wall seconds x slots).
Target: >= 0.9 for 40 trials of about 5 s on 2 slots.

Per-trial overhead = (sweep wall seconds x slots - in-trial seconds) / trials: what the
sweep machinery costs each trial. `--many-cells` runs the trials over 7 difficulties x 4
parameter- and neuron-matched models (28 cells), where anything done per cell per trial
shows.

    .venv/bin/python benchmarks/sweep_overhead.py [--trials 40] [--seconds 5] [--json out.json]
    .venv/bin/python benchmarks/sweep_overhead.py --many-cells --trials 56 --seconds 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import torch
from machine import cpu_model  # benchmarks/machine.py, beside this script

from sweep import runner
from sweep.results import read_table
from sweep.spec import parse_spec
from sweep.tasks import make_task
from sweep.train import TrainConfig, train_trial

LEVEL, BATCH = "paper-simplified", 16
# --many-cells: 7 custom difficulties from the ladder's `tiny`, 4 models sized after plastic
MANY_DIFFICULTIES = [
    {f"tiny-{8 + 2 * i}": {"level": "tiny", "pattern_size": 8 + 2 * i}} for i in range(7)
]
MANY_MODELS = {
    "plastic": {"family": "plastic"},
    "rnn": {"family": "rnn", "match_parameters": "plastic"},
    "lstm": {"family": "lstm", "match_parameters": "plastic"},
    "gru": {"family": "gru", "match_neurons": "plastic"},
}


def machine() -> str:
    """CPU model, core count and torch version, for the record."""
    return f"{cpu_model()}, torch {torch.__version__}"


def calibrate(seconds: float) -> int:
    """Episodes of one plastic trial that take about `seconds` on this machine."""
    torch.set_num_threads(1)
    task = make_task("patterns", LEVEL)
    cfg = TrainConfig(episodes=BATCH * 100, batch_size=BATCH, eval_every=BATCH * 100)
    list(train_trial(task, "plastic", {}, cfg))  # warm-up
    start = time.perf_counter()
    list(train_trial(task, "plastic", {}, cfg))
    per_episode = (time.perf_counter() - start) / cfg.episodes
    return max(BATCH, int(seconds / per_episode) // BATCH * BATCH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=5.0, help="target length of a trial")
    parser.add_argument("--slots", type=int, default=2, help="concurrent trials (1 CPU each)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--many-cells", action="store_true", help="spread the trials over 7 x 4 matched cells"
    )
    args = parser.parse_args()
    difficulties: list[Any] = MANY_DIFFICULTIES if args.many_cells else [LEVEL]
    models: dict[str, Any] = MANY_MODELS if args.many_cells else {"plastic": {"family": "plastic"}}
    cells = len(difficulties) * len(models)
    per_cell = max(1, args.trials // cells)
    trials_run = per_cell * cells

    episodes = calibrate(args.seconds)
    evals = max(BATCH, episodes // 5 // BATCH * BATCH)
    train: dict[str, Any] = {
        "episodes": episodes,
        "batch_size": BATCH,
        "eval_every": evals,
        "eval_episodes": 64,
    }

    # back to back, one process, one thread: the same trials' own training seconds
    task = make_task("patterns", LEVEL)
    start = time.perf_counter()
    for seed in range(trials_run):
        list(train_trial(task, "plastic", {}, TrainConfig(**train, seed=seed)))
    serial_wall = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as storage:
        spec = parse_spec(
            {
                "name": "overhead",
                "storage": storage,
                "difficulties": difficulties,
                "models": models,
                "train": train,
                "search": {
                    "trials_per_cell": per_cell,
                    "sampler": "random",
                    "space": {"lr": {"loguniform": [1e-4, 1e-2]}},
                },
                "early_stop": "none",
                "confirm": {"seeds": 0},
                "resources": {"cpu": 1},
                "max_concurrent": args.slots,
            }
        )
        start = time.perf_counter()
        ray.init(address="local", num_cpus=args.slots, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
        start = time.perf_counter()
        folder = runner.run(spec, live=False)
        sweep_wall = time.perf_counter() - start
        trials = read_table(folder, "trials")
    in_trial = float(trials["train_seconds"].sum())
    overhead = (sweep_wall * args.slots - in_trial) / trials_run
    result = {
        "machine": machine(),
        "cells": cells,
        "trials": trials_run,
        "episodes_per_trial": episodes,
        "slots": args.slots,
        "serial_wall_s": round(serial_wall, 1),
        "serial_mean_trial_s": round(serial_wall / args.trials, 2),
        "ray_start_s": round(ray_start, 1),
        "sweep_wall_s": round(sweep_wall, 1),
        "sweep_in_trial_s": round(in_trial, 1),
        "utilization": round(in_trial / (sweep_wall * args.slots), 3),
        "speedup_vs_serial": round(serial_wall / sweep_wall, 2),
        "overhead_per_trial_s": round(overhead, 3),
        "completed": int((trials["status"] == "completed").sum()),
    }
    print(f"{'':24}{'back to back':>14}{'sweep':>10}")
    print(f"{'wall seconds':24}{serial_wall:14.1f}{sweep_wall:10.1f}")
    print(f"{'trials':24}{trials_run:14d}{result['completed']:10d}")
    print(f"(starting embedded Ray took {ray_start:.1f} s more, once per sweep)")
    print(
        f"slot utilization {result['utilization']:.3f} (in-trial {in_trial:.1f} s over "
        f"{sweep_wall:.1f} s x {args.slots} slots); speed-up {result['speedup_vs_serial']}x"
    )
    print(f"overhead per trial {overhead:.3f} s over {cells} cells")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
