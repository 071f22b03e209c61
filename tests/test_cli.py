"""The `sweep` console script, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SWEEP = [str(Path(sys.executable).with_name("sweep"))]


def sweep(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SWEEP, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_train_json_prints_the_final_record_on_the_last_line() -> None:
    args = [
        "--difficulty",
        "trivial",
        "--model",
        "plastic",
        "--episodes",
        "64",
        "--eval-every",
        "32",
    ]
    done = sweep("train", *args, "--json", "--seed", "7")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["model"] == "plastic" and record["seed"] == 7 and record["done"] is True
    assert record["episodes"] == 64 and record["num_parameters"] == 2 * 9 * 9 + 1
    for key in ("loss", "error", "wall_s", "episodes_per_second", "best_error", "final_error"):
        assert isinstance(record[key], float), key
    assert "episodes_to_solve" in record


@pytest.mark.parametrize(
    ("model", "param"),
    [("plastic", "modulation=retroactive"), ("plastic_lstm", "modulation=simple")],
)
def test_train_a_modulated_variant(model: str, param: str) -> None:
    """Backpropamine's variants train from the command line like any other model."""
    args = ["--difficulty", "paper-simplified", "--model", model, "--param", param]
    done = sweep("train", *args, "--episodes", "16", "--eval-every", "16", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["model"] == model and record["done"] is True and record["episodes"] == 16
    assert 0.0 <= record["final_error"] <= 1.0


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--task", "mazes"], ["'mazes'", "patterns"]),
        (["--difficulty", "hardest"], ["'hardest'", "paper-full"]),
        (["--model", "transformer"], ["'transformer'", "plastic, rnn, lstm, gru"]),
        (["--episodes", "0"], ["--episodes=0"]),
        (["--batch-size", "-2"], ["--batch-size=-2"]),
        (["--lr", "0"], ["--lr=0.0"]),
        (["--hidden", "0"], ["hidden: 0"]),
        (["--episodes", "many"], ["'many'"]),
        (["--param", "rule=hebbian"], ["'hebbian'", "hebb, oja, additive", "did you mean 'hebb'"]),
        (["--param", "modulation=sideways"], ["'sideways'", "'none', 'simple' or 'retroactive'"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_training(
    args: list[str], names: list[str], tmp_path: Path
) -> None:
    base = {"--task": "patterns", "--difficulty": "trivial", "--model": "plastic"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    done = sweep("train", *[x for kv in base.items() for x in kv], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep: error:"), done.stderr
    for name in names:
        assert name in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written
