"""The two records that cross the Ray boundary: what a trial runs with (`TrialConfig`, Ray's
trial config) and what it reports at each evaluation (`TrialResult`, Ray's result dict).

Ray Tune carries both as plain dicts; `to_dict` and `from_dict` are the only places that
touch their keys. Everything on the driver (results writer, searcher, scheduler, live view)
reads these types.

The records that become results columns (`TaskDescriptor`, `Placement`, and the rows of
`sweep.rows`) declare each column once, as a field: `column()` gives its meaning (and, where
the annotation does not say it, its Arrow type), from which `sweep.columns` derives the
tables' schemas and the README's column table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

R = TypeVar("R")


def column(
    doc: str, *, arrow: str | None = None, prefix: str | None = None, default: Any = ...
) -> Any:
    """A field that is a results column: `doc` its meaning (the README's column table).
    `arrow` where the annotation does not give the Arrow type: "int32", "json" (a mapping
    stored as JSON text), "timestamp" (ISO text or a datetime, stored as UTC time),
    "float32[]", "bool[]". `prefix`: a mapping field whose keys become `<prefix><key>`
    columns (which keys: the registries', `sweep.results.config_columns`)."""
    metadata = {"doc": doc, "arrow": arrow, "prefix": prefix}
    if default is ...:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


def _from_dict(cls: type[R], data: dict[str, Any]) -> R:
    """The dataclass's fields from a dict that may hold more (Ray adds its own keys)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class TaskDescriptor:
    """What a task's metric values mean: the same for every trial of a difficulty, resolved
    once on the driver (`sweep.plan`), carried by every trial's config and written in its
    row."""

    metric: str = column("what the value columns measure: bit_error, erased_mse, reward")
    goal: str = column("`min`: lower is better (errors); `max`: higher is better (rewards)")
    chance: float = column("the metric of a network that learned nothing")
    solved_threshold: float = column("solved when the metric reaches this (per `goal`)")
    references: dict[str, float] = column(
        "JSON {name: metric value}: other levels figures draw beside chance", arrow="json"
    )

    @classmethod
    def of(cls, task: Any) -> TaskDescriptor:
        """A task's (any object with these attributes)."""
        return cls(
            task.metric, task.goal, task.chance, task.solved_threshold, dict(task.references)
        )


@dataclass(frozen=True, kw_only=True)
class Placement:
    """Where a trial runs, reported by its rank 0 with every result."""

    node: str | None = column("Ray node id of rank 0, the process that reports", default=None)
    device: str | None = column("rank 0's device", default=None)
    gpu_ids: str | None = column("every rank's GPU ids, `;` between ranks", default=None)
    workers: int = column("world size: the trial's data-parallel processes", default=1)
    devices: str | None = column("every rank's device, `;` between ranks", default=None)
    nodes: str | None = column("every rank's Ray node id, `;` between ranks", default=None)
    started_at: str | None = column(
        "when the trial first started (kept across restores)", arrow="timestamp", default=None
    )


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial runs with, resolved on the driver when the searcher hands it
    out: the trial builds only its own task and model from it, and the driver writes its
    row from it without rebuilding anything."""

    cell: str  # "<difficulty>/<model>"
    difficulty: str
    model: str
    family: str
    phase: str  # "search" or "confirm"
    number: int  # Optuna trial number (confirm: the number of the configuration confirmed)
    seed: int
    task: str
    level: str | None  # the ladder level the difficulty starts from (None: task defaults)
    overrides: dict[str, Any]  # task parameters set directly
    task_settings: dict[str, Any]  # every protocol parameter in effect
    descriptor: TaskDescriptor  # what the metric values mean
    hp: dict[str, Any]  # what the search chose (Optuna's params; confirm: the best's)
    model_params: dict[str, Any]  # every model hyperparameter in effect, `hidden` resolved
    train: dict[str, Any]  # every training setting in effect but seed and device
    # every setting of the task's learner (`sweep.learners`) in effect
    learner_settings: dict[str, Any] = field(default_factory=dict)

    @property
    def is_search(self) -> bool:
        return self.phase == "search"

    @property
    def episodes(self) -> int:
        """The trial's training budget."""
        return int(self.train["episodes"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        """Also a config written before the descriptor was one record (schema 2: its fields
        flat, a reward task's A2C settings in `train`)."""
        data = dict(data)
        if not isinstance(data.get("descriptor"), dict | TaskDescriptor):
            names = [f.name for f in dataclasses.fields(TaskDescriptor)]
            data["descriptor"] = {k: data.pop(k) for k in names}
        if isinstance(data["descriptor"], dict):
            data["descriptor"] = TaskDescriptor(**data["descriptor"])
        return _from_dict(cls, data)


@dataclass(frozen=True)
class Reconstructions:
    """A finished picture-task trial's outputs on the fixed held-out episodes: `shape`
    (rows, cols) of a picture; per episode the target, the last-step output (rows * cols
    floats, row-major) and the erased part (True where the metric scores)."""

    shape: tuple[int, int]
    target: list[list[float]]
    output: list[list[float]]
    erased: list[list[bool]]


@dataclass(frozen=True)
class Report:
    """One evaluation, with the trial's summary so far (a trial stopped early by a
    scheduler ends on any report). The last report of a trial that ran its course, or
    diverged, has done=True and final_value set. `value`, `best_value` and `final_value`
    are the task's metric, whatever it measures (its `TaskDescriptor`)."""

    step: int  # 1 for the first evaluation, 2 for the next, ...
    episodes: int  # training episodes so far
    loss: float  # mean training loss since the previous report
    value: float  # the task's metric on fresh evaluation episodes (last finite one if diverged)
    wall_s: float  # seconds of training and evaluation since the start, across restores
    episodes_per_second: float  # the whole run's: episodes so far / wall_s
    best_value: float  # best `value` so far (lowest, or highest for a "max" task)
    episodes_to_solve: int | None  # first evaluation that reached the threshold, so far
    num_parameters: int
    done: bool = False
    diverged: bool = False  # the loss became NaN or infinite; training stopped there
    final_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrialResult(Report, Placement):
    """What a trial reports to Ray Tune: an evaluation `Report`, where the trial runs
    (`Placement`), and whether a checkpoint came with it."""

    checkpointed: bool = False  # a checkpoint was saved with this report
    # Picture tasks, on the final report only: the trial's outputs on the fixed held-out
    # episodes. The driver's results writer takes them out of the result before Tune keeps
    # it (they belong in their own table, not in Tune's experiment state).
    reconstructions: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        """Ended with a value a search can learn from."""
        return not self.diverged and self.value == self.value

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["reconstructions"] is None:
            del data["reconstructions"]
        return data

    @staticmethod
    def take_reconstructions(data: dict[str, Any]) -> Reconstructions | None:
        """Remove the pictures from a raw result (before Tune keeps it) and return them."""
        pictures = data.pop("reconstructions", None)
        if pictures is None:
            return None
        rows, cols = pictures["shape"]
        return Reconstructions(
            (rows, cols), pictures["target"], pictures["output"], pictures["erased"]
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrialResult | None:
        """None for a result that is not a report of ours (a trial that failed before its
        first evaluation has none)."""
        if not data or "step" not in data:
            return None
        return _from_dict(cls, data)


def outcome(last: TrialResult | None, budget: int, failed: bool) -> str:
    """A finished trial's `status`: failed, diverged, completed (ran its whole budget) or
    stopped_early (a scheduler stopped it: Ray Tune marks every trial's last result "done",
    so only the episodes tell the two apart)."""
    if failed:
        return "failed"
    if last is not None and last.diverged:
        return "diverged"
    if last is not None and last.episodes >= budget:
        return "completed"
    return "stopped_early"


# -- populations (`resources.members` > 1) ------------------------------------------------------
# A population is one Ray Tune trial that trains several trials of one cell (its members) as
# one model. Its Ray config is {MEMBERS: [each member's TrialConfig]}, its results
# {"value": the best member's value, MEMBERS: {"<k>": member k's TrialResult}}, where k is the
# member's place in the config (stable: a member that stops keeps the others' places).
MEMBERS = "members"


def member_id(population: str, member: int) -> str:
    """A member's trial id: its population's Tune trial id and its place."""
    return f"{population}-{member}"


def trial_configs(data: dict[str, Any]) -> dict[int | None, TrialConfig]:
    """The trials a Ray config trains: {None: the config} for a lone trial, {k: member k's
    config} for a population."""
    if MEMBERS in data:
        return {k: TrialConfig.from_dict(c) for k, c in enumerate(data[MEMBERS])}
    return {None: TrialConfig.from_dict(data)}


def population_config(members: list[TrialConfig]) -> dict[str, Any]:
    """The Ray config of a population of these members, in this order."""
    return {MEMBERS: [m.to_dict() for m in members]}


def population_result(members: dict[int, TrialResult], goal: str) -> dict[str, Any]:
    """One report of a population: every running member's `TrialResult`, and at the top the
    best member's value (Ray Tune asks for the searcher's metric in every result)."""
    values = [r.value for r in members.values() if r.value == r.value]
    top = (max(values) if goal == "max" else min(values)) if values else float("nan")
    return {"value": top, MEMBERS: {str(k): r.to_dict() for k, r in members.items()}}


def member_results(data: dict[str, Any] | None) -> dict[int | None, TrialResult]:
    """The reports in a Ray result: {None: it} for a lone trial's, {k: member k's} for a
    population's; {} for a result that is no report of ours."""
    if not data:
        return {}
    members = _members(data)
    if members is not None:
        found = {int(k): TrialResult.from_dict(r) for k, r in members.items()}
        return {k: r for k, r in found.items() if r is not None}
    lone = TrialResult.from_dict(data)
    return {} if lone is None else {None: lone}


def _members(data: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """A population result's members (None: not a population's), nested as reported or
    flattened as Ray Tune hands results to searchers (`members/<k>/<field>` keys)."""
    if MEMBERS in data:
        return dict(data[MEMBERS])
    prefix = f"{MEMBERS}/"
    found: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key.startswith(prefix):
            k, _, name = key[len(prefix) :].partition("/")
            found.setdefault(k, {})[name] = value
    return found or None
