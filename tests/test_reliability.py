"""Faults: node loss, divergence, storage hiccups, concurrent writers, corrupt part files."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pyarrow.fs as pafs
import pytest

from sweep.results import read_table, write_part
from tests.support.cli import sweep_here
from tests.support.driver import (
    TRIAL_RUN,
    Driver,
    assert_kept,
    assert_one_run,
    kill_node_mid_trial,
    tapped_rows,
)
from tests.support.sweeps import (
    NODE_LOSS_EPISODES,
    LocalCluster,
    kill_session,
    node_loss_spec,
    status_rows,
    still_running,
    tiny_spec,
    write_spec,
)


def _curve_row(trial: str, step: int) -> dict[str, Any]:
    return {
        "sweep": "s",
        "trial_id": trial,
        "phase": "search",
        "step": step,
        "episodes": step,
        "value": 0.1,
        "schema_version": 3,
    }


class _FailingFirstWrites(pafs.FileSystemHandler):
    """A real local filesystem whose first `failures` output streams break mid-write."""

    def __init__(self, failures: int):
        self.local = pafs.LocalFileSystem()
        self.failures = failures

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            stream = self.local.open_output_stream(path)
            stream.write(b"PAR1 half a file")  # a partial write, then the storage fails
            stream.close()
            raise OSError("storage went away")
        return self.local.open_output_stream(path, metadata=metadata)

    # everything else is the local filesystem
    def get_type_name(self) -> str:
        return "failing-first-writes"

    def normalize_path(self, path: str) -> str:
        return self.local.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.local.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("no")

    def delete_file(self, path: str) -> None:
        self.local.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.local.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.local.copy_file(src, dest)

    def open_input_stream(self, path: str) -> Any:
        return self.local.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        return self.local.open_input_file(path)

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        return self.local.open_append_stream(path, metadata=metadata)


def test_a_failed_flush_is_retried_and_leaves_no_partial_file(tmp_path: Path) -> None:
    fs = pafs.PyFileSystem(_FailingFirstWrites(failures=2))
    write_part(tmp_path, "curves", [_curve_row("a", 1), _curve_row("a", 2)], fs=fs)
    assert sorted(p.name[:5] for p in (tmp_path / "curves").iterdir()) == ["part-"]
    assert read_table(tmp_path, "curves")["step"].tolist() == [1, 2]


def test_a_flush_that_keeps_failing_raises_and_leaves_nothing(tmp_path: Path) -> None:
    fs = pafs.PyFileSystem(_FailingFirstWrites(failures=3))
    with pytest.raises(OSError, match="storage went away"):
        write_part(tmp_path, "curves", [_curve_row("a", 1)], fs=fs)
    assert list((tmp_path / "curves").iterdir()) == []


def _writer(args: tuple[str, str]) -> None:
    folder, trial = args
    for step in range(1, 21):
        write_part(folder, "curves", [_curve_row(trial, step)])


def test_concurrent_writers_never_lose_each_others_rows(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_writer, [(str(tmp_path), f"trial-{i}") for i in range(4)])
    curves = read_table(tmp_path, "curves")
    assert len(curves) == 80
    assert (curves.groupby("trial_id")["step"].apply(sorted) == [list(range(1, 21))] * 4).all()


def test_a_truncated_part_is_skipped_with_a_warning_naming_it(tmp_path: Path) -> None:
    good = Path(write_part(tmp_path, "curves", [_curve_row("a", 1)]))
    bad = tmp_path / "curves" / "part-99999999999999999999-truncated.parquet"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        curves = read_table(tmp_path, "curves")
    assert curves["trial_id"].tolist() == ["a"]
    assert any(bad.name in str(w.message) for w in caught)


def _ray_listening(pid: int, listening: set[tuple[str, str]]) -> bool:
    """Adds the (process name, address) each process under `pid` listens on to `listening`;
    whether Ray's raylet and at least 4 sockets in all were found."""
    tree = psutil.Process(pid)
    pids = {tree.pid} | {p.pid for p in tree.children(recursive=True)}
    for conn in psutil.net_connections("inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            try:
                listening.add((psutil.Process(conn.pid).name(), conn.laddr.ip))
            except psutil.NoSuchProcess:
                continue
    return any(name == "raylet" for name, _ in listening) and len(listening) >= 4


@pytest.mark.slow
def test_a_diverging_trial_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    """lr = 1e30 sends the RNN's linear readout to infinity within two updates. While it
    runs, the sweep's embedded Ray listens on loopback only (one sweep serves both checks:
    each costs a Ray start)."""
    spec = tiny_spec(
        tmp_path,
        name="diverge",
        difficulties=["trivial"],
        models={"rnn": {"family": "rnn", "hidden": 8}},
        train={"episodes": 64, "batch_size": 8, "eval_every": 8, "eval_episodes": 8},
        search={"trials_per_cell": 2, "space": {"lr": {"loguniform": [1.0e29, 1.0e30]}}},
        confirm={"seeds": 1},
    )
    listening: set[tuple[str, str]] = set()
    with Driver("run", str(write_spec(tmp_path, spec)), logs=tmp_path) as driver:
        driver.wait_until(lambda: _ray_listening(driver.pid, listening), timeout=120)
        assert driver.finish() == 0, driver.stderr[-3000:]
    assert {name for name, _ in listening} >= {"gcs_server", "raylet"}, listening
    assert {ip for _, ip in listening} <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, listening
    trials = pd.read_parquet(tmp_path / "results" / "diverge" / "trials")
    assert len(trials) == 2 and set(trials["status"]) == {"diverged"}
    assert (trials["episodes"] < 64).all()  # stopped at once
    assert trials["final_value"].notna().all()  # its last finite evaluation
    assert not (trials["phase"] == "confirm").any()  # nothing finite to confirm
    # nothing left pending: with no usable search trial there is nothing to confirm
    status = sweep_here("status", str(tmp_path / "results" / "diverge"))
    row = status_rows(status.stdout)["trivial/rnn"]
    assert row[:4] == ["2", "2", "0", "0"], row  # done, failed, running, pending


# a process that starts one child in a process group of its own (as Ray's raylet starts each
# worker), prints the child's pid and waits
_LEADER = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
    " process_group=0)\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def test_a_killed_node_or_driver_loses_its_workers_too() -> None:
    """What the node-loss and killed-driver tests rely on: killing the session leader's
    process group leaves a worker in a group of its own running; `kill_session` kills it."""
    leader = subprocess.Popen(
        [sys.executable, "-c", _LEADER], stdout=subprocess.PIPE, start_new_session=True
    )
    with leader:
        assert leader.stdout is not None
        worker = psutil.Process(int(leader.stdout.readline()))
        try:
            assert os.getpgid(worker.pid) != os.getpgid(leader.pid)
            assert os.getsid(worker.pid) == leader.pid
            os.killpg(leader.pid, signal.SIGKILL)  # the process group alone
            leader.wait()
            assert still_running(worker)
            kill_session(leader)
            assert not still_running(worker)
            assert leader.returncode == -signal.SIGKILL
        finally:  # nothing left running if a check failed (`with` waits for the leader)
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
            leader.kill()


@pytest.mark.slow
@pytest.mark.xdist_group("cluster")  # Ray heads on this machine: one at a time
def test_node_loss_trials_resume_from_their_checkpoints(tmp_path: Path) -> None:
    """Kill the second node's processes while a trial runs there: the trial is retried on the
    head from its last checkpoint, and its curve continues without gaps or repeats."""
    fast_death = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4"}
    cluster = LocalCluster(env=fast_death)
    try:
        cluster.start_head()
        victim = cluster.start(f"--address={cluster.address}", '--resources={"victim": 1}')
        cluster.wait_for(alive=2)
        spec = node_loss_spec(tmp_path)
        folder, tap = tmp_path / "results" / "nodeloss", tmp_path / "raw"
        line = ("run", str(write_spec(tmp_path, spec)), "--address", cluster.address)
        with Driver(*line, logs=tmp_path, env=cluster.env, tap=tap) as driver:
            victim_node = cluster.node_with("victim")
            before = kill_node_mid_trial(cluster, victim, victim_node, folder, driver)
            assert driver.finish() == 0, driver.stderr[-3000:]
    finally:
        cluster.stop()
    killed_trial = before["trial_id"].iloc[0]
    trials = pd.read_parquet(folder / "trials")
    curves = pd.read_parquet(folder / "curves")
    assert len(trials) == 3 and set(trials["status"]) == {"completed"}
    # no step run twice, counted before compaction (which keeps one row per step), and the
    # steps reported before the kill are the ones kept
    assert_one_run(tapped_rows(tap, "curves"), ["trial_id", "step"], ["wall_s", "value"])
    assert_one_run(tapped_rows(tap, "trials"), ["trial_id"], TRIAL_RUN)
    assert_kept(before, curves, ["trial_id", "step"], ["wall_s", "value", "node"])
    assert (curves.groupby("trial_id")["step"].apply(sorted) == [list(range(1, 7))] * 3).all()
    resumed = curves[curves["trial_id"] == killed_trial].sort_values("step")
    # the steps before the kill are the victim node's; the rest ran on the head afterwards
    assert resumed["node"].iloc[0] == victim_node
    assert resumed["node"].iloc[-1] != victim_node
    row = trials[trials["trial_id"] == killed_trial]
    assert row["node"].item() != victim_node and row["episodes"].item() == NODE_LOSS_EPISODES
