"""Writing the results store (its tables are defined in `sweep.store`), on the driver only.

Rows are buffered and flushed to a new part file: written under a hidden temporary name,
then renamed, so readers never see half a file and concurrent writers never overwrite each
other. A trial's rows are flushed when it ends and whenever it reports a checkpoint, so a
restarted trial (it resumes from its checkpoint) never leaves a gap in its curve; re-reported
steps are dropped by readers, which keep the last row per key.
"""

from __future__ import annotations

import contextlib
import time
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from ray.tune import Callback
from ray.tune.experiment import Trial as TuneTrial

from sweep.columns import arrow_type
from sweep.columns import values as row_values
from sweep.learners import LEARNERS
from sweep.models import FAMILIES
from sweep.provenance import git_commit, platform_name, versions
from sweep.records import (
    MEMBERS,
    Placement,
    Reconstructions,
    TrialConfig,
    TrialResult,
    member_id,
    member_results,
    outcome,
    trial_configs,
)
from sweep.rows import (
    SCHEMA_VERSION,
    CurveRow,
    Identity,
    Outcome,
    Provenance,
    ReconstructionRow,
    TrialIdentity,
    TrialRow,
    Versions,
)
from sweep.spec import SweepSpec
from sweep.store import (
    CURVES_SCHEMA,
    KEYS,
    RECONSTRUCTIONS_SCHEMA,
    TABLES,
    filesystem,
    last_per_key,
    part_files,
    part_name,
    read_part,
    trials_schema,
)
from sweep.tasks import TASKS
from sweep.train import TrainConfig

WRITE_ATTEMPTS = 3


def _config_columns(prefix: str, classes: Iterable[Any], skip: tuple[str, ...] = ()) -> dict:
    columns: dict[str, pa.DataType] = {}
    for cls in classes:
        for name, info in cls.__pydantic_fields__.items():
            if name not in skip:
                columns.setdefault(f"{prefix}.{name}", arrow_type(info.annotation))
    return columns


def config_columns() -> dict[str, pa.DataType]:
    """The trials table's config columns: every training setting, every learner's settings,
    every hyperparameter of every registered model family, every protocol parameter of every
    task."""
    return {
        **_config_columns("hp", (TrainConfig,), skip=("seed", "device")),
        **_config_columns("hp", (cls.settings_class for cls in LEARNERS.values())),
        **_config_columns("hp", (f.config for f in FAMILIES.values())),
        **_config_columns("task", (cls.settings_class for cls, _ in TASKS.values())),
    }


TRIALS_SCHEMA = trials_schema(config_columns())  # with the built-in families and tasks
SCHEMAS = {
    "trials": TRIALS_SCHEMA,
    "curves": CURVES_SCHEMA,
    "reconstructions": RECONSTRUCTIONS_SCHEMA,
}


def schema(table: str) -> pa.Schema:
    """A table's schema now: the trials table gains the columns of families a plugin
    registered after this module was imported."""
    return trials_schema(config_columns()) if table == "trials" else SCHEMAS[table]


def write_part(
    sweep_dir: str | Path,
    table: str,
    rows: list[dict[str, Any]],
    fs: pafs.FileSystem | None = None,
) -> str:
    """Write rows as a new part file of `table` (on `fs` when given, else the one the path
    names)."""
    return _write(sweep_dir, table, pa.Table.from_pylist(rows, schema=schema(table)), fs)


def _write(
    sweep_dir: str | Path, table: str, data: pa.Table, fs: pafs.FileSystem | None = None
) -> str:
    """A new part file, written atomically: under a hidden temporary name, then renamed.
    A failed attempt is retried (storage hiccups are common on network filesystems) and its
    temporary file removed, so readers never see a partial part."""
    default_fs, root = filesystem(sweep_dir)
    fs = fs or default_fs
    folder = f"{root}/{table}"
    name = part_name(time.time_ns(), uuid.uuid4().hex[:8])
    tmp = f"{folder}/.{name}.tmp"
    attempt = 1
    while True:
        try:
            fs.create_dir(folder, recursive=True)
            with fs.open_output_stream(tmp) as out:
                pq.write_table(data, out)
            fs.move(tmp, f"{folder}/{name}")
            return f"{folder}/{name}"
        except OSError:
            with contextlib.suppress(OSError):
                fs.delete_file(tmp)
            if attempt == WRITE_ATTEMPTS:
                raise
            time.sleep(0.2 * 2**attempt)
            attempt += 1


def _read(sweep_dir: str | Path, table: str) -> tuple[pa.Table, list[str]]:
    """The table's rows, last row per key, and the part files they came from. A part file
    that cannot be read (a truncated copy, say) is skipped with a warning naming it."""
    fs, root = filesystem(sweep_dir)
    parts = part_files(fs, f"{root}/{table}")
    tables, read = [], []
    for part in parts:
        try:
            tables.append(read_part(fs, part, table, schema(table)))
            read.append(part)
        except (OSError, pa.ArrowException) as e:
            warnings.warn(f"skipping unreadable part file {part}: {e}", stacklevel=3)
    if not tables:
        return schema(table).empty_table(), read
    return last_per_key(pa.concat_tables(tables), KEYS[table]), read


def read_table(sweep_dir: str | Path, table: str) -> pd.DataFrame:
    """All part files of a table as one frame, last row per key (resumed or retried trials
    may have reported a step twice)."""
    return _read(sweep_dir, table)[0].to_pandas()


def compact(sweep_dir: str | Path) -> None:
    """Rewrite each table of a finished sweep as one de-duplicated part file, so that plain
    `pandas.read_parquet` shows each key once.

    Curve and reconstruction rows of trials that have no trial row are dropped: in a
    finished sweep those are runs lost from Ray's saved state by a driver crash, whose
    configuration (and seed) the searcher handed out again under a new trial id. The new
    part is in place before the old ones go (a reader in between sees duplicates, never a
    gap); a part that could not be read is left where it is.
    """
    fs, _ = filesystem(sweep_dir)
    finished = _read(sweep_dir, "trials")[0].column("trial_id")
    for table in TABLES:
        data, read = _read(sweep_dir, table)
        if table != "trials":
            kept = data.filter(pc.is_in(data.column("trial_id"), value_set=finished))
            if len(read) < 2 and len(kept) == len(data):
                continue
            data = kept
        elif len(read) < 2:
            continue
        _write(sweep_dir, table, data)
        for path in read:
            fs.delete_file(path)


class ResultsWriter(Callback):
    """Driver-side Ray Tune callback that turns reports into the tables. It reads each trial's
    `TrialConfig` and `TrialResult`, never rebuilding a task or a model."""

    def __init__(self, spec: SweepSpec, sweep_dir: str):
        self.sweep = spec.name
        self.sweep_dir = sweep_dir
        self._buffer: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
        self._ended: set[str] = set()  # members whose trials row is written
        self._commit: str | None = None
        self._versions: Versions | None = None
        self._columns = set(schema("trials").names)  # after the spec's plugins registered

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks with the experiment; a restored run starts empty and
        # records the commit of the code that resumes it.
        empty: dict[str, Any] = {
            "_buffer": {t: [] for t in TABLES},
            "_ended": set(),
            "_commit": None,
            "_versions": None,
        }
        return {**self.__dict__, **empty}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_ended": set(), **state})  # (pickled before populations)

    @property
    def commit(self) -> str:
        if self._commit is None:
            self._commit = git_commit()
        return self._commit

    @property
    def versions(self) -> Versions:
        if self._versions is None:
            self._versions = versions()
        return self._versions

    # -- Tune hooks --------------------------------------------------------------------
    def on_trial_result(
        self, iteration: int, trials: list[TuneTrial], trial: TuneTrial, result: dict, **info: Any
    ) -> None:
        """A curve row per report (a population's: one per member); a member that ended
        gets its trials row now, while its population runs on."""
        configs = trial_configs(trial.config)
        # Taken out of the result before Tune keeps it as the trial's last result (which
        # goes into Tune's experiment state): pictures belong in their own table.
        raw = result.get(MEMBERS, {None: result})
        for k, config in configs.items():
            pictures = TrialResult.take_reconstructions(raw.get(k if k is None else str(k)) or {})
            if pictures is not None:
                identity = self._row_identity(trial.trial_id, k, config)
                self._buffer["reconstructions"].extend(
                    self._reconstruction_rows(identity, pictures)
                )
        flush = False
        for k, report in member_results(result).items():
            identity = self._row_identity(trial.trial_id, k, configs[k])
            self._buffer["curves"].append(row_values(CurveRow.of(identity, report)))
            flush |= report.checkpointed
            if k is not None and report.done:
                self._member_rows(trial, {k: report}, failed=False)
                flush = True
        if flush:
            self.flush()

    def on_trial_complete(
        self, iteration: int, trials: list[TuneTrial], trial: TuneTrial, **info: Any
    ) -> None:
        self._member_rows(trial, member_results(trial.last_result), failed=False)
        self.flush()

    def on_trial_error(
        self, iteration: int, trials: list[TuneTrial], trial: TuneTrial, **info: Any
    ) -> None:
        self._member_rows(trial, member_results(trial.last_result), failed=True)
        self.flush()

    def on_experiment_end(self, trials: list[TuneTrial], **info: Any) -> None:
        self.flush()

    # -- rows --------------------------------------------------------------------------
    def flush(self) -> None:
        for table in TABLES:
            rows = self._buffer[table]
            if rows:
                write_part(self.sweep_dir, table, rows)
                rows.clear()

    def _member_rows(
        self, trial: TuneTrial, reports: dict[int | None, TrialResult], failed: bool
    ) -> None:
        """The trials row of a lone trial that ended; or those of the members that ended
        with these `reports` (all that had not ended, when their population failed). A
        member's row is written once, when it ends: one that ended before its population
        did is not written again, even after a driver restart (the table says so then)."""
        configs = trial_configs(trial.config)
        if None in configs:
            self._buffer["trials"].append(self._trial_row(trial, failed))
            return
        before = set(read_table(self.sweep_dir, "trials")["trial_id"]) if failed else set()
        for k in configs:
            at = member_id(trial.trial_id, k)  # type: ignore[arg-type]  # (k: a member)
            if at in self._ended or at in before or (k not in reports and not failed):
                continue
            row = self._trial_row(trial, failed, k, reports.get(k))
            self._buffer["trials"].append(row)
            self._ended.add(at)

    def _row_identity(self, trial_id: str, member: int | None, config: TrialConfig) -> Identity:
        """The identity of a lone trial (`member` None), or of member `member` of the
        population `trial_id`."""
        return Identity(
            self.sweep,
            trial_id if member is None else member_id(trial_id, member),
            config.phase,
            config.difficulty,
            config.model,
            config.cell,
            config.seed,
            None if member is None else trial_id,
            member,
        )

    def _reconstruction_rows(
        self, identity: Identity, pictures: Reconstructions
    ) -> list[dict[str, Any]]:
        rows, cols = pictures.shape
        return [
            row_values(ReconstructionRow(identity, i, rows, cols, *picture, SCHEMA_VERSION))
            for i, picture in enumerate(
                zip(pictures.target, pictures.output, pictures.erased, strict=True)
            )
        ]

    def _trial_row(
        self,
        trial: TuneTrial,
        failed: bool,
        member: int | None = None,
        report: TrialResult | None = None,
    ) -> dict[str, Any]:
        """A lone trial's row (its last result: Tune's), or member `member`'s of a
        population, whose last report was `report`."""
        config = trial_configs(trial.config)[member]
        last = TrialResult.from_dict(trial.last_result) if member is None else report
        identity = self._row_identity(trial.trial_id, member, config)
        settings = {**config.train, **config.learner_settings, **config.model_params}
        provenance = Provenance(
            **(_placement(last) if last is not None else {}),
            git_commit=self.commit,
            schema_version=SCHEMA_VERSION,
            finished_at=datetime.now(UTC),
            versions=self.versions,
            platform=platform_name(),
        )
        row = TrialRow(
            TrialIdentity(
                **asdict(identity),
                task=config.task,
                family=config.family,
                optuna_trial=config.number,
            ),
            {k: v for k, v in settings.items() if f"hp.{k}" in self._columns},
            config.task_settings,
            provenance,
            config.descriptor,
            Outcome.of(
                outcome(last, config.episodes, failed),
                _error_text(trial) if failed else None,
                last,
            ),
        )
        return row_values(row)


def _placement(result: TrialResult) -> dict[str, Any]:
    return {f.name: getattr(result, f.name) for f in fields(Placement)}


def _error_text(trial: TuneTrial) -> str:
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "the trial failed"
