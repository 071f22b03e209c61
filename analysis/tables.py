"""Reading sweep results into pandas: the trials, curves and reconstructions tables of one or
more sweeps.

The store's contract is `sweep.store` (one definition of every table, its key and version,
shared with the writer; it imports pyarrow and pandas only, so analysis runs where Ray and
torch are not installed). Part files are written atomically, so a reader never needs a
lock; resumed or retried trials may repeat rows, and readers keep the last row per key, part
files taken in name order.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import yaml
from optuna.storages.journal import JournalFileBackend

from sweep.store import (
    CURVES,
    HISTORY,
    JOURNAL,
    KEYS,
    RECONSTRUCTIONS,
    SPEC_AS_WRITTEN,
    SPEC_FILE,
    TABLES,
    TRIALS_FIXED,
    arrow_to_pandas,
    filesystem,
    last_per_key,
    pandas_columns,
    part_files,
    read_part,
)

# The columns analysis relies on, with the pandas dtype each loads as (`sweep.store` defines
# them once for the writer and this reader). Config columns (`hp.*`, `task.*`) depend on the
# model families and tasks of a sweep; they load with the same mapping from their Parquet
# type. A column a part file lacks (an older schema, or no rows yet) is added, all missing.
TRIALS_COLUMNS: dict[str, str] = pandas_columns(TRIALS_FIXED)
CURVES_COLUMNS: dict[str, str] = pandas_columns(CURVES)
RECONSTRUCTIONS_COLUMNS: dict[str, str] = pandas_columns(RECONSTRUCTIONS)
COLUMNS = {
    "trials": TRIALS_COLUMNS,
    "curves": CURVES_COLUMNS,
    "reconstructions": RECONSTRUCTIONS_COLUMNS,
}


class NoSweepError(ValueError):
    """A path that holds no sweep: no spec.yaml, trials/ or curves/, here or one level down."""


class UnreadablePartWarning(UserWarning):
    """A part file that could not be read (a truncated copy, say); it is skipped."""


@dataclass(frozen=True)
class Sweep:
    """One sweep folder: where it is, the spec that ran, and what could not be read."""

    name: str
    path: str  # the folder, or a pyarrow filesystem URI
    spec: Mapping[str, Any]  # spec.yaml as a mapping ({} when the folder has none)
    spec_text: str
    skipped: tuple[str, ...] = ()  # unreadable part files, left out
    written: str = ""  # the spec file as its author wrote it ("" for a sweep without one)
    # a grown sweep: the spec of each generation, oldest first, as written (else resolved)
    history: tuple[str, ...] = ()

    @property
    def task(self) -> str | None:
        task = self.spec.get("task")
        return str(task) if task is not None else None

    @property
    def difficulties(self) -> tuple[str, ...]:
        """Difficulty names in the spec's order, which is the order of the ladder: easiest
        first (a custom difficulty is a one-key mapping)."""
        names: list[str] = []
        for entry in self.spec.get("difficulties") or []:
            names.extend([entry] if isinstance(entry, str) else list(entry))
        return tuple(names)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.spec.get("models") or {})

    @property
    def searched(self) -> tuple[str, ...]:
        """The parameters of the spec's search space."""
        return tuple((self.spec.get("search") or {}).get("space") or {})

    @cached_property
    def journal(self) -> Path | None:
        """The sweep's Optuna journal as a local file, if it has one: in place for a local
        folder; for object storage (s3://...), the sweep's copy fetched into a temporary
        file (Optuna reads journals from local files only)."""
        if "://" not in self.path:
            path = Path(self.path, JOURNAL)
            return path if path.is_file() else None
        fs, root = filesystem(self.path)
        try:
            with fs.open_input_stream(f"{root}/{JOURNAL}") as f:
                data = f.read()
        except OSError:  # none there (FileNotFoundError), or unreadable: no studies
            return None
        copy = Path(tempfile.mkdtemp(prefix="sweep-journal-"), "journal.log")
        copy.write_bytes(data)
        return copy


@dataclass(frozen=True, eq=False)  # frames do not compare to one bool
class Results:
    """The trials, curves and reconstructions of one or more sweeps, one row per key
    (reconstructions: picture tasks only, else empty)."""

    trials: pd.DataFrame
    curves: pd.DataFrame
    sweeps: tuple[Sweep, ...] = field(default=())
    reconstructions: pd.DataFrame = field(default_factory=lambda: _frame([], "reconstructions"))

    @property
    def difficulties(self) -> tuple[str, ...]:
        """Every difficulty, in the order of the sweeps' specs; names found only in the
        rows (a folder without spec.yaml) follow in order of appearance."""
        specs = [d for s in self.sweeps for d in s.difficulties]
        rows = [*_seen(self.trials["difficulty"]), *_seen(self.curves["difficulty"])]
        return tuple(dict.fromkeys(specs + rows))

    @property
    def models(self) -> tuple[str, ...]:
        """Every model, in the order of the sweeps' specs, then order of appearance."""
        specs = [m for s in self.sweeps for m in s.models]
        return tuple(dict.fromkeys(specs + _seen(self.trials["model"])))

    def select(self, sweep: str) -> Results:
        """One sweep's rows (and folder)."""

        def rows(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[frame["sweep"] == sweep].reset_index(drop=True)

        return Results(
            rows(self.trials),
            rows(self.curves),
            tuple(s for s in self.sweeps if s.name == sweep),
            rows(self.reconstructions),
        )

    def studies(self) -> dict[tuple[str, str], optuna.Study]:
        """The Optuna study of every cell, keyed by (sweep, cell); local folders only. A
        journal that cannot be read is left out with a warning: the studies only add
        hyperparameter importance to what the tables say."""
        found = {}
        for sweep in self.sweeps:
            try:
                studies = load_studies(sweep)
            except (OSError, ValueError, KeyError) as e:
                warnings.warn(f"cannot read the Optuna journal {sweep.journal}: {e}", stacklevel=2)
                continue
            found.update({(sweep.name, name): study for name, study in studies.items()})
        return found


def _seen(column: pd.Series) -> list[str]:
    """Distinct values in order of first appearance."""
    return [str(v) for v in column.dropna().unique()]


def load(paths: str | Path | Sequence[str | Path]) -> Results:
    """Read one sweep folder, a folder of sweep folders, or several of either (a local path
    or a pyarrow filesystem URI such as s3://bucket/results/quick). A sweep that is still
    running or was interrupted loads too: trials that have not finished have curve rows
    and no trial row yet.

    Raises NoSweepError when a path holds no sweep, ValueError when two folders hold
    sweeps of the same name (their rows could not be told apart).
    """
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    folders = [folder for p in items for folder in _sweep_folders(str(p))]
    sweeps: list[Sweep] = []
    tables: dict[str, list[pa.Table]] = {t: [] for t in TABLES}
    for fs, root, display in folders:
        spec_text = _read_text(fs, f"{root}/{SPEC_FILE}")
        spec = _parse_spec(spec_text, display)
        skipped: list[str] = []
        for table in TABLES:
            parts, bad = _read_parts(fs, f"{root}/{table}")
            tables[table].extend(parts)
            skipped.extend(bad)
        name = str(spec.get("name") or root.rstrip("/").rsplit("/", 1)[-1])
        written = _read_text(fs, f"{root}/{SPEC_AS_WRITTEN}")
        history = _history(fs, root)
        sweeps.append(Sweep(name, display, spec, spec_text, tuple(skipped), written, history))
    seen: dict[str, str] = {}
    for sweep in sweeps:
        if sweep.name in seen:
            raise ValueError(
                f"two folders hold a sweep named {sweep.name!r}: {seen[sweep.name]} and "
                f"{sweep.path}; load them separately"
            )
        seen[sweep.name] = sweep.path
    trials, curves, reconstructions = (_frame(tables[t], t) for t in TABLES)
    return Results(trials, curves, tuple(sweeps), reconstructions)


def _history(fs: pafs.FileSystem, root: str) -> tuple[str, ...]:
    """The specs of a grown sweep's generations (history/<n>/), as written where kept."""
    specs: list[str] = []
    while True:
        folder = f"{root}/{HISTORY}/{len(specs)}"
        text = _read_text(fs, f"{folder}/{SPEC_AS_WRITTEN}") or _read_text(
            fs, f"{folder}/{SPEC_FILE}"
        )
        if not text:
            return tuple(specs)
        specs.append(text)


def load_studies(sweep: Sweep) -> dict[str, optuna.Study]:
    """The sweep's Optuna studies, one per cell, named "<difficulty>/<model>". Read only:
    the journal is opened where it is and never written."""
    if sweep.journal is None:
        return {}
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(sweep.journal)))
    return {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    }


# -- reading --------------------------------------------------------------------------------
def _is_sweep(fs: pafs.FileSystem, root: str) -> bool:
    infos = fs.get_file_info([f"{root}/{n}" for n in (SPEC_FILE, *TABLES)])
    return any(i.type != pafs.FileType.NotFound for i in infos)


def _sweep_folders(path: str) -> list[tuple[pafs.FileSystem, str, str]]:
    """(filesystem, root, path as shown) of the sweep at `path`, or of each sweep one level
    below it, in name order."""
    fs, root = filesystem(path)
    if _is_sweep(fs, root):
        return [(fs, root, path)]
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        raise NoSweepError(f"{path}: no such folder")
    children = sorted(
        info.path
        for info in fs.get_file_info(pafs.FileSelector(root))
        if info.type == pafs.FileType.Directory and not info.base_name.startswith(".")
    )
    found = [
        (fs, child, f"{path.rstrip('/')}/{child.rsplit('/', 1)[-1]}")
        for child in children
        if _is_sweep(fs, child)
    ]
    if not found:
        raise NoSweepError(f"{path}: no sweep here (no {SPEC_FILE}, trials/ or curves/)")
    return found


def _read_text(fs: pafs.FileSystem, path: str) -> str:
    try:
        with fs.open_input_stream(path) as f:
            return bytes(f.read()).decode()
    except OSError:
        return ""


def _parse_spec(text: str, where: str) -> Mapping[str, Any]:
    """The spec as a mapping; a spec that does not parse only costs the ladder's order."""
    try:
        spec = yaml.safe_load(text) if text else {}
    except yaml.YAMLError as e:
        warnings.warn(f"{where}/{SPEC_FILE} is not valid YAML: {e}", stacklevel=4)
        return {}
    return spec if isinstance(spec, Mapping) else {}


def _read_parts(fs: pafs.FileSystem, folder: str) -> tuple[list[pa.Table], list[str]]:
    """Every readable part file of a table folder in name order (each in today's columns,
    whatever schema wrote it: `sweep.upgrade`), and the unreadable ones. Hidden temporary
    files (a write in progress) are not part files."""
    parts = part_files(fs, folder)
    tables, skipped = [], []
    name = folder.rsplit("/", 1)[-1]
    keys = KEYS[name]
    for part in parts:
        try:
            table = read_part(fs, part, name)  # an older schema's in today's columns
        except (OSError, pa.ArrowException) as e:
            warnings.warn(
                f"skipping unreadable part file {part}: {e}", UnreadablePartWarning, stacklevel=4
            )
            skipped.append(part)
            continue
        missing = [k for k in keys if k not in table.column_names]
        if missing:
            warnings.warn(
                f"skipping part file {part}: no {', '.join(missing)} column",
                UnreadablePartWarning,
                stacklevel=4,
            )
            skipped.append(part)
            continue
        tables.append(table)
    return tables, skipped


def _frame(parts: Iterable[pa.Table], table: str) -> pd.DataFrame:
    parts = list(parts)
    if parts:
        data = pa.concat_tables(parts, promote_options="permissive")
        frame = last_per_key(data, KEYS[table]).to_pandas(types_mapper=arrow_to_pandas)
    else:
        frame = pd.DataFrame()
    for column, dtype in COLUMNS[table].items():
        if column not in frame.columns:
            frame[column] = pd.Series(index=frame.index, dtype=dtype)
    return frame
