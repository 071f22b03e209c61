"""The sweep spec: a YAML file, validated in full before Ray starts or anything is written.

Every error is reported with its path in the spec, all at once, one line each:
`search.space.lr.loguniform: low must be > 0`. Each top-level section is validated on its
own and the cross-field checks run on every section that parsed, so one mistake never hides
another; the choices (tasks, levels, families, hyperparameters) come from the registries.
"""

from __future__ import annotations

import builtins
import math
import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    NonNegativeFloat,
    NonNegativeInt,
    PlainValidator,
    PositiveFloat,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from sweep import plugins as plugin_modules
from sweep.defaults import cell_params, method_of
from sweep.errors import describe, did_you_mean, path, quote, unknown
from sweep.extras import missing_package
from sweep.learners import LEARNERS, all_settings, owner, settings_names
from sweep.models import FAMILIES, build_model, get_family
from sweep.tasks import TASKS, Task, levels, make_task, task_learner
from sweep.train import TRAIN_FIELDS, TrainConfig

# Training settings a search may sample; everything else it samples is a model parameter.
# A learner's settings (A2C's coefficients) only for a task that learns by it.
TRAIN_SEARCHABLE = ("lr", "batch_size", "adam_eps", "grad_clip", *all_settings())
_SET_BY_SWEEP = ("seed", "device")
# sweep.plan gives each cell a block of SEEDS_PER_CELL search seeds and each sweep a block
# of SEEDS_PER_SWEEP seeds, whose top end holds the confirmation seeds: budgets beyond
# these blocks would give two trials the same seed.
SEEDS_PER_CELL = 1_000
SEEDS_PER_SWEEP = 1_000_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class SpecError(ValueError):
    """A spec that cannot run; `errors` holds one `path: message` line per problem."""

    def __init__(self, errors: list[str]):
        # One line per problem, whatever the user's values hold.
        self.errors = [" ".join(str(e).split()) for e in errors]
        super().__init__("\n".join(self.errors))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Distribution(_Strict):
    """Exactly one of: uniform/loguniform [low, high] (floats), int/logint [low, high]
    (inclusive), or choice [values...]."""

    uniform: tuple[FiniteFloat, FiniteFloat] | None = None
    loguniform: tuple[FiniteFloat, FiniteFloat] | None = None
    int: tuple[builtins.int, builtins.int] | None = None
    logint: tuple[builtins.int, builtins.int] | None = None
    choice: list[Any] | None = Field(default=None, min_length=1)

    @field_validator("uniform", "loguniform", "int", "logint")
    @classmethod
    def _ordered(cls, bounds: tuple[float, float] | None, info: Any) -> Any:
        if bounds is None:
            return bounds
        low, high = bounds
        if info.field_name in ("loguniform", "logint") and low <= 0:
            raise ValueError("low must be > 0")
        if low >= high:
            raise ValueError(f"low ({low}) must be < high ({high})")
        return bounds

    @field_validator("choice")
    @classmethod
    def _scalars(cls, choices: list[Any] | None) -> list[Any] | None:
        """Optuna stores choices as numbers, strings, booleans or null."""
        for value in choices or []:
            if value is not None and not isinstance(value, str | builtins.int | float):
                raise ValueError(f"{quote(value)}: a choice must be a number, string, bool or null")
        return choices

    @model_validator(mode="after")
    def _exactly_one(self) -> Distribution:
        if len(self.kinds()) != 1:
            raise ValueError("give exactly one of uniform, loguniform, int, logint, choice")
        return self

    def kinds(self) -> list[str]:
        return [k for k in type(self).model_fields if getattr(self, k) is not None]

    def kind(self) -> str:
        return self.kinds()[0]

    def values(self) -> list[Any]:
        """The bounds, or the choices."""
        found = getattr(self, self.kind())
        return list(found)

    def probes(self) -> list[Any]:
        """Values that stand for the whole range in validation: the bounds or the choices,
        and for a float range also a non-round point inside it (an integer parameter
        searched with uniform fails there, not in the middle of the sweep)."""
        found = self.values()
        if self.kind() == "uniform":
            found.append(found[0] + (found[1] - found[0]) / math.pi)
        elif self.kind() == "loguniform":
            found.append(found[0] * (found[1] / found[0]) ** (1 / math.pi))
        return found


class Search(_Strict):
    """trials_per_cell: the tuning budget, the same for every (difficulty, model) cell.
    sampler: Optuna sampler. seed: seeds every cell's sampler and the trials' seeds.
    space: parameter name -> distribution; a model is sampled only the parameters it has."""

    trials_per_cell: Annotated[int, Field(gt=0, le=SEEDS_PER_CELL)] = 6
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    seed: NonNegativeInt = 0
    space: dict[str, Distribution] = Field(default_factory=dict)


class EarlyStop(_Strict):
    """ASHA inside each cell: trials compete only with trials of their own cell."""

    scheduler: Literal["asha", "none"] = "asha"
    grace_episodes: PositiveInt = 200
    reduction_factor: Annotated[float, Field(gt=1)] = 3.0


class Confirm(_Strict):
    """seeds: fresh seeds on which the best configuration of each cell is re-run."""

    seeds: NonNegativeInt = 5


class Resources(_Strict):
    """Per worker of a trial. workers: a trial trains data-parallel on this many processes
    (1: one process, as a plain trial), each with `cpu` CPUs and `gpu` GPUs; gpu: a fraction
    packs several trials on one GPU. one_node: all of a trial's workers on one node (Ray's
    STRICT_PACK); otherwise packed onto as few nodes as will hold them (PACK).
    members: a trial trains up to this many trials of one cell as one population, each
    member its own Optuna trial and its own rows (1: one trial per process, as before)."""

    workers: PositiveInt = 1
    members: PositiveInt = 1
    cpu: PositiveFloat = 1.0
    gpu: NonNegativeFloat = 0.0
    one_node: bool = False

    @field_validator("gpu")
    @classmethod
    def _one_gpu_at_most(cls, gpu: float) -> float:
        if gpu > 1:
            raise ValueError(
                f"{gpu:g}: more than one GPU per worker is not supported (use gpu <= 1 and "
                "more workers)"
            )
        return gpu


class FaultTolerance(_Strict):
    """max_failures: retries of a failed trial, from its last checkpoint.
    checkpoint_every_s: a running trial checkpoints at its first report after this long."""

    max_failures: NonNegativeInt = 2
    checkpoint_every_s: NonNegativeFloat = 30.0


class ModelEntry(BaseModel):
    """`family` plus fixed hyperparameters of that family. `match_parameters: OTHER` sizes
    `hidden` per difficulty so the model has (about) OTHER's parameter count;
    `match_neurons: OTHER` gives it OTHER's number of neurons."""

    model_config = ConfigDict(extra="allow", frozen=True)
    family: str
    match_parameters: str | None = None
    match_neurons: str | None = None

    @property
    def match(self) -> tuple[str, str] | None:
        """("parameters" | "neurons", other model) when sized after another model."""
        if self.match_parameters is not None:
            return "parameters", self.match_parameters
        if self.match_neurons is not None:
            return "neurons", self.match_neurons
        return None

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


def _true_is_defaults(value: Any) -> Any:
    """`mlflow: true` turns a tracker on with its defaults; `false` (or null) leaves it off."""
    if value is True:
        return {}
    return None if value is False else value


class MLflowTracking(_Strict):
    """tracking_uri: where runs go, as MLflow takes it (a server `http://HOST:PORT`, a
    folder, `sqlite:///FILE`); default: MLFLOW_TRACKING_URI, else `<sweep>/mlruns`.
    experiment: the MLflow experiment (default: the sweep's name)."""

    tracking_uri: Annotated[str, Field(min_length=1)] | None = None
    experiment: Annotated[str, Field(min_length=1)] | None = None


class WandbTracking(_Strict):
    """project: the W&B project (default: WANDB_PROJECT, else the sweep's name).
    mode: offline writes run folders under `<sweep>/wandb/` for `wandb sync`; online sends
    (with the key from `wandb login` or WANDB_API_KEY). entity: team or user (default: W&B's)."""

    project: Annotated[str, Field(min_length=1)] | None = None
    mode: Literal["offline", "online"] = "offline"
    entity: Annotated[str, Field(min_length=1)] | None = None


class Tracking(_Strict):
    """Trackers that follow the sweep live (all off by default); credentials come from each
    tool's own environment, never from the spec."""

    tensorboard: bool = False
    mlflow: Annotated[MLflowTracking | None, BeforeValidator(_true_is_defaults)] = None
    wandb: Annotated[WandbTracking | None, BeforeValidator(_true_is_defaults)] = None

    def names(self) -> list[str]:
        """The trackers turned on, in the spec's order of fields."""
        on = {"tensorboard": self.tensorboard, "mlflow": self.mlflow, "wandb": self.wandb}
        return [name for name, value in on.items() if value]


def _difficulty(value: Any) -> str | dict[str, dict[str, Any]]:
    """A ladder level's name, or {name: {level: LEVEL, PARAM: VALUE, ...}}."""
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    if isinstance(value, Mapping) and value:
        entries = value.items()
        if all(isinstance(k, str) and _NAME.fullmatch(k) for k, _ in entries) and all(
            isinstance(v, Mapping) and all(isinstance(p, str) for p in v) for _, v in entries
        ):
            return {k: dict(v) for k, v in entries}
    raise ValueError(
        f"{quote(value)}: must be a level name or {{NAME: {{level: LEVEL, PARAM: VALUE}}}} "
        "(names: letters, digits, _ . -)"
    )


def _none_is_off(value: Any) -> Any:
    return None if isinstance(value, str) and value == "none" else value


Difficulty = Annotated[str | dict[str, dict[str, Any]], PlainValidator(_difficulty)]


class SweepSpec(_Strict):
    name: Name
    storage: Annotated[str, Field(min_length=1)] = "results"
    task: str = "patterns"
    difficulties: list[Difficulty] = Field(min_length=1)
    models: dict[Name, ModelEntry] = Field(min_length=1)
    train: dict[str, Any] = Field(default_factory=dict)
    search: Search = Field(default_factory=Search)
    # `none` (or null): no early stopping.
    early_stop: Annotated[EarlyStop | None, BeforeValidator(_none_is_off)] = Field(
        default_factory=EarlyStop
    )
    confirm: Confirm = Field(default_factory=Confirm)
    resources: Resources = Field(default_factory=Resources)
    max_concurrent: PositiveInt | None = None
    fault_tolerance: FaultTolerance = Field(default_factory=FaultTolerance)
    tracking: Tracking = Field(default_factory=Tracking)
    # modules that register rules, families or tasks (sweep.plugins); plugin_root: the folder
    # they are looked up in first, set to the spec's own folder when a spec file is loaded
    plugins: list[str] = Field(default_factory=list)
    plugin_root: str | None = None

    @property
    def asha(self) -> EarlyStop | None:
        stop = self.early_stop
        return stop if stop is not None and stop.scheduler == "asha" else None

    def train_config(self, defaults: Mapping[str, Any] | None = None, **values: Any) -> TrainConfig:
        """The spec's training settings with `values` set; what both leave unset comes from
        `defaults` (a task's reference, `sweep.defaults`), then TrainConfig's own."""
        merged = {**(defaults or {}), **self.train, **values}
        return TrainConfig(**{k: v for k, v in merged.items() if k in TRAIN_FIELDS})

    def difficulty_items(self) -> list[tuple[str, str | None, dict[str, Any]]]:
        """(name, ladder level or None, parameter overrides) per difficulty, in order.

        A custom difficulty `{name: {level: small, pattern_size: 40}}` starts from a ladder
        level (or from the task's defaults without `level`) and sets parameters directly.
        """
        return _difficulty_items(self.difficulties)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _difficulty_items(
    difficulties: list[str | dict[str, dict[str, Any]]],
) -> list[tuple[str, str | None, dict[str, Any]]]:
    items: list[tuple[str, str | None, dict[str, Any]]] = []
    for entry in difficulties:
        if isinstance(entry, str):
            items.append((entry, entry, {}))
        else:
            for name, params in entry.items():
                params = dict(params)
                items.append((name, params.pop("level", None), params))
    return items


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a spec file; raise SpecError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError([f"{path}: cannot read: {e.strerror}"]) from None
    except UnicodeDecodeError:
        raise SpecError([f"{path}: not a text file (not UTF-8)"]) from None
    return parse_spec_text(text, str(path), plugin_modules.spec_root(path))


def parse_spec_text(text: str, where: str, root: str | None = None) -> SweepSpec:
    """Validate a spec given as YAML text read from `where` (a file in folder `root`, where
    its plugins are looked up first); raise SpecError listing every problem (a YAML syntax
    error is one line with its position, not the parser's account)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError([f"{where}: not valid YAML{at}: {problem}"]) from None
    except RecursionError:
        raise SpecError([f"{where}: nested too deeply to read"]) from None
    if isinstance(raw, dict) and raw.get("plugins") and "plugin_root" not in raw and root:
        raw = {**raw, "plugin_root": root}  # plugins are looked up beside the spec first
    return parse_spec(raw)


def parse_spec(raw: Any) -> SweepSpec:
    """Validate a spec given as plain data; raise SpecError listing every problem, in the
    order of the spec's keys."""
    if not isinstance(raw, Mapping):
        raise SpecError([f"spec: {quote(raw)}: must be a mapping of keys to values"])
    errors = _load_plugins(raw)  # before anything reads the registries
    if errors:
        raise SpecError(errors)
    values, errors = _validate_fields(raw)
    errors += _cross_errors(values, raw)
    if not errors:
        try:
            spec = SweepSpec.model_validate(raw)
        except ValidationError as e:  # the sections passed one by one, so this is a bug
            raise SpecError(describe(e, first_only=False, schema=SweepSpec)) from None
        errors = _cell_errors(spec)
        if not errors:
            return spec
    raise SpecError(sorted(errors, key=lambda line: _position(line, raw)))


def _load_plugins(raw: Mapping[Any, Any]) -> list[str]:
    """Import the spec's plugins (one line per failure); a `plugins` value of the wrong shape
    is left to the field check."""
    entries, root = raw.get("plugins"), raw.get("plugin_root")
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        return []
    return plugin_modules.load(entries, root if isinstance(root, str) else None)


def _position(line: str, raw: Mapping[Any, Any]) -> tuple[int, int]:
    """Where an error's path is in the spec: its top-level key, then its list position."""
    order = {str(k): i for i, k in enumerate(raw)}
    found = re.match(r"([^.\[:]*)(?:\[(\d+)\])?", line)
    key, index = (found.group(1), found.group(2)) if found else ("", None)
    return order.get(key, len(order)), int(index) if index else -1


@cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


@cache
def _field_adapter(key: str) -> TypeAdapter[Any]:
    field = SweepSpec.model_fields[key]
    tp: Any = field.annotation
    return TypeAdapter(Annotated[(tp, *field.metadata)] if field.metadata else tp)


def _validate_fields(raw: Mapping[Any, Any]) -> tuple[dict[str, Any], list[str]]:
    """Each top-level key on its own, so one bad section hides no error in another; returns
    the values of the sections that passed (defaults for those not given)."""
    fields = SweepSpec.model_fields
    values: dict[str, Any] = {}
    errors: list[str] = []
    for key, value in raw.items():
        if key not in fields:
            errors.append(f"{path([key])}: unknown key{did_you_mean(key, fields)}")
            continue
        try:
            values[key] = _field_adapter(key).validate_python(value)
        except ValidationError as e:
            errors += describe(e, key, first_only=False, schema=fields[key].annotation)
            kept = _salvage(fields[key].annotation, value)
            if kept is not None:
                values[key] = kept
    for key, field in fields.items():
        if key in raw:
            continue
        if field.is_required():
            errors.append(f"{key}: missing (a required key)")
        else:
            values[key] = field.get_default(call_default_factory=True)
    return values, errors


def _salvage(model: Any, section: Any) -> Any:
    """A section that failed, rebuilt from its keys that pass on their own (the others at
    their defaults), so that the cross-field checks still see them; None if it cannot be."""
    if not (isinstance(model, type) and issubclass(model, _Strict)):
        return None
    if not isinstance(section, Mapping):
        return None
    kept = {}
    for key, value in section.items():
        try:
            model.model_validate({key: value})
        except ValidationError:
            continue
        kept[key] = value
    try:
        return model.model_validate(kept)
    except ValidationError:
        return None


def _valid_entries(models: Any) -> dict[str, ModelEntry]:
    """The entries of a models section that failed which pass on their own."""
    entries = {}
    for name, entry in models.items() if isinstance(models, Mapping) else ():
        try:
            entries[name] = ModelEntry.model_validate(entry)
        except ValidationError:
            continue  # already reported
    return entries


def _valid_difficulties(difficulties: Any) -> list[tuple[int, Any]]:
    """(position, entry) of the difficulties that pass on their own."""
    entries = []
    for i, entry in enumerate(difficulties if isinstance(difficulties, list) else []):
        try:
            entries.append((i, _difficulty(entry)))
        except ValueError:
            continue  # already reported
    return entries


def _cross_errors(values: dict[str, Any], raw: Mapping[Any, Any]) -> list[str]:
    """Checks that need the registries or more than one section, on the sections that
    passed on their own."""
    errors: list[str] = []
    if "task" in values:
        difficulties = values.get("difficulties")
        found = list(enumerate(difficulties or [])) or _valid_difficulties(raw.get("difficulties"))
        errors += _task_errors(values["task"], found)
    # A models section with a bad entry is still checked entry by entry; the search space
    # needs them all (a parameter of the bad one only would look like no model's).
    complete = "models" in values
    models: dict[str, ModelEntry] = (
        values["models"] if complete else _valid_entries(raw.get("models"))
    )
    names = [str(n) for n in raw["models"]] if isinstance(raw.get("models"), Mapping) else []
    space: dict[str, Distribution] = values["search"].space if "search" in values else {}
    for name, entry in models.items():
        errors += _model_errors(name, entry, models, names, space)
    task = values.get("task")
    learner = task_learner(task) if task in TASKS else None
    if learner is not None and learner not in LEARNERS:
        errors.append(f"task: {task!r} names {unknown('learner', learner, list(LEARNERS))}")
        learner = None
    if "train" in values:
        errors += _train_errors(values["train"], learner)
    one_worker = learner is not None and not LEARNERS[learner].data_parallel
    if one_worker and "resources" in values and values["resources"].workers > 1:
        errors.append(
            f"resources.workers: {values['resources'].workers}: task {task!r} learns by "
            f"{learner} and trains with one worker (data-parallel training is for the "
            "supervised tasks); use workers: 1"
        )
    if "search" in values:
        families = {e.family for e in models.values() if e.family in FAMILIES}
        if complete:
            errors += _space_errors(values["search"], sorted(families), learner)
        if "difficulties" in values and "confirm" in values and "models" in raw:
            cells = len(_difficulty_items(values["difficulties"])) * len(names)
            errors += _seed_errors(values["search"], values["confirm"], cells)
    if "tracking" in values:
        errors += _tracking_errors(values["tracking"], values.get("storage"))
    if "resources" in values:
        errors += _population_errors(values)
    return errors


def _population_errors(values: dict[str, Any]) -> list[str]:
    """What populations (`resources.members` > 1) do not do yet, one line each."""
    members = values["resources"].members
    if members == 1:
        return []
    errors = []
    if values["resources"].workers > 1:
        errors.append(
            f"resources.members: {members}: a population trains in one process, not "
            f"data-parallel over workers: {values['resources'].workers}; use workers: 1, or "
            "members: 1"
        )
    if "tracking" in values and values["tracking"].names():
        errors.append(
            f"resources.members: {members}: the trackers ({', '.join(values['tracking'].names())}) "
            "follow one run per Tune trial, not per member; turn tracking off, or members: 1"
        )
    return errors


def _tracking_errors(tracking: Tracking, storage: str | None) -> list[str]:
    """Each tracker named has its package (imported here, so that a broken install fails
    now, not in the middle of the sweep); MLflow needs a tracking URI when the sweep's
    storage is not a local folder."""
    if not tracking.names():
        return []
    errors = [
        f"tracking.{name}: {problem}"
        for name in tracking.names()
        if (problem := missing_package(name)) is not None
    ]
    remote = storage is not None and "://" in storage and not storage.startswith("file://")
    mlflow = tracking.mlflow
    if mlflow and not mlflow.tracking_uri and remote and not os.environ.get("MLFLOW_TRACKING_URI"):
        errors.append(
            f"tracking.mlflow.tracking_uri: missing: the sweep's storage {quote(storage)} "
            "is not a local folder, so give a server (http://HOST:PORT) or set "
            "MLFLOW_TRACKING_URI"
        )
    return errors


def _task_errors(task: str, difficulties: list[tuple[int, Any]]) -> list[str]:
    """The task and each (position, difficulty): a known level, parameters the task has."""
    if task not in TASKS:
        return [f"task: {unknown('task', task, list(TASKS))}"]
    task_levels = levels(task)
    errors: list[str] = []
    names = []
    for i, entry in difficulties:
        for name, level, params in _difficulty_items([entry]):
            names.append(name)
            custom = not isinstance(entry, str)
            where = f"difficulties[{i}]" + (f".{name}" if custom else "")
            if level is not None and level not in task_levels:
                at = f"{where}.level" if custom else where
                errors.append(f"{at}: {unknown('level', level, task_levels)}")
                continue
            try:
                make_task(task, level, params, name)
            except (ValueError, TypeError) as e:
                errors.append(f"{where}: {e}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        errors.append(f"difficulties: names must be unique; given twice: {', '.join(twice)}")
    return errors


def _model_errors(
    name: str,
    entry: ModelEntry,
    models: Mapping[str, ModelEntry],
    names: list[str],
    space: Mapping[str, Distribution],
) -> list[str]:
    where = f"models.{name}"
    if entry.family not in FAMILIES:
        return [f"{where}.family: {unknown('family', entry.family, list(FAMILIES))}"]
    family = get_family(entry.family)
    params = entry.params()
    errors = _param_errors(entry.family, params, ["models", name])
    keys = [k for k in ("match_parameters", "match_neurons") if getattr(entry, k) is not None]
    if len(keys) == 2:
        errors.append(f"{where}: give either match_parameters or match_neurons, not both")
    for key in keys:
        if "hidden" in params:
            errors.append(f"{where}: give either hidden or {key}, not both")
        if "hidden" not in family.parameters:
            errors.append(f"{where}.{key}: family {entry.family!r} has no hidden size to set")
        if "hidden" in space:
            errors.append(
                f"{where}.{key}: hidden is also searched (search.space.hidden), which would "
                "override the matched size; remove one"
            )
        target = getattr(entry, key)
        others = [m for m in names if m != name]
        if target not in others:
            errors.append(
                f"{where}.{key}: {quote(target)} is not another model; "
                f"valid: {', '.join(others)}{did_you_mean(target, others)}"
            )
        elif target in models and models[target].match is not None:
            errors.append(
                f"{where}.{key}: {target!r} is itself sized by matching; match a model whose "
                "size is fixed"
            )
    for param in sorted(set(params) & set(space)):
        errors.append(
            f"{where}.{param}: also searched (search.space.{param}), and the searched value "
            "would replace it; remove one"
        )
    return errors


def _param_errors(family: str, params: Mapping[str, Any], where: list[Any]) -> list[str]:
    """Each unknown hyperparameter (with a close name) and each bad value, one line each."""
    config = get_family(family).config
    known = get_family(family).parameters
    errors = [
        f"{path([*where, key])}: family {family!r} has no such hyperparameter; "
        f"valid: {', '.join(known)}{did_you_mean(key, known)}"
        for key in params
        if key not in known
    ]
    try:
        _adapter(config).validate_python({k: v for k, v in params.items() if k in known})
    except ValidationError as e:
        errors += describe(e, where, first_only=False, schema=config)
    return errors


def _train_errors(train: dict[str, Any], learner: str | None) -> list[str]:
    """The training settings, and the settings of the task's learner (None: the task is
    not known; every learner's settings are let through)."""
    errors = [
        f"train.{key}: set by the sweep (seeds: search.seed, confirm.seeds; device: resources.gpu)"
        for key in _SET_BY_SWEEP
        if key in train
    ]
    own = settings_names(learner) if learner is not None else all_settings()
    for key in sorted(set(train) & set(all_settings()) - set(own)):
        errors.append(f"train.{key}: {_not_this_learner(key, learner)}")
    learned = {k: v for k, v in train.items() if k in own}
    for name in [learner] if learner is not None else []:
        try:
            _adapter(LEARNERS[name].settings_class).validate_python(learned)
        except ValidationError as e:
            errors += describe(e, "train", first_only=False, schema=LEARNERS[name].settings_class)
    rest = {k: v for k, v in train.items() if k not in (*_SET_BY_SWEEP, *all_settings())}
    try:
        _adapter(TrainConfig).validate_python(rest)
    except ValidationError as e:
        errors += describe(e, "train", first_only=False, schema=TrainConfig)
    return errors


def _not_this_learner(setting: str, learner: str | None) -> str:
    return f"a setting of the {owner(setting)} learner; this task learns by {learner}"


def _space_errors(search: Search, families: list[str], learner: str | None = None) -> list[str]:
    """Each searched parameter: some model (or training) has it, and every value of its
    range is valid there; a learner's settings only for a task that learns by it (None:
    the task is not known)."""
    errors: list[str] = []
    own = settings_names(learner) if learner is not None else all_settings()
    searchable = {*(k for k in TRAIN_SEARCHABLE if k in TRAIN_FIELDS), *own}
    for param, dist in search.space.items():
        where = f"search.space.{param}"
        if param in all_settings() and param not in own:
            errors.append(f"{where}: {_not_this_learner(param, learner)}")
            continue
        having = [f for f in families if param in get_family(f).parameters]
        schemas: list[Any] = [get_family(f).config for f in having]
        if param in TRAIN_FIELDS and param in TRAIN_SEARCHABLE:
            schemas.append(TrainConfig)
        elif param in own:
            schemas.append(LEARNERS[learner or str(owner(param))].settings_class)
        elif not having:
            known = (get_family(f).parameters for f in families)
            valid = sorted(searchable.union(*known))
            errors.append(
                f"{where}: no model in this sweep has it; valid: {', '.join(valid)}"
                + did_you_mean(param, valid)
            )
        for schema in schemas:
            for value in dist.probes():
                try:
                    _adapter(schema).validate_python({param: value})
                except ValidationError as e:
                    line = describe(e, schema=schema)[0].removeprefix(f"{param}: ")
                    errors.append(f"{where}.{dist.kind()}: {line}")
        if search.sampler == "grid" and dist.kind() not in ("choice", "int"):
            errors.append(f"{where}: the grid sampler needs choice or int, not {dist.kind()}")
    return list(dict.fromkeys(errors))  # families sharing a config report a bad value once


def _seed_errors(search: Search, confirm: Confirm, cells: int) -> list[str]:
    """Every trial of a sweep gets its own seed: search trials from their cell's block, the
    confirmation seeds from the top of the sweep's block."""
    used = (cells - 1) * SEEDS_PER_CELL + search.trials_per_cell
    if cells <= 0 or used + confirm.seeds <= SEEDS_PER_SWEEP:
        return []
    room = max(0, SEEDS_PER_SWEEP - used)
    return [
        f"confirm.seeds: {confirm.seeds}: with {cells} cells of {search.trials_per_cell} search "
        f"trials at most {room} confirmation seeds stay distinct from the search seeds"
    ]


def _cell_errors(spec: SweepSpec) -> list[str]:
    """Every (difficulty, model) builds: some settings only conflict with a task's sizes;
    then every matched size can be found (as `sweep.plan` will)."""
    errors = []
    tasks: list[Task] = []
    for name, level, params in spec.difficulty_items():
        task: Task = make_task(spec.task, level, params, name)
        tasks.append(task)
        for model, entry in spec.models.items():
            if entry.match is None:
                try:
                    build_model(entry.family, task.input_size, task.output_size, entry.params())
                except (ValueError, TypeError) as e:
                    errors.append(f"models.{model}: {e} (difficulty {name})")
    for task in tasks if not errors else []:
        sizes = (task.input_size, task.output_size)
        for model in spec.models:
            try:
                cell_params(method_of(task), spec.models, model, sizes)
            except (ValueError, TypeError) as e:
                return [f"models: {e}"]
    return errors
