"""The results store: Parquet tables per sweep, written only by the driver.

    <sweep>/trials/part-*.parquet            one row per trial (identity, config, outcome,
                                             provenance)
    <sweep>/curves/part-*.parquet            one row per report (trial_id, step, metrics)
    <sweep>/reconstructions/part-*.parquet   picture tasks only: one row per recorded
                                             episode of a finished trial (target, output,
                                             erased part), for the reconstruction figure

Rows are buffered and flushed to a new part file: written under a hidden temporary name,
then renamed, so readers never see half a file and concurrent writers never overwrite each
other. A trial's rows are flushed when it ends and whenever it reports a checkpoint, so a
restarted trial (it resumes from its checkpoint) never leaves a gap in its curve; re-reported
steps are dropped by readers, which keep the last row per key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import time
import types
import typing
import uuid
import warnings
from collections.abc import Iterable
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

from sweep.models import FAMILIES
from sweep.plan import Cell, cells_by_id
from sweep.spec import SweepSpec
from sweep.tasks import TASKS
from sweep.train import TrainConfig
from sweep.trainable import TrialSettings

SCHEMA_VERSION = 1
WRITE_ATTEMPTS = 3
TABLES = ("trials", "curves", "reconstructions")
KEYS = {
    "trials": ["sweep", "trial_id"],
    "curves": ["sweep", "trial_id", "step"],
    "reconstructions": ["sweep", "trial_id", "sample"],
}
_ARROW = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}


def _arrow_type(annotation: Any) -> pa.DataType:
    """int | None, Annotated[float, ...], Literal["a", "b"] ... -> an Arrow type."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _arrow_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _arrow_type(inner)
    if origin is typing.Literal:
        return _ARROW[type(typing.get_args(annotation)[0])]
    return _ARROW[annotation]


def _config_columns(prefix: str, classes: Iterable[Any], skip: tuple[str, ...] = ()) -> dict:
    columns: dict[str, pa.DataType] = {}
    for cls in classes:
        for name, info in cls.__pydantic_fields__.items():
            if name not in skip:
                columns.setdefault(f"{prefix}.{name}", _arrow_type(info.annotation))
    return columns


_IDENTITY = {
    "sweep": pa.string(),
    "trial_id": pa.string(),
    "phase": pa.string(),
    "task": pa.string(),
    "difficulty": pa.string(),
    "model": pa.string(),
    "family": pa.string(),
    "cell": pa.string(),
    "seed": pa.int64(),
    "optuna_trial": pa.int64(),
}
_TIME = pa.timestamp("us", tz="UTC")
_PROVENANCE = {
    "git_commit": pa.string(),
    "schema_version": pa.int32(),
    "started_at": _TIME,
    "finished_at": _TIME,
    "node": pa.string(),
    "device": pa.string(),
    "gpu_ids": pa.string(),
}
_OUTCOME = {
    "metric": pa.string(),  # what `*_error` measure: bit_error, erased_mse, ...
    "chance": pa.float64(),  # the metric of a network that learned nothing
    "solved_threshold": pa.float64(),  # the task counts as solved at or under this
    "status": pa.string(),  # completed | stopped_early | failed | diverged
    "error": pa.string(),  # what went wrong, for failed trials
    "final_error": pa.float64(),
    "best_error": pa.float64(),
    "episodes_to_solve": pa.int64(),
    "episodes": pa.int64(),
    "num_parameters": pa.int64(),
    "train_seconds": pa.float64(),
    "episodes_per_second": pa.float64(),
}
_CONFIG = {
    **_config_columns("hp", (TrainConfig,), skip=("seed", "device")),
    **_config_columns("hp", (f.config for f in FAMILIES.values())),
    **_config_columns("task", (cls.settings_class for cls, _ in TASKS.values())),
}
TRIALS_SCHEMA = pa.schema(
    {**_IDENTITY, **_CONFIG, **_PROVENANCE, **_OUTCOME}.items(),
    metadata={"schema_version": str(SCHEMA_VERSION)},
)
# The identity columns that start a curves or reconstructions row.
_ROW_IDENTITY = {
    **{k: _IDENTITY[k] for k in ("sweep", "trial_id", "phase", "difficulty", "model", "cell")},
    "seed": pa.int64(),
}
CURVES_SCHEMA = pa.schema(
    {
        **_ROW_IDENTITY,
        "step": pa.int64(),
        "episodes": pa.int64(),
        "wall_s": pa.float64(),
        "loss": pa.float64(),
        "error": pa.float64(),
        "episodes_per_second": pa.float64(),
        "node": pa.string(),
        "schema_version": pa.int32(),
    }.items(),
    metadata={"schema_version": str(SCHEMA_VERSION)},
)
RECONSTRUCTIONS_SCHEMA = pa.schema(
    {
        **_ROW_IDENTITY,
        "sample": pa.int64(),  # which of the fixed evaluation episodes (the same per level)
        "rows": pa.int64(),  # the picture's shape: target and output are rows * cols, row-major
        "cols": pa.int64(),
        "target": pa.list_(pa.float32()),  # the whole image
        "output": pa.list_(pa.float32()),  # the network's output at the last step
        "erased": pa.list_(pa.bool_()),  # True on the part the cue hid (what the metric scores)
        "schema_version": pa.int32(),
    }.items(),
    metadata={"schema_version": str(SCHEMA_VERSION)},
)
SCHEMAS = {
    "trials": TRIALS_SCHEMA,
    "curves": CURVES_SCHEMA,
    "reconstructions": RECONSTRUCTIONS_SCHEMA,
}


def git_commit() -> str:
    """The commit of the code that runs, '+dirty' when it has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", "-C", str(here), *a], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        return commit + ("+dirty" if run("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def filesystem(path: str | Path) -> tuple[pafs.FileSystem, str]:
    """A local folder or a pyarrow filesystem URI (s3://, gs://, file://...)."""
    text = str(path)
    if "://" in text:
        return pafs.FileSystem.from_uri(text)
    return pafs.LocalFileSystem(), str(Path(text).resolve())


def write_part(
    sweep_dir: str | Path,
    table: str,
    rows: list[dict[str, Any]],
    fs: pafs.FileSystem | None = None,
) -> str:
    """Write rows as a new part file of `table` (on `fs` when given, else the one the path
    names)."""
    return _write(sweep_dir, table, pa.Table.from_pylist(rows, schema=SCHEMAS[table]), fs)


def _write(
    sweep_dir: str | Path, table: str, data: pa.Table, fs: pafs.FileSystem | None = None
) -> str:
    """A new part file, written atomically: under a hidden temporary name, then renamed.
    A failed attempt is retried (storage hiccups are common on network filesystems) and its
    temporary file removed, so readers never see a partial part."""
    default_fs, root = filesystem(sweep_dir)
    fs = fs or default_fs
    folder = f"{root}/{table}"
    name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
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
    selector = pafs.FileSelector(f"{root}/{table}", allow_not_found=True)
    parts = sorted(
        info.path
        for info in fs.get_file_info(selector)
        if info.base_name.startswith("part-") and info.base_name.endswith(".parquet")
    )
    tables, read = [], []
    for part in parts:
        try:
            tables.append(pq.read_table(part, filesystem=fs, schema=SCHEMAS[table]))
            read.append(part)
        except (OSError, pa.ArrowException) as e:
            warnings.warn(f"skipping unreadable part file {part}: {e}", stacklevel=3)
    if not tables:
        return SCHEMAS[table].empty_table(), read
    data = pa.concat_tables(tables)
    keys = data.select(KEYS[table]).to_pandas()
    return data.filter(pa.array(~keys.duplicated(keep="last").to_numpy())), read


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
    """Driver-side Ray Tune callback that turns reports into the two tables."""

    def __init__(self, spec: SweepSpec, sweep_dir: str):
        self.spec = spec
        self.sweep_dir = sweep_dir
        self._buffer: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
        self._commit: str | None = None
        self._cells: dict[str, Cell] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks with the experiment; a restored run starts empty and
        # records the commit of the code that resumes it.
        return {**self.__dict__, "_buffer": {t: [] for t in TABLES}, "_commit": None}

    @property
    def commit(self) -> str:
        if self._commit is None:
            self._commit = git_commit()
        return self._commit

    # -- Tune hooks --------------------------------------------------------------------
    def on_trial_result(
        self, iteration: int, trials: list[TuneTrial], trial: TuneTrial, result: dict, **info: Any
    ) -> None:
        # Taken out of the result before Tune keeps it as the trial's last result (which
        # goes into Tune's experiment state): pictures belong in their own table.
        pictures = result.pop("reconstructions", None)
        if pictures is not None:
            self._buffer["reconstructions"].extend(self._reconstruction_rows(trial, pictures))
        if "step" not in result:
            return
        self._buffer["curves"].append(self._curve_row(trial, result))
        if result.get("checkpointed"):
            self.flush()

    def on_trial_complete(
        self, iteration: int, trials: list[TuneTrial], trial: TuneTrial, **info: Any
    ) -> None:
        self._buffer["trials"].append(self._trial_row(trial, failed=False))
        self.flush()

    def on_trial_error(
        self, iteration: int, trials: list[TuneTrial], trial: TuneTrial, **info: Any
    ) -> None:
        self._buffer["trials"].append(self._trial_row(trial, failed=True))
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

    @property
    def cells(self) -> dict[str, Cell]:
        if self._cells is None:
            self._cells = cells_by_id(self.spec)
        return self._cells

    def _settings(self, trial: TuneTrial) -> TrialSettings:
        return TrialSettings.from_config(self.spec, self.cells, trial.config)

    def _identity(self, settings: TrialSettings, trial: TuneTrial) -> dict[str, Any]:
        cell = settings.cell
        return {
            "sweep": self.spec.name,
            "trial_id": trial.trial_id,
            "phase": settings.phase,
            "task": self.spec.task,
            "difficulty": cell.difficulty,
            "model": cell.model,
            "family": cell.family,
            "cell": cell.id,
            "seed": settings.seed,
            "optuna_trial": settings.number,
        }

    def _row_identity(self, trial: TuneTrial) -> dict[str, Any]:
        # Once per report: read the identity off the config, without building the task.
        cell = self.cells[trial.config["cell"]]
        return {
            "sweep": self.spec.name,
            "trial_id": trial.trial_id,
            "phase": trial.config["phase"],
            "difficulty": cell.difficulty,
            "model": cell.model,
            "cell": cell.id,
        }

    def _reconstruction_rows(
        self, trial: TuneTrial, pictures: dict[str, Any]
    ) -> list[dict[str, Any]]:
        identity = {**self._row_identity(trial), "seed": trial.config["seed"]}
        rows, cols = pictures["shape"]
        return [
            {
                **identity,
                "sample": i,
                "rows": rows,
                "cols": cols,
                "target": target,
                "output": output,
                "erased": erased,
                "schema_version": SCHEMA_VERSION,
            }
            for i, (target, output, erased) in enumerate(
                zip(pictures["target"], pictures["output"], pictures["erased"], strict=True)
            )
        ]

    def _curve_row(self, trial: TuneTrial, result: dict[str, Any]) -> dict[str, Any]:
        row = self._row_identity(trial)
        row.update({k: result.get(k) for k in ("step", "episodes", "wall_s", "loss", "error")})
        row.update(
            seed=trial.config["seed"],
            episodes_per_second=result.get("episodes_per_second"),
            node=result.get("node"),
            schema_version=SCHEMA_VERSION,
        )
        return row

    def _trial_row(self, trial: TuneTrial, failed: bool) -> dict[str, Any]:
        settings = self._settings(trial)
        last = trial.last_result or {}
        row: dict[str, Any] = self._identity(settings, trial)
        train = settings.train
        hp = {f.name: getattr(train, f.name) for f in dataclasses.fields(train)}
        model_config = FAMILIES[settings.cell.family].config
        hp.update(model_config(**settings.model_params).__dict__)
        row.update({f"hp.{k}": v for k, v in hp.items() if f"hp.{k}" in TRIALS_SCHEMA.names})
        row.update({f"task.{k}": v for k, v in settings.task.settings().items()})
        if failed:
            status = "failed"
        elif last.get("diverged"):
            status = "diverged"
        elif last.get("episodes", 0) >= settings.train.episodes:
            status = "completed"
        else:  # Ray Tune marks every trial's last result "done"; ours ran out of budget or not
            status = "stopped_early"
        task = settings.task
        row.update(
            metric=task.metric,
            chance=task.chance,
            solved_threshold=task.solved_threshold,
            git_commit=self.commit,
            schema_version=SCHEMA_VERSION,
            started_at=_time(last.get("started_at")),
            finished_at=datetime.now(UTC),
            node=last.get("node"),
            device=last.get("device"),
            gpu_ids=last.get("gpu_ids"),
            status=status,
            error=_error_text(trial) if failed else None,
            final_error=last.get("error"),
            best_error=last.get("best_error"),
            episodes_to_solve=last.get("episodes_to_solve"),
            episodes=last.get("episodes"),
            num_parameters=last.get("num_parameters"),
            train_seconds=last.get("wall_s"),
            episodes_per_second=_mean_rate(last),
        )
        return row


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _mean_rate(last: dict[str, Any]) -> float | None:
    episodes, seconds = last.get("episodes"), last.get("wall_s")
    return episodes / seconds if episodes and seconds else None


def _error_text(trial: TuneTrial) -> str:
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "the trial failed"
