"""A `sweep` command in the background, watched through the rows it writes and killed at a
chosen moment; the raw rows of a sweep's part files; and the rows each table held just
before the sweep compacted them (see `tests.support.tap`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from optuna.trial import FrozenTrial, TrialState

from tests.support.sweeps import LocalCluster, command, kill_session


def raw_table(folder: str | Path, table: str) -> pa.Table:
    """Every row of every part file of `table`, in write order, without the readers'
    one row per key (a folder or a URI). A part that compaction removes while it is read is
    read again from the new listing."""
    from sweep.results import schema
    from sweep.store import filesystem, part_files

    fs, root = filesystem(folder)
    for _ in range(5):
        try:
            parts = part_files(fs, f"{root}/{table}")
            read = [pq.read_table(p, filesystem=fs) for p in parts]
            if not read:
                return schema(table).empty_table()
            return pa.concat_tables(read, promote_options="default")
        except FileNotFoundError:
            time.sleep(0.1)
    raise RuntimeError(f"{folder}/{table}: the part files kept changing")


def raw_rows(folder: str | Path, table: str) -> pd.DataFrame:
    return raw_table(folder, table).to_pandas()


def tapped_rows(tap: Path, table: str) -> pd.DataFrame:
    """The rows `table` held just before the sweep's last compaction (every run's, the
    killed one's too), as the tap copied them."""
    copied = tap / f"{table}.parquet"
    assert copied.exists(), f"the sweep compacted no {table} (no {copied})"
    return pd.read_parquet(copied)


def assert_kept(before: pd.DataFrame, after: pd.DataFrame, key: list[str], same: list[str]):
    """Each row of `before` is in `after` unchanged in `same` (times, say): its trial did not
    run again (a re-run writes the same key with new times, and compaction keeps that row)."""
    merged = before[key + same].merge(after[key + same], on=key, how="left", suffixes=("", "~"))
    for column in same:
        changed = merged[merged[column] != merged[f"{column}~"]]
        assert changed.empty, f"{column} of {changed[key].values.tolist()} changed"


# what a trial's row says of its run: the same in every report of one run
TRIAL_RUN = ["started_at", "train_seconds", "final_value", "episodes"]


def assert_one_run(raw: pd.DataFrame, key: list[str], same: list[str]) -> None:
    """Rows written twice under one key (raw rows, before compaction) are one run reported
    again, never a second run: they agree on `same` (start time, timings, results). A trial
    that Ray Tune restores from its final checkpoint sends its last result once more; a
    trial run again under its own id would start later and time its steps anew."""
    runs = raw.groupby(key)[same].nunique(dropna=False)
    twice = runs[(runs > 1).any(axis=1)]
    assert twice.empty, f"run more than once: {twice.index.tolist()}"


def assert_not_run_again(before: pd.DataFrame, tap: Path, trials: pd.DataFrame) -> None:
    """The trials whose rows were written before a kill (`before`) did not run again after
    it. Counted before compaction (which keeps one row per trial, `tap`): each trial's rows
    are one run (a trial restored from its final checkpoint reports its result again),
    those trials' curve rows are one run per step, and the rows kept (`trials`) are the
    ones written before the kill."""
    assert_one_run(tapped_rows(tap, "trials"), ["trial_id"], TRIAL_RUN)
    curves = tapped_rows(tap, "curves")
    finished = curves[curves["trial_id"].isin(before["trial_id"])]
    assert_one_run(finished, ["trial_id", "step"], ["wall_s", "value"])
    assert_kept(before, trials, ["trial_id"], TRIAL_RUN)


def assert_study_is_the_rows(
    study: list[FrozenTrial], search: pd.DataFrame, curves: pd.DataFrame
) -> None:
    """A cell's Optuna trials agree with its search rows (`optuna_trial` names the trial):
    a trial stopped early is PRUNED, a completed one COMPLETE, its intermediate values are its
    evaluations (at step = episodes) and its value the last one."""
    by_number = search.set_index("optuna_trial")
    for t in study:
        row = by_number.loc[t.number]
        pruned = row["status"] == "stopped_early"
        assert t.state == (TrialState.PRUNED if pruned else TrialState.COMPLETE), t.number
        mine = curves[curves["trial_id"] == row["trial_id"]].sort_values("episodes")
        assert t.intermediate_values == dict(zip(mine["episodes"], mine["value"], strict=True))
        assert t.value == pytest.approx(row["final_value"])


class Driver:
    """`sweep <args>` in its own process group, its output in files (a pipe nobody reads
    would fill and stall it); with `script`, `python -c script <args>` instead. Killed on
    leaving a `with` block if still running."""

    def __init__(
        self,
        *args: str,
        logs: Path,
        env: Mapping[str, str] | None = None,
        tap: Path | None = None,
        script: str | None = None,
    ) -> None:
        line, changes = command(args, tap)
        if script is not None:
            line = [sys.executable, "-c", script, *args]
        self.out, self.err = logs / "driver.out", logs / "driver.err"
        logs.mkdir(parents=True, exist_ok=True)
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                line,
                env={**os.environ, **(env or {}), **changes},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def wait_until(self, ready: Callable[[], Any], timeout: float = 300, every: float = 0.2) -> Any:
        """Poll `ready()` while the sweep runs; its first true value, or None if the sweep
        ended or `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running:
            found = ready()
            if found is not None and found is not False:
                return found
            time.sleep(every)
        return None

    def kill(self) -> None:
        """SIGKILL the driver and everything it started (its embedded Ray, workers included)."""
        kill_session(self.process)

    def finish(self, timeout: float = 600) -> int:
        """Wait for the sweep to end by itself; its exit status."""
        return self.process.wait(timeout=timeout)

    @property
    def stdout(self) -> str:
        return self.out.read_text()

    @property
    def stderr(self) -> str:
        return self.err.read_text()

    def __enter__(self) -> Driver:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


def kill_when_rows(driver: Driver, folder: str | Path, table: str, rows: int) -> pd.DataFrame:
    """Kill the sweep once `table` has at least `rows` raw rows; those rows (as read just
    before the kill). Fails if the sweep ended first."""
    found = driver.wait_until(lambda: len(raw_table(folder, table)) >= rows)
    assert found and driver.running, "the sweep finished before it could be killed"
    driver.kill()
    return raw_rows(folder, table)


def kill_node_mid_trial(
    cluster: LocalCluster,
    node: subprocess.Popen[bytes],
    node_id: str,
    folder: str | Path,
    driver: Driver,
) -> pd.DataFrame:
    """Kill `node` as soon as the sweep at `folder` has curve rows of a trial running there
    that is not about to finish (step < 4); that trial's curve rows, read just before the
    kill. Fails if no trial ran there."""

    def running_there() -> pd.DataFrame | None:
        curves = raw_rows(folder, "curves")
        there = curves[(curves["node"] == node_id) & (curves["step"] < 4)]
        return there if len(there) else None

    there = driver.wait_until(running_there, every=0.3)
    assert there is not None, "no trial ran on the node"
    trial = there["trial_id"].iloc[0]
    before = raw_rows(folder, "curves")
    cluster.kill(node)
    return before[before["trial_id"] == trial]
