"""benchmarks/gpu_check.py: on the CPU, --dry-run runs every step end to end at a tiny size
(a renamed function or a broken import fails here, not on the day a GPU is lent); without
--dry-run it refuses in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
STEPS = ["device", "cuda_tests", "plastic", "image", "sweep", "data_parallel", "populations"]
# Each step's figures, which the dry run must have measured (a number, not None).
FIGURES = {
    "device": ["copy_bandwidth_gbs"],
    "cuda_tests": ["selected", "passed", "failed", "skipped"],
    "plastic": ["s_per_step", "episodes_per_s", "nxn_gbs"],
    "image": ["s_per_episode", "minutes_per_3000", "vs_paper"],
    "sweep": ["trials", "wall_s", "trials_per_hour", "vs_cpu"],
    "data_parallel": ["init_s", "broadcast_state_s", "first_all_reduce_s", "all_reduce_s"],
    "populations": ["members", "trials", "wall_s", "trials_per_hour"],
}


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU machine")
def test_without_cuda_it_exits_2_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    done = run("--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("gpu_check: no CUDA device visible") and "--dry-run" in line
    assert not (tmp_path / "out").exists()


def test_a_bad_step_name_is_one_line_naming_the_choices(tmp_path: Path) -> None:
    done = run("--dry-run", "--out", str(tmp_path), "--only", "plastik")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "'plastik'" in line and "plastic" in line and "data_parallel" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_dry_run_runs_every_step_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run("--dry-run", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((out / "gpu_check.json").read_text())
    page = (out / "gpu_check.md").read_text()
    assert record["dry_run"] is True
    steps = {s["name"]: s for s in record["steps"]}
    assert list(steps) == STEPS
    for name, keys in FIGURES.items():
        assert steps[name]["status"] == "ok", (name, steps[name]["status"])
        assert (out / steps[name]["log"]).exists()
        row = steps[name]["rows"][0]
        for key in keys:
            assert isinstance(row[key], int | float), (name, key, row)
            assert f"| {key} |" in page or f"| {key} " in page, key
        assert f"## {name}: {steps[name]['title']}" in page
    # one population of two members: one Ray Tune trial, two trials rows
    assert steps["populations"]["rows"][0]["members"] == 2
    assert steps["populations"]["rows"][0]["trials"] == 2
    # the steps really ran: both paths at both sizes, the tests selected, trials written
    plastic = steps["plastic"]["rows"]
    assert {(r["path"], r["B"]) for r in plastic if "path" in r} == {
        (p, b) for p in ("fast", "plain") for b in (1, 2)
    }
    assert [r["B"] for r in plastic if "fast_vs_plain" in r] == [1, 2]
    tests = steps["cuda_tests"]["rows"][0]
    assert tests["selected"] >= 4 and tests["failed"] == 0
    assert tests["skipped"] == tests["selected"]  # no CUDA here
    sweep = steps["sweep"]["rows"][0]
    assert sweep["trials"] == 4 and sweep["failed"] == 0 and sweep["devices"] == "cpu"
    assert steps["data_parallel"]["rows"][0]["backend"] == "gloo"
    assert steps["data_parallel"]["rows"][1]["not_run"] == "needs 2 GPUs, 0 present"
    assert "| sweep | ok |" in page


def test_a_step_past_its_budget_is_stopped_and_the_next_one_runs(tmp_path: Path) -> None:
    """6 s for everything: the sweep step (embedded Ray, a `sweep run`) is stopped, reported
    as timed out, and the run exits 1; the next step finds the overall budget spent."""
    out = tmp_path / "out"
    done = run("--dry-run", "--out", str(out), "--only", "sweep", "populations", "--budget", "6")
    assert done.returncode == 1, done.stdout + done.stderr
    steps = {s["name"]: s for s in json.loads((out / "gpu_check.json").read_text())["steps"]}
    assert list(steps) == ["sweep", "populations"]
    assert steps["sweep"]["status"] == "timed out after 6 s"
    assert steps["sweep"]["rows"] == []
    assert steps["sweep"]["seconds"] < 6 + 10 + 5 + 5  # budget, SIGINT's grace, SIGKILL's
    assert steps["populations"]["status"] == "not run: the overall budget is spent"
    assert "| sweep | timed out after 6 s |" in (out / "gpu_check.md").read_text()
