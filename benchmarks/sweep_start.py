"""A sweep's fixed cost: the CPU seconds and wall-clock time of `sweep run` of one short trial
on embedded Ray, by process (the driver, the trial's worker, Ray's daemons, idle workers).

Every `sweep run` pays it once, whatever the sweep trains; the test suite starts about 45
sweeps and Ray clusters, so on 2 cores it is a large share of the suite's time. Each round
runs the one-trial sweep as a user would (`sweep run`), then the same with each `--env`
setting (side by side, alternating which goes first), sampling every process's CPU time from
/proc every 0.1 s (Linux). CPU seconds of the whole machine over the run are reported too,
less this script's own sampling (a process that ends between two samples is missed by the
per-process split, not by that total).

    .venv/bin/python benchmarks/sweep_start.py [--rounds 3] \\
        [--env RAY_prestart_worker_first_driver=1]

Run it on a quiet machine (nothing else computing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml
from machine import cpu_model  # benchmarks/machine.py, beside this script

SPEC = {
    "name": "start",
    "task": "patterns",
    "difficulties": ["trivial"],
    "models": {"lstm": {"family": "lstm", "hidden": 16}},
    "train": {"episodes": 100, "batch_size": 8, "eval_every": 100, "eval_episodes": 16},
    "search": {
        "trials_per_cell": 1,
        "sampler": "random",
        "seed": 0,
        "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}},
    },
    "early_stop": "none",
    "confirm": {"seeds": 0},
    "resources": {"cpu": 1, "gpu": 0},
    "max_concurrent": 1,
}
TICK = os.sysconf("SC_CLK_TCK")


def kind(command: str) -> str:
    """Which part of a sweep a process is, from its command line."""
    for needle, name in [
        ("sweep run", "driver"),
        ("ray::ImplicitFunc", "trial worker"),
        ("ray::IDLE", "idle worker"),
        ("gcs_server", "Ray daemons"),
        ("raylet", "Ray daemons"),
        ("ray::", "Ray daemons"),
        ("ray/", "Ray daemons"),
    ]:
        if needle in command:
            return name
    return ""


def machine_cpu() -> float:
    """CPU seconds the machine has spent busy (user, nice, system, irq, softirq), less
    this process's own."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    own = os.times()
    return sum(int(fields[i]) for i in (0, 1, 2, 5, 6)) / TICK - (own.user + own.system)


def sample(seen: dict[str, tuple[str, float]]) -> None:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        name = kind(command)
        if name:
            fields = stat.rsplit(")", 1)[1].split()
            seen[pid] = (name, (int(fields[11]) + int(fields[12])) / TICK)


def one_run(spec_file: Path, env: dict[str, str]) -> dict[str, float]:
    """Wall and CPU seconds of one `sweep run`, the CPU split by kind of process."""
    sweep = str(Path(sys.executable).with_name("sweep"))
    seen: dict[str, tuple[str, float]] = {}
    cpu0, start = machine_cpu(), time.perf_counter()
    process = subprocess.Popen(
        [sweep, "run", str(spec_file)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while process.poll() is None:
        sample(seen)
        time.sleep(0.1)
    wall = time.perf_counter() - start
    time.sleep(2)  # Ray's daemons wind down after the driver exits
    parts: dict[str, float] = defaultdict(float)
    for name, seconds in seen.values():
        parts[name] += seconds
    if process.returncode != 0:
        raise SystemExit(f"sweep run exited {process.returncode}")
    return {"wall": wall, "machine CPU": machine_cpu() - cpu0, **parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    sides = {"as shipped": {}} | {s: dict([s.split("=", 1)]) for s in args.env}
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as folder:
        spec_file = Path(folder) / "start.yaml"
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for side in order:
                storage = Path(folder) / f"{side}-{r}".replace(" ", "-").replace("=", "-")
                spec_file.write_text(yaml.safe_dump({**SPEC, "storage": str(storage)}))
                runs[side].append(one_run(spec_file, sides[side]))
    print(f"{cpu_model()}: `sweep run` of one 100-episode trial, median of {args.rounds}")
    keys = ["wall", "machine CPU", "driver", "trial worker", "Ray daemons", "idle worker"]
    print("| side | " + " | ".join(f"{k} s" for k in keys) + " |")
    print("|---|" + "---|" * len(keys))
    for side, rows in runs.items():
        cells = [f"{statistics.median(r.get(k, 0.0) for r in rows):.1f}" for k in keys]
        print(f"| {side} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
