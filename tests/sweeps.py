"""Helpers for tests that run real sweeps: specs in a temporary folder, `sweep` subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

SWEEP = str(Path(sys.executable).with_name("sweep"))
RAY = str(Path(sys.executable).with_name("ray"))


def tiny_spec(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """2 difficulties x 3 models x 2 trials + 2 confirmation seeds; each trial well under 1 s."""
    spec: dict[str, Any] = {
        "name": "tiny",
        "storage": str(tmp_path / "results"),
        "task": "patterns",
        "difficulties": ["trivial", "tiny"],
        "models": {
            "plastic": {"family": "plastic"},
            "rnn": {"family": "rnn", "match_parameters": "plastic"},
            "lstm": {"family": "lstm", "hidden": 16},
        },
        "train": {"episodes": 200, "batch_size": 8, "eval_every": 100, "eval_episodes": 16},
        "search": {
            "trials_per_cell": 2,
            "sampler": "tpe",
            "seed": 0,
            "space": {
                "lr": {"loguniform": [1.0e-4, 1.0e-2]},
                "eta": {"loguniform": [1.0e-3, 0.5]},
                "rule": {"choice": ["hebb", "oja"]},
            },
        },
        "early_stop": "none",
        "confirm": {"seeds": 2},
        "resources": {"cpu": 1, "gpu": 0},
        "max_concurrent": 2,
    }
    spec.update(changes)
    return spec


def write_spec(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / f"{spec.get('name', 'spec')}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep(*args: str, timeout: float = 600, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SWEEP, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kw,
    )
