"""Data-parallel trials on CPU workers: one trial's throughput at W = 1 and W = 2, and what
the route (the trial's own placement group: W-1 worker actors, a TCP rendezvous) costs each
trial to start, side by side in one run.

Both sweeps run the same trials one at a time (max_concurrent 1) on embedded Ray with
`--cpus` CPUs: W = 1 with `cpus` CPUs per trial, W = 2 with `cpus / 2` per worker, so both
use the same cores. Per trial: episodes per second of the whole trial (the trials table);
start-up = (sweep wall seconds - Ray start - the trials' in-trial seconds) / trials, i.e.
everything a trial costs outside training and evaluation. W = 1 trials reuse Tune's actors,
W = 2 trials start fresh ones (and W-1 workers) each time: the difference is the route's cost.

    .venv/bin/python benchmarks/data_parallel.py [--trials 4] [--episodes 4000] [--json out.json]
    .venv/bin/python benchmarks/data_parallel.py --task images --level small --model plastic
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from machine import cpu_model  # benchmarks/machine.py, beside this script

# One sweep in its own process (a fresh embedded Ray each), printing what it measured.
ONE_SWEEP = """
import json, sys, time, ray
from sweep import runner
from sweep.results import read_table
from sweep.spec import parse_spec
spec, cpus = parse_spec(json.loads(sys.argv[1])), int(sys.argv[2])
start = time.perf_counter()
ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
ray_start = time.perf_counter() - start
folder = runner.run(spec, live=False)
wall = time.perf_counter() - start
trials = read_table(folder, "trials")
print(json.dumps({
    "wall_s": wall, "ray_start_s": ray_start, "trials": len(trials),
    "train_s": float(trials["train_seconds"].sum()),
    "episodes_per_second": float(trials["episodes_per_second"].mean()),
    "workers": sorted(set(trials["workers"].tolist())),
}))
"""


def spec(args: argparse.Namespace, folder: str, workers: int) -> dict[str, Any]:
    return {
        "name": f"dp-w{workers}",
        "storage": folder,
        "task": args.task,
        "difficulties": [args.level],
        "models": {args.model: {"family": args.model}},
        "train": {
            "episodes": args.episodes,
            "batch_size": args.batch_size,
            "eval_every": args.episodes // 4,
            "eval_episodes": 64,
        },
        "search": {
            "trials_per_cell": args.trials,
            "sampler": "random",
            "seed": 0,
            "space": {"lr": {"loguniform": [1.0e-4, 1.0e-3]}},
        },
        "early_stop": "none",
        "confirm": {"seeds": 0},
        "resources": {"workers": workers, "cpu": args.cpus / workers, "gpu": args.gpu},
        "max_concurrent": 1,
        "fault_tolerance": {"max_failures": 0, "checkpoint_every_s": 1e9},
    }


def one_sweep(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        command = json.dumps(spec(args, folder, workers))
        done = subprocess.run(
            [sys.executable, "-c", ONE_SWEEP, command, str(args.cpus)],
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:
        sys.exit(f"the W = {workers} sweep failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    outside = result["wall_s"] - result["ray_start_s"] - result["train_s"]
    result["startup_per_trial_s"] = outside / result["trials"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="patterns")
    parser.add_argument("--level", default="paper-simplified")
    parser.add_argument("--model", default="plastic")
    parser.add_argument("--episodes", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the embedded Ray")
    parser.add_argument("--gpu", type=float, default=0.0, help="GPUs per worker (NCCL when 1)")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    figures = {w: one_sweep(args, w) for w in (1, 2)}
    one, two = figures[1], figures[2]
    record = {
        "machine": f"{cpu_model()}, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "setting": f"{args.task}/{args.level}/{args.model}, batch {args.batch_size}, "
        f"{args.episodes} episodes x {args.trials} trials, {args.cpus} CPUs",
        "w1": one,
        "w2": two,
        "speed_up_w2": two["episodes_per_second"] / one["episodes_per_second"],
        "route_startup_s": two["startup_per_trial_s"] - one["startup_per_trial_s"],
    }
    print(json.dumps(record, indent=2))
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
