"""Hand-built sweep folders: a spec.yaml and part files the sweep's own writer wrote from
rows a test chose, for analysis tests that need no real sweep."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sweep.results import write_part

Rows = Sequence[Mapping[str, Any]]


def sweep_folder(
    root: Path,
    name: str,
    spec: Mapping[str, Any] | None = None,
    *,
    trials: Rows = (),
    provenance: Mapping[str, Any] | None = None,
    **tables: Rows,
) -> Path:
    """`root/name` as `sweep run` leaves it: `spec.yaml` (`name` and the patterns task, then
    `spec`, in that order) and one part file per table given. Trials rows gain the sweep's
    name and `provenance`; the other tables' rows (curves, reconstructions) are written as
    given."""
    folder = root / name
    folder.mkdir(parents=True)
    written = {"name": name, "task": "patterns", **(spec or {})}
    (folder / "spec.yaml").write_text(yaml.safe_dump(written, sort_keys=False))
    if trials:
        named = [{**row, "sweep": name, **(provenance or {})} for row in trials]
        write_part(folder, "trials", named)
    for table, rows in tables.items():
        write_part(folder, table, [dict(row) for row in rows])
    return folder
