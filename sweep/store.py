"""The results store: the one definition of every table, shared by the writer
(`sweep.results`, on the driver) and the reader (`analysis`).

    <sweep>/spec.yaml                        the resolved spec that ran
    <sweep>/spec-as-written.yaml             the spec file as its author wrote it
    <sweep>/history/<n>/spec*.yaml           a grown sweep: both, for each generation
    <sweep>/trials/part-*.parquet            one row per trial (identity, config, outcome,
                                             provenance)
    <sweep>/curves/part-*.parquet            one row per report (trial_id, step, metrics)
    <sweep>/reconstructions/part-*.parquet   picture tasks only: one row per recorded
                                             episode of a finished trial (target, output,
                                             erased part), for the reconstruction figure

Part files are written atomically under hidden `.part-*.tmp` names, then renamed; names start
with a nanosecond time, so name order is write order. Resumed or retried trials may repeat
rows; readers keep the last row per key.

This module imports pyarrow and pandas only: `analysis` reads with it where neither Ray nor
torch is installed. The trials table's config columns (`hp.*`, `task.*`) depend on the model
families and tasks registered, so the writer passes them to `trials_schema`; everything
else is fixed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

SCHEMA_VERSION = 2  # 2: `goal`, `references`, package versions and platform
SPEC_FILE = "spec.yaml"  # the resolved spec that ran (every default filled in)
SPEC_AS_WRITTEN = "spec-as-written.yaml"  # the user's file, byte for byte (`sweep run` only)
HISTORY = "history"  # a grown sweep: history/<n>/ holds the spec of its n-th generation
JOURNAL = "optuna/journal.log"  # one Optuna study per cell
CHECKPOINTS = "checkpoints"  # <trial id>.pt: each trial's latest checkpoint
TABLES = ("trials", "curves", "reconstructions")
KEYS = {
    "trials": ["sweep", "trial_id"],
    "curves": ["sweep", "trial_id", "step"],
    "reconstructions": ["sweep", "trial_id", "sample"],
}
_TIME = pa.timestamp("us", tz="UTC")
# Packages whose versions every trials row records (`version.<package>`).
VERSIONED = ("python", "torch", "ray", "optuna", "numpy", "pyarrow")

# -- the metric's direction -------------------------------------------------------------------
# Every task declares whether its metric is better lower ("min": errors) or higher ("max":
# rewards). Writer and reader compare metrics only through these, so "best", "solved" and
# "winner" mean the same everywhere.
GOALS = ("min", "max")


def better(a: Any, b: Any, goal: str) -> Any:
    """`a` strictly better than `b` (scalars, numpy arrays or pandas Series); NaN never is."""
    return a > b if goal == "max" else a < b


def reached(value: Any, threshold: Any, goal: str) -> Any:
    """`value` meets the solved threshold: at or under it ("min"), at or over it ("max")."""
    return value >= threshold if goal == "max" else value <= threshold


def best(values: Sequence[float], goal: str) -> float:
    """The best of some metric values, NaN ignored (NaN when none is a number)."""
    finite = [v for v in values if v == v]
    if not finite:
        return float("nan")
    return max(finite) if goal == "max" else min(finite)


def current_confirmation(trials: pd.DataFrame) -> pd.Series:
    """Per trials row: whether it is a confirmation trial of its cell's current choice, the
    configuration (`optuna_trial`) confirmed last. A sweep that grew may have confirmed an
    earlier best of a cell whose search then found a better one: those rows stay in the
    table, and comparisons use the new choice's."""
    confirm = trials["phase"] == "confirm"
    if not confirm.any():
        return confirm
    rows = trials[confirm]
    order = "started_at" if "started_at" in rows else "optuna_trial"
    ordered = rows.sort_values(order, kind="stable", na_position="first")
    last = ordered.groupby("cell")["optuna_trial"].agg(lambda s: s.iloc[-1])
    mine, chosen = trials["optuna_trial"], trials["cell"].map(last)
    return confirm & ((mine == chosen) | (mine.isna() & chosen.isna()))


# -- trials: identity, then config (`hp.*`, `task.*`, from the registries), provenance, outcome
TRIALS_IDENTITY = {
    "sweep": pa.string(),
    "trial_id": pa.string(),
    "phase": pa.string(),  # search | confirm
    "task": pa.string(),
    "difficulty": pa.string(),
    "model": pa.string(),
    "family": pa.string(),
    "cell": pa.string(),  # "<difficulty>/<model>", the name of the cell's Optuna study
    "seed": pa.int64(),
    "optuna_trial": pa.int64(),
}
TRIALS_PROVENANCE = {
    "git_commit": pa.string(),
    "schema_version": pa.int32(),
    "started_at": _TIME,
    "finished_at": _TIME,
    "node": pa.string(),  # Ray node id (of rank 0, the process that reports)
    "device": pa.string(),  # rank 0's
    "gpu_ids": pa.string(),  # every rank's, ";" between ranks
    "workers": pa.int64(),  # world size: the trial's data-parallel processes
    "devices": pa.string(),  # every rank's device, ";" between ranks, rank 0 first
    "nodes": pa.string(),  # every rank's Ray node id, ";" between ranks
    # The software that ran (the driver's environment; a Ray cluster runs one environment).
    **{f"version.{package}": pa.string() for package in VERSIONED},
    "platform": pa.string(),  # operating system and machine, as `platform.platform()`
}
TRIALS_OUTCOME = {
    "metric": pa.string(),  # what the *_error columns measure: bit_error, erased_mse, reward
    "goal": pa.string(),  # "min": lower is better (errors); "max": higher is better (rewards)
    "chance": pa.float64(),  # the metric of a network that learned nothing
    "solved_threshold": pa.float64(),  # solved when the metric reaches this (per `goal`)
    "references": pa.string(),  # JSON {name: metric value}: levels figures draw beside chance
    "status": pa.string(),  # completed | stopped_early | failed | diverged
    "error": pa.string(),  # what went wrong, for failed trials
    # The task's metric (named in `metric`; for a reward task, a reward: *_error is the
    # metric's value whatever it measures, best per `goal`).
    "final_error": pa.float64(),
    "best_error": pa.float64(),
    "episodes_to_solve": pa.int64(),  # first evaluation that reached the threshold; null: never
    "episodes": pa.int64(),
    "num_parameters": pa.int64(),
    "train_seconds": pa.float64(),
    "episodes_per_second": pa.float64(),
}
TRIALS_FIXED = {**TRIALS_IDENTITY, **TRIALS_PROVENANCE, **TRIALS_OUTCOME}

# The identity columns that start a curves or reconstructions row.
_ROW_IDENTITY = {
    **{k: TRIALS_IDENTITY[k] for k in ("sweep", "trial_id", "phase", "difficulty", "model")},
    "cell": pa.string(),
    "seed": pa.int64(),
}
CURVES = {
    **_ROW_IDENTITY,
    "step": pa.int64(),  # the trial's n-th evaluation report, from 1
    "episodes": pa.int64(),  # training episodes done at that report
    "wall_s": pa.float64(),
    "loss": pa.float64(),
    "error": pa.float64(),  # the task's metric on fresh evaluation episodes
    "episodes_per_second": pa.float64(),
    "node": pa.string(),
    "schema_version": pa.int32(),
}
RECONSTRUCTIONS = {
    **_ROW_IDENTITY,
    "sample": pa.int64(),  # which of the fixed evaluation episodes (the same per level)
    "rows": pa.int64(),  # the picture's shape: target and output are rows * cols, row-major
    "cols": pa.int64(),
    "target": pa.list_(pa.float32()),  # the whole image
    "output": pa.list_(pa.float32()),  # the network's output at the last step
    "erased": pa.list_(pa.bool_()),  # True on the part the cue hid (what the metric scores)
    "schema_version": pa.int32(),
}


def _schema(columns: Mapping[str, pa.DataType]) -> pa.Schema:
    return pa.schema(columns.items(), metadata={"schema_version": str(SCHEMA_VERSION)})


def trials_schema(config: Mapping[str, pa.DataType]) -> pa.Schema:
    """The trials table with these config columns (`hp.*`, `task.*`) after the identity."""
    return _schema({**TRIALS_IDENTITY, **config, **TRIALS_PROVENANCE, **TRIALS_OUTCOME})


CURVES_SCHEMA = _schema(CURVES)
RECONSTRUCTIONS_SCHEMA = _schema(RECONSTRUCTIONS)


def pandas_dtype(arrow: pa.DataType) -> str:
    """The dtype a column of this Arrow type loads as in pandas: nullable integers and
    booleans (a missing value keeps the column's type), pandas' string dtype, UTC times,
    numpy arrays (object) for lists."""
    if pa.types.is_integer(arrow):
        return "Int32" if arrow.bit_width <= 32 else "Int64"
    if pa.types.is_boolean(arrow):
        return "boolean"
    if pa.types.is_string(arrow):
        return "str"
    if pa.types.is_timestamp(arrow):
        return f"datetime64[{arrow.unit}, {arrow.tz}]"
    if pa.types.is_list(arrow):
        return "object"
    return str(arrow.to_pandas_dtype().__name__)


def pandas_columns(columns: Mapping[str, pa.DataType]) -> dict[str, str]:
    return {name: pandas_dtype(arrow) for name, arrow in columns.items()}


# -- files ----------------------------------------------------------------------------------
def filesystem(path: str | Path) -> tuple[pafs.FileSystem, str]:
    """A local folder or a pyarrow filesystem URI (s3://, gs://, file://...)."""
    text = str(path)
    if "://" in text:
        return pafs.FileSystem.from_uri(text)
    return pafs.LocalFileSystem(), str(Path(text).resolve())


def part_files(fs: pafs.FileSystem, folder: str) -> list[str]:
    """A table folder's part files in name (= write) order. Hidden temporary files (a write
    in progress) are not part files."""
    selector = pafs.FileSelector(folder, allow_not_found=True)
    return sorted(
        info.path
        for info in fs.get_file_info(selector)
        if info.base_name.startswith("part-") and info.base_name.endswith(".parquet")
    )


def part_name(time_ns: int, token: str) -> str:
    return f"part-{time_ns:020d}-{token}.parquet"


def last_per_key(data: pa.Table, keys: Sequence[str]) -> pa.Table:
    """The last row of each key, rows kept in their order: a resumed trial re-reports
    steps and the later report wins."""
    rows = pa.array(np.arange(data.num_rows))
    grouped = data.select(list(keys)).append_column("_row", rows).group_by(list(keys))
    last = grouped.aggregate([("_row", "max")])["_row_max"]
    if len(last) == data.num_rows:  # no key twice: a compacted, finished sweep
        return data
    return data.take(pc.take(last, pc.sort_indices(last)))  # the kept rows, in order


def arrow_to_pandas(arrow: pa.DataType) -> Any:
    """`types_mapper` for `Table.to_pandas`: nullable integers and booleans."""
    if pa.types.is_integer(arrow):
        return pd.Int32Dtype() if arrow.bit_width <= 32 else pd.Int64Dtype()
    if pa.types.is_boolean(arrow):
        return pd.BooleanDtype()
    return None
