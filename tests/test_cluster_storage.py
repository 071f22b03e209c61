"""Sweeps across machines that share no disk. Worker nodes run in their own mount namespace
with an empty tmpfs over the head's folders, so they really cannot see the head's files;
object storage is moto's S3 server on loopback, spoken to by pyarrow's real S3 client."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pandas as pd
import psutil
import pytest

import analysis
from sweep.results import read_table
from tests.support.driver import (
    Driver,
    assert_kept,
    assert_not_run_again,
    assert_one_run,
    kill_node_mid_trial,
    kill_when_rows,
    tapped_rows,
)
from tests.support.sweeps import (
    KILLED_EVALUATIONS,
    KILLED_TRIALS,
    NODE_LOSS_EPISODES,
    LocalCluster,
    S3Server,
    killed_spec,
    node_loss_spec,
    one_cell_spec,
    sweep,
    tiny_spec,
    write_spec,
)

pytestmark = pytest.mark.slow
# Ray heads on this machine: the xdist group runs them one at a time (the tests on embedded
# Ray start none and run beside them)
cluster_group = pytest.mark.xdist_group("cluster")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="a mount namespace per node needs root (CI runs as root)"
)
FAST_DEATH = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4"}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server()
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)  # this process reads the sweeps back (analysis, tables)
    try:
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


def _cluster(hidden: Path, env: dict[str, str]) -> LocalCluster:
    """A head (1 CPU) and a worker (1 CPU, resource `victim`) that cannot see `hidden`."""
    hidden.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(env={**FAST_DEATH, **env})
    cluster.start_head()
    cluster.start(f"--address={cluster.address}", '--resources={"victim": 1}', hide=hidden)
    cluster.wait_for(alive=2)
    return cluster


@cluster_group
@needs_root
def test_a_local_folder_the_workers_cannot_see_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    cluster = _cluster(results, {})
    try:
        spec = write_spec(tmp_path, tiny_spec(tmp_path, name="blind"))
        done = sweep("run", str(spec), "--address", cluster.address, env=cluster.env)
    finally:
        cluster.stop()
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(results / "blind") in lines[0] and "cannot see" in lines[0]
    assert "s3://" in lines[0] and "NFS" in lines[0]  # what to use instead
    assert list(results.iterdir()) == []  # nothing written


@cluster_group
@needs_root
def test_an_s3_sweep_on_nodes_that_share_no_disk_survives_losing_a_worker(
    s3: S3Server, tmp_path: Path
) -> None:
    """The worker sees none of the head's files (spec, driver cache, anything in tmp_path):
    everything it needs goes through S3. Killing it mid-trial, the trial continues on the head
    from its last checkpoint in S3, no step lost or run twice."""
    cluster = _cluster(tmp_path, {**s3.env, "SWEEP_CACHE": str(tmp_path / "cache")})
    storage = s3.uri("lossy")
    folder = f"{storage}/nodeloss"
    try:
        spec = node_loss_spec(tmp_path, storage=storage)
        line = ("run", str(write_spec(tmp_path, spec)), "--address", cluster.address)
        with Driver(*line, logs=tmp_path, env=cluster.env, tap=tmp_path / "raw") as driver:
            victim = cluster.node_with("victim")
            before = kill_node_mid_trial(cluster, cluster.nodes[1], victim, folder, driver)
            assert driver.finish() == 0, driver.stderr[-3000:]
    finally:
        cluster.stop()
    killed = before["trial_id"].iloc[0]
    trials, curves = read_table(folder, "trials"), read_table(folder, "curves")
    assert len(trials) == 3 and set(trials["status"]) == {"completed"}
    # no step run twice, counted before compaction (which keeps one row per step), and the
    # steps reported before the kill are the ones kept
    raw = tapped_rows(tmp_path / "raw", "curves")
    assert_one_run(raw, ["trial_id", "step"], ["wall_s", "value"])
    assert_kept(before, curves, ["trial_id", "step"], ["wall_s", "value", "node"])
    assert (curves.groupby("trial_id")["step"].apply(sorted) == [list(range(1, 7))] * 3).all()
    resumed = curves[curves["trial_id"] == killed].sort_values("step")
    assert resumed["node"].iloc[0] == victim and resumed["node"].iloc[-1] != victim
    other = curves[curves["trial_id"] != killed].groupby("trial_id")["episodes"].apply(sorted)
    assert resumed["episodes"].tolist() == other.iloc[0]  # the same evaluations, none twice
    assert trials.loc[trials["trial_id"] == killed, "episodes"].item() == NODE_LOSS_EPISODES


def test_a_killed_driver_resumes_from_s3_on_a_fresh_disk_and_analysis_reads_it(
    s3: S3Server, tmp_path: Path
) -> None:
    storage = s3.uri("resumable")
    folder = f"{storage}/killed"
    spec = killed_spec(tmp_path, storage=storage)
    first_cache, tap = tmp_path / "first-driver-cache", tmp_path / "raw"
    first = {"SWEEP_CACHE": str(first_cache)}
    with Driver("run", str(write_spec(tmp_path, spec)), logs=tmp_path, env=first) as driver:
        before = kill_when_rows(driver, folder, "trials", 3)  # the driver and its embedded Ray
    assert 3 <= len(before) < KILLED_TRIALS
    assert (first_cache.exists()) and not (tmp_path / "results").exists()  # all of it in S3

    fresh = tmp_path / "fresh-head-cache"  # a new head: nothing on its disk
    done = sweep("resume", folder, env={**os.environ, "SWEEP_CACHE": str(fresh)}, tap=tap)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = read_table(folder, "trials")
    assert len(trials) == KILLED_TRIALS
    assert set(trials["status"]) == {"completed"}, trials["error"].dropna().tolist()
    assert_not_run_again(before, tap, trials)  # counted before compaction
    curves = read_table(folder, "curves")
    assert (
        curves.groupby("trial_id")["step"].apply(sorted) == [list(range(1, 7))] * KILLED_TRIALS
    ).all()

    results = analysis.load(folder)  # straight from S3, studies included
    assert len(results.trials) == KILLED_TRIALS
    studies = results.studies()
    assert len(studies) == 2
    for study in studies.values():
        assert len(study.trials) == 3
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        # the copy in S3 missed no evaluation a resume could not report again
        for t in study.trials:
            assert sorted(t.intermediate_values) == KILLED_EVALUATIONS, t.number
    out = tmp_path / "report"
    report = subprocess.run(
        [sys.executable, "-m", "analysis", "report", folder, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    assert (out / "report.html").stat().st_size > 10_000


def _kill_trial_workers(driver: Driver) -> int:
    """SIGKILL every Ray worker process running a trial under this driver."""
    killed = 0
    for proc in psutil.Process(driver.pid).children(recursive=True):
        try:
            if proc.name().startswith("ray::ImplicitFunc"):  # a function trainable's actor
                proc.kill()
                killed += 1
        except psutil.NoSuchProcess:
            continue
    return killed


def test_a_sweep_whose_trials_all_fail_exits_non_zero_naming_the_error(tmp_path: Path) -> None:
    """Every trial's worker process is killed (a real fault, no retries): the sweep writes
    what it has, exits 1 and names the most common error in one line."""
    spec = one_cell_spec(
        tmp_path,
        "doomed",
        train={"episodes": 100_000, "batch_size": 8, "eval_every": 500, "eval_episodes": 16},
        search={"trials_per_cell": 2, "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}}},
        confirm={"seeds": 1},
        fault_tolerance={"max_failures": 0},
    )
    with Driver("run", str(write_spec(tmp_path, spec)), logs=tmp_path) as driver:
        # kill every trial's workers as they start, again and again, until the sweep ends
        driver.wait_until(lambda: _kill_trial_workers(driver) < 0, every=0.5)
        assert driver.finish(timeout=60) == 1, driver.stderr[-3000:]
    last = driver.stderr.strip().splitlines()[-1]
    assert last.startswith("sweep: error: every trial of 1 cell(s) failed (small/plastic)")
    # both trials' actors were killed: dead while running, or cancelled before they ran
    # (Ray's two messages), so the most common error is one of the two or both
    assert re.search(r"; 2 of 2 trials failed, most often \([12]x\) with: The actor ", last)
    trials = pd.read_parquet(tmp_path / "results" / "doomed" / "trials")
    assert len(trials) == 2 and set(trials["status"]) == {"failed"}
    assert "small/plastic" in driver.stdout  # the cells table, printed before the error
