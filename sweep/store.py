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
torch is installed. Each table's columns are the fields of its row record (`sweep.rows`,
read by `sweep.columns`). The trials table's config columns (`hp.*`, `task.*`) depend on the
model families, learners and tasks registered, so the writer passes them to
`trials_schema`; everything else is fixed there.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sweep import columns
from sweep.rows import SCHEMA_VERSION, CurveRow, ReconstructionRow, TrialRow, Versions
from sweep.upgrade import upgrade

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
# Packages whose versions every trials row records (`version.<package>`).
VERSIONED = tuple(f.name for f in dataclasses.fields(Versions))

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
    if not confirm.any() or "optuna_trial" not in trials:  # (a hand-built table)
        return confirm
    rows = trials[confirm]
    order = "started_at" if "started_at" in rows else "optuna_trial"
    ordered = rows.sort_values(order, kind="stable", na_position="first")
    last = ordered.groupby("cell")["optuna_trial"].agg(lambda s: s.iloc[-1])
    mine, chosen = trials["optuna_trial"], trials["cell"].map(last)
    return confirm & ((mine == chosen) | (mine.isna() & chosen.isna()))


# -- the tables' columns, from their row records (`sweep.rows`) ---------------------------------
TRIALS_FIXED = columns.arrow_columns(TrialRow)  # without the config columns (`hp.*`, `task.*`)
CURVES = columns.arrow_columns(CurveRow)
RECONSTRUCTIONS = columns.arrow_columns(ReconstructionRow)


def trials_schema(config: Mapping[str, pa.DataType]) -> pa.Schema:
    """The trials table with these config columns (`hp.*`, `task.*`) after the identity."""
    return columns.schema(TrialRow, SCHEMA_VERSION, config)


CURVES_SCHEMA = columns.schema(CurveRow, SCHEMA_VERSION)
RECONSTRUCTIONS_SCHEMA = columns.schema(ReconstructionRow, SCHEMA_VERSION)


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


def stops_path(folder: str, trial_id: str) -> str:
    """Where the scheduler lists the members of population `trial_id` it stopped, each with
    the episodes it had trained when stopped (JSON {place: episodes}), beside the
    population's checkpoint."""
    return f"{folder.rstrip('/')}/{CHECKPOINTS}/{trial_id}.stops.json"


def write_stops(folder: str, trial_id: str, stops: Mapping[int, int]) -> None:
    """Written whole under a temporary name, then moved over the last list."""
    fs, where = filesystem(stops_path(folder, trial_id))
    fs.create_dir(where.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(f"{where}.tmp") as out:
        out.write(json.dumps({str(k): int(e) for k, e in sorted(stops.items())}).encode())
    fs.move(f"{where}.tmp", where)


def read_stops(folder: str, trial_id: str) -> dict[int, int]:
    """The members of population `trial_id` the scheduler stopped, each with the episodes at
    its stop (none: no file)."""
    fs, where = filesystem(stops_path(folder, trial_id))
    if fs.get_file_info(where).type == pafs.FileType.NotFound:
        return {}
    with fs.open_input_stream(where) as f:
        return {int(k): int(e) for k, e in json.loads(f.read()).items()}


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


def read_part(
    fs: pafs.FileSystem, path: str, table: str, schema: pa.Schema | None = None
) -> pa.Table:
    """A part file in today's columns, whatever schema version wrote it (`sweep.upgrade`);
    with `schema`, exactly its columns (a column the part lacks: all null)."""
    data = upgrade(pq.read_table(path, filesystem=fs), table)
    if schema is None:
        return data
    rows = data.num_rows
    return pa.table(
        [
            data.column(f.name).cast(f.type)
            if f.name in data.column_names
            else pa.nulls(rows, f.type)
            for f in schema
        ],
        schema=schema,
    )
