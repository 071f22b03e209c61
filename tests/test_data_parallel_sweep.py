"""Real sweeps of data-parallel trials (`resources.workers: 2`, gloo) on embedded Ray with
2 CPUs: ASHA stops, a killed worker, a killed driver, a misfit."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest

from tests.support.driver import (
    TRIAL_RUN,
    Driver,
    assert_kept,
    assert_not_run_again,
    assert_one_run,
    raw_rows,
    raw_table,
    tapped_rows,
)
from tests.support.sweeps import sweep, tiny_spec, write_spec

pytestmark = pytest.mark.slow

TWO_WORKERS = {"workers": 2, "cpu": 1, "gpu": 0}
EPISODES = 6000  # a trial's: 6 evaluations
# Runs a sweep in this process's own embedded Ray (2 CPUs), then prints the cluster's total
# and free CPUs, waiting up to 10 s for the last trial's resources to come back.
RUN_AND_COUNT = """
import json, sys, time, yaml, ray
from sweep.runner import run
from sweep.spec import parse_spec
run(parse_spec(yaml.safe_load(open(sys.argv[1]))), num_cpus=2, live=False)
total, start = ray.cluster_resources()["CPU"], time.monotonic()
while ray.available_resources().get("CPU", 0) < total and time.monotonic() - start < 10:
    time.sleep(0.2)
print(json.dumps({"total": total, "free": ray.available_resources().get("CPU", 0)}))
"""


def _workers_of(pid: int) -> list[psutil.Process]:
    """The data-parallel worker actors (ranks 1..W-1) among a driver's descendants."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "TrialWorker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _spec(tmp_path: Path, name: str, **changes: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "difficulties": ["small"],
        "models": {"plastic": {"family": "plastic"}},
        # about a quarter of a second per evaluation (quiet), so that a kill lands between
        # two of them; large batches, since each update waits on a collective across the
        # ranks
        "train": {
            "episodes": EPISODES,
            "batch_size": 32,
            "eval_every": EPISODES // 6,
            "eval_episodes": 16,
        },
        "confirm": {"seeds": 0},
        "resources": TWO_WORKERS,
        "fault_tolerance": {"max_failures": 2, "checkpoint_every_s": 0},
        "max_concurrent": None,
    }
    return tiny_spec(tmp_path, name=name, **{**settings, **changes})


def test_a_killed_worker_is_retried_from_its_checkpoint_and_asha_frees_every_cpu(
    tmp_path: Path,
) -> None:
    spec = _spec(
        tmp_path,
        "dp",
        search={
            "trials_per_cell": 4,
            "sampler": "random",
            "seed": 0,
            "space": {"lr": {"loguniform": [1.0e-6, 1.0e-2]}},
        },
        early_stop={"scheduler": "asha", "grace_episodes": EPISODES // 6, "reduction_factor": 2},
    )
    folder, tap = tmp_path / "results" / "dp", tmp_path / "raw"
    script = "from tests.support.tap import install\ninstall()\n" + RUN_AND_COUNT
    with Driver(str(write_spec(tmp_path, spec)), logs=tmp_path, tap=tap, script=script) as driver:

        def first_trial_mid_way() -> tuple[pd.DataFrame, int] | None:
            # the first trial (ASHA stops none at a rung it reaches first; trials run one at
            # a time), with a checkpoint and steps still to go (6 in all)
            curves, workers = raw_rows(folder, "curves"), _workers_of(driver.pid)
            if not len(curves):
                return None
            first = curves[curves["trial_id"] == curves["trial_id"].iloc[0]]
            if len(first) == len(curves) and 1 <= len(first) <= 3 and len(workers) == 1:
                return first, workers[0].pid
            return None

        found = driver.wait_until(first_trial_mid_way, every=0.1)
        assert found is not None, "no worker to kill"
        before, killed_pid = found
        killed_trial = before["trial_id"].iloc[0]
        os.kill(killed_pid, signal.SIGKILL)
        assert driver.finish() == 0, driver.stderr[-3000:]
    resources = json.loads(driver.stdout.strip().splitlines()[-1])
    assert resources["free"] == resources["total"] == 2  # nothing left reserved

    trials = pd.read_parquet(folder / "trials")
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert set(trials["status"]) == {"completed", "stopped_early"}  # ASHA stopped some
    assert (trials["workers"] == 2).all()
    assert (trials["devices"] == "cpu;cpu").all()
    assert (trials["nodes"].str.split(";").map(len) == 2).all()
    assert (trials["episodes_per_second"] > 0).all()

    # no step run twice (counted before compaction, which keeps one row per step)
    assert_one_run(tapped_rows(tap, "curves"), ["trial_id", "step"], ["wall_s", "value"])
    assert_one_run(tapped_rows(tap, "trials"), ["trial_id"], TRIAL_RUN)
    curves = pd.read_parquet(folder / "curves")
    for trial_id, steps in curves.groupby("trial_id")["step"]:  # none lost
        assert sorted(steps) == list(range(1, len(steps) + 1)), trial_id
    # the killed trial failed (rank 0's collective saw its peer die), was retried, and went
    # on from its checkpoint: the steps reported before the kill are the ones kept (a restart
    # from scratch would have replaced them with new runs, other timings)
    assert (folder / "tune" / killed_trial / "error.txt").exists()
    assert_kept(before, curves, ["trial_id", "step"], ["wall_s", "value"])
    kept = curves[curves["trial_id"] == killed_trial].set_index("step")["wall_s"]
    assert sorted(kept.index) == list(range(1, 7)) and kept.is_monotonic_increasing
    killed = trials[trials["trial_id"] == killed_trial]
    assert killed["status"].item() == "completed" and killed["episodes"].item() == EPISODES
    assert not psutil.pid_exists(killed_pid) or psutil.Process(killed_pid).status() == "zombie"


def test_resume_after_a_killed_driver_with_two_worker_trials(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        "dpresume",
        search={"trials_per_cell": 2, "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}}},
        early_stop="none",
        confirm={"seeds": 1},
    )
    folder, tap = tmp_path / "results" / "dpresume", tmp_path / "raw"
    with Driver("run", str(write_spec(tmp_path, spec)), "--num-cpus", "2", logs=tmp_path) as driver:
        mid_trial = driver.wait_until(
            lambda: len(raw_table(folder, "trials")) >= 1 and len(_workers_of(driver.pid)) == 1
        )
        assert mid_trial, "the sweep finished before it could be killed"
        driver.kill()
    before = raw_rows(folder, "trials")
    assert 1 <= len(before) < 3

    done = sweep("resume", str(folder), "--num-cpus", "2", tap=tap)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = pd.read_parquet(folder / "trials")
    assert len(trials) == 2 + 1 and trials["trial_id"].is_unique
    assert set(trials["status"]) == {"completed"} and (trials["workers"] == 2).all()
    assert_not_run_again(before, tap, trials)  # counted before compaction
    curves = pd.read_parquet(folder / "curves")
    assert (curves.groupby("trial_id")["step"].apply(sorted) == [list(range(1, 7))] * 3).all()


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (
            {"workers": 3, "cpu": 1},
            "a trial asks for 3 workers x 1 CPU / 0 GPU but the nodes together can hold "
            "only 2 such workers",
        ),
        (
            {"workers": 2, "cpu": 1, "gpu": 1},
            "a trial asks for 2 workers x 1 CPU / 1 GPU but the nodes together can hold "
            "only 0 such workers",
        ),
    ],
)
def test_more_workers_than_the_cluster_holds_is_one_line_exit_2(
    tmp_path: Path, resources: dict[str, Any], message: str
) -> None:
    spec = tiny_spec(tmp_path, resources=resources)
    done = sweep("run", str(write_spec(tmp_path, spec)), "--num-cpus", "2", timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("sweep: error: ")]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()
