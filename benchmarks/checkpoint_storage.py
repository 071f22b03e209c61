"""Checkpoint cost: one trial checkpoint written to a local folder and to S3 (moto's server on
loopback, started here, pyarrow's real S3 client), side by side in one run.

A checkpoint is what a sweep trial saves (`sweep.trainable.save_checkpoint`): model,
optimizer and generator states of a real `Trial`, written under a temporary name and moved
into place. Reported: median seconds per checkpoint, its size, and the share of a trial's time
it costs at the default `checkpoint_every_s` (30 s).

    .venv/bin/python benchmarks/checkpoint_storage.py [--repeats 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from machine import cpu_model  # benchmarks/machine.py, beside this script

from sweep.spec import FaultTolerance
from sweep.tasks import make_task
from sweep.train import TrainConfig, Trial
from sweep.trainable import load_checkpoint, save_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.sweeps import S3Server

CASES = {  # name -> (pattern level, model family)
    "50-bit plastic (N = 51)": ("paper-simplified", "plastic"),
    "1000-bit plastic (N = 1001)": ("paper-full", "plastic"),
}


def state_of(level: str, family: str) -> dict[str, Any]:
    trial = Trial(make_task("patterns", level), family, {}, TrainConfig(episodes=1))
    return {"trial": trial.state_dict(), "last": {}, "started_at": "now"}


def timed(path: str, state: dict[str, Any], repeats: int) -> float:
    save_checkpoint(path, state)  # warm-up: connections, folders
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        save_checkpoint(path, state)
        times.append(time.perf_counter() - start)
    assert load_checkpoint(path) is not None
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    every = FaultTolerance().checkpoint_every_s
    server = S3Server()
    os.environ.update(server.env)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as local:
            for name, (level, family) in CASES.items():
                state = state_of(level, family)
                size = len(_serialized(state))
                local_s = timed(f"{local}/{level}.pt", state, args.repeats)
                s3_s = timed(server.uri(f"bench/{level}.pt"), state, args.repeats)
                rows.append(
                    {
                        "case": name,
                        "megabytes": round(size / 1e6, 2),
                        "local_s": round(local_s, 4),
                        "s3_s": round(s3_s, 4),
                        "s3_vs_local": round(s3_s / local_s, 1),
                        "s3_share_at_default_interval": round(s3_s / every, 4),
                    }
                )
    finally:
        server.stop()
    print(f"{cpu_model()}, torch {torch.__version__}; median of {args.repeats}")
    print(f"{'case':30}{'MB':>8}{'local s':>10}{'S3 s':>10}{'S3/local':>10}{'share':>9}")
    for r in rows:
        print(
            f"{r['case']:30}{r['megabytes']:8.2f}{r['local_s']:10.4f}{r['s3_s']:10.4f}"
            f"{r['s3_vs_local']:10.1f}{r['s3_share_at_default_interval']:9.2%}"
        )
    print(f"(share: of a trial's time, at one checkpoint every {every:g} s)")
    if args.json:
        args.json.write_text(json.dumps({"machine": cpu_model(), "rows": rows}, indent=2) + "\n")


def _serialized(state: dict[str, Any]) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
