"""Older results read as the current schema: one step per schema version, applied in order
to each part file as it is read (by `analysis` and by the writer's own reader), so a sweep
written by any earlier version loads with today's column names. Imports pyarrow only.

    1 -> 2   `goal` recorded: every task of schema 1 had errors ("min")
    2 -> 3   metric-neutral value columns: trials `final_error`, `best_error` ->
             `final_value`, `best_value`; curves `error` -> `value`
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

# Columns renamed by a version, per table: {version: {table: {old: new}}}.
RENAMED: dict[int, dict[str, dict[str, str]]] = {
    3: {
        "trials": {"final_error": "final_value", "best_error": "best_value"},
        "curves": {"error": "value"},
    },
}


def version_of(data: pa.Table) -> int:
    """The schema version a part file was written with: its schema's metadata, else its
    `schema_version` column, else 1."""
    meta = data.schema.metadata or {}
    if b"schema_version" in meta:
        return int(meta[b"schema_version"])
    if "schema_version" in data.column_names and data.num_rows:
        found = pc.max(data.column("schema_version")).as_py()
        if found is not None:
            return int(found)
    return 1


def _goal(data: pa.Table, table: str) -> pa.Table:
    if table != "trials" or "goal" in data.column_names:
        return data
    return data.append_column("goal", pa.array(["min"] * data.num_rows, pa.string()))


def _renamer(version: int) -> Callable[[pa.Table, str], pa.Table]:
    def rename(data: pa.Table, table: str) -> pa.Table:
        renamed = RENAMED[version].get(table, {})
        names = [renamed.get(n, n) for n in data.column_names]
        return data.rename_columns(names)

    return rename


# What each version changed, as a function of (part, table name) -> part.
STEPS: dict[int, Callable[[pa.Table, str], pa.Table]] = {2: _goal, 3: _renamer(3)}


def upgrade(data: pa.Table, table: str) -> pa.Table:
    """A part file of `table` ("trials", "curves", "reconstructions") in today's columns."""
    written = version_of(data)
    for version, step in STEPS.items():
        if written < version:
            data = step(data, table)
    return data
