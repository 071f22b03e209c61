"""The rows of the results tables, as records: each column is one field (`column()` gives
its meaning, and its Arrow type where the annotation does not), so a new column is one field
here (or in the record it comes from: `TaskDescriptor`, `Placement`). `sweep.columns` turns
them into the tables' Arrow schemas (`sweep.store`) and the README's column table; the
writer (`sweep.results`) builds each row as one of these records.

A field whose type is a record contributes that record's columns in its place.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sweep.records import Placement, Report, TaskDescriptor, column

SCHEMA_VERSION = 3  # 2: `goal`, `references`, package versions, platform; 3: metric-neutral
# value columns (`final_value`, `best_value`, curves' `value`), learner settings only in the
# rows of their learner's tasks (`sweep.upgrade` reads every older version)


@dataclass(frozen=True)
class Identity:
    """Which trial a row belongs to: the key of every table starts here."""

    sweep: str = column("the sweep's name")
    trial_id: str = column("Ray Tune's trial id; a population's member: `<population>-<member>`")
    phase: str = column("`search` or `confirm`")
    difficulty: str = column("the difficulty's name in the spec")
    model: str = column("the model's name in the spec")
    cell: str = column("`<difficulty>/<model>`, the name of the cell's Optuna study")
    seed: int = column("seeds model init, training and evaluation episodes")
    population: str | None = column(
        "the Ray Tune trial that trained this trial as a member of a population "
        "(`resources.members` > 1); null: it trained alone"
    )
    member: int | None = column(
        "the member's place in its population, from 0 (stable across resumes); null: alone"
    )


@dataclass(frozen=True)
class TrialIdentity(Identity):
    task: str = column("the task's registered name")
    family: str = column("the model family")
    optuna_trial: int = column("Optuna trial number (confirm: the configuration confirmed)")


@dataclass(frozen=True)
class Versions:
    """The software that ran (the driver's environment; a Ray cluster runs one environment),
    as `version.<package>` columns."""

    python: str = column("Python's version")
    torch: str = column("torch's version")
    ray: str = column("Ray's version")
    optuna: str = column("Optuna's version")
    numpy: str = column("NumPy's version")
    pyarrow: str = column("pyarrow's version")


@dataclass(frozen=True, kw_only=True)
class Provenance(Placement):
    """Which code ran, where and when: one record, written with every trials row."""

    git_commit: str = column("the commit of the code that ran, `+dirty` when it had changes")
    schema_version: int = column("the results schema the row was written with", arrow="int32")
    finished_at: datetime = column("when the driver recorded the trial's end")
    versions: Versions = column("package versions", prefix="version.")
    platform: str = column("operating system and machine, as `platform.platform()`")


@dataclass(frozen=True)
class Outcome:
    """How a trial ended, in the task's metric (named by its `TaskDescriptor`)."""

    status: str = column("`completed`, `stopped_early`, `failed` or `diverged`")
    error: str | None = column("what went wrong, for failed trials", default=None)
    final_value: float | None = column("the metric at the last evaluation", default=None)
    best_value: float | None = column(
        "the best evaluation (lowest, or highest for a `max` goal)", default=None
    )
    episodes_to_solve: int | None = column(
        "episodes at the first evaluation that reached the threshold; null: never", default=None
    )
    episodes: int | None = column("training episodes run", default=None)
    num_parameters: int | None = column("the model's trainable parameters", default=None)
    train_seconds: float | None = column(
        "seconds of training and evaluation, across restores", default=None
    )
    episodes_per_second: float | None = column(
        "the whole trial's (all ranks together)", default=None
    )

    @classmethod
    def of(cls, status: str, error: str | None, last: Report | None) -> Outcome:
        """From the trial's last report (None: it reported nothing): the fields named like
        the report's take its values; `final_value` is its last evaluation (a trial stopped
        early has one too), `train_seconds` its `wall_s`."""
        if last is None:
            return cls(status, error)
        speed = last.episodes / last.wall_s if last.episodes and last.wall_s else None
        derived: dict[str, Any] = {
            "final_value": last.value,
            "train_seconds": last.wall_s,
            "episodes_per_second": speed,
        }
        same = {
            f.name: getattr(last, f.name)
            for f in fields(cls)
            if f.name not in (*derived, "status", "error") and hasattr(last, f.name)
        }
        return cls(status, error, **same, **derived)


@dataclass(frozen=True)
class TrialRow:
    """One row of the trials table."""

    identity: TrialIdentity = column("")
    hp: dict[str, Any] = column(
        "every training setting, the task's learner's settings (A2C's: reward tasks only) and "
        "every model hyperparameter in effect",
        prefix="hp.",
    )
    task_settings: dict[str, Any] = column(
        "the level's protocol parameters (the task's settings class)", prefix="task."
    )
    provenance: Provenance = column("")
    task: TaskDescriptor = column("")
    outcome: Outcome = column("")


@dataclass(frozen=True)
class CurveRow:
    """One row of the curves table: one evaluation report of a trial."""

    identity: Identity = column("")
    step: int = column("the trial's n-th evaluation report, from 1")
    episodes: int = column("training episodes done at that report")
    wall_s: float = column("seconds of training and evaluation so far")
    loss: float = column("mean training loss since the previous report")
    value: float = column("the task's metric on fresh evaluation episodes")
    episodes_per_second: float = column("the whole run's so far")
    node: str | None = column("Ray node id of rank 0")
    schema_version: int = column("the results schema the row was written with", arrow="int32")

    @classmethod
    def of(cls, identity: Identity, result: Report) -> CurveRow:
        """The values of a trial's result (a `TrialResult`) in the fields named like its own."""
        names = [f.name for f in fields(cls) if f.name not in ("identity", "schema_version")]
        values = {n: getattr(result, n) for n in names}
        return cls(identity, **values, schema_version=SCHEMA_VERSION)


@dataclass(frozen=True)
class ReconstructionRow:
    """One row of the reconstructions table (picture tasks): one recorded episode of a
    finished trial, for the reconstruction figure."""

    identity: Identity = column("")
    sample: int = column("which of the fixed evaluation episodes (the same per level)")
    rows: int = column("the picture's shape: target and output are rows * cols, row-major")
    cols: int = column("the picture's width")
    target: list[float] = column("the whole image", arrow="float32[]")
    output: list[float] = column("the network's output at the last step", arrow="float32[]")
    erased: list[bool] = column(
        "True on the part the cue hid (what the metric scores)", arrow="bool[]"
    )
    schema_version: int = column("the results schema the row was written with", arrow="int32")


ROWS = {"trials": TrialRow, "curves": CurveRow, "reconstructions": ReconstructionRow}
