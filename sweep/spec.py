"""The sweep spec: a YAML file, validated in full before Ray starts or anything is written.

Every error is reported with its path in the spec, all at once:
`search.space.lr.loguniform: low must be > 0`.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from sweep.errors import describe
from sweep.models import FAMILIES, get_family, make_config
from sweep.tasks import levels, make_task
from sweep.train import TrainConfig

# Training settings a search may sample; everything else it samples is a model parameter.
TRAIN_SEARCHABLE = ("lr", "batch_size", "grad_clip")
_SET_BY_SWEEP = ("seed", "device")


class SpecError(ValueError):
    """A spec that cannot run; `errors` holds one `path: message` line per problem."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Distribution(_Strict):
    """Exactly one of: uniform/loguniform [low, high] (floats), int/logint [low, high]
    (inclusive), or choice [values...]."""

    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
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
        """Values that stand for the whole range in validation: the bounds or the choices."""
        found = getattr(self, self.kind())
        return list(found)


class Search(_Strict):
    """trials_per_cell: the tuning budget, the same for every (difficulty, model) cell.
    sampler: Optuna sampler. seed: seeds every cell's sampler and the trials' seeds.
    space: parameter name -> distribution; a model is sampled only the parameters it has."""

    trials_per_cell: PositiveInt = 6
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
    STRICT_PACK); otherwise packed onto as few nodes as will hold them (PACK)."""

    workers: PositiveInt = 1
    cpu: PositiveFloat = 1.0
    gpu: NonNegativeFloat = 0.0
    one_node: bool = False

    @field_validator("gpu")
    @classmethod
    def _one_gpu_at_most(cls, gpu: float) -> float:
        if gpu > 1:
            raise ValueError(
                "more than one GPU per worker is not supported (use gpu <= 1 and more workers)"
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


class SweepSpec(_Strict):
    name: Name
    storage: str = "results"
    task: str = "patterns"
    difficulties: list[Name | dict[Name, dict[str, Any]]] = Field(min_length=1)
    models: dict[Name, ModelEntry] = Field(min_length=1)
    train: dict[str, Any] = Field(default_factory=dict)
    search: Search = Field(default_factory=Search)
    early_stop: EarlyStop | Literal["none"] | None = Field(default_factory=EarlyStop)
    confirm: Confirm = Field(default_factory=Confirm)
    resources: Resources = Field(default_factory=Resources)
    max_concurrent: PositiveInt | None = None
    fault_tolerance: FaultTolerance = Field(default_factory=FaultTolerance)

    @property
    def asha(self) -> EarlyStop | None:
        return self.early_stop if isinstance(self.early_stop, EarlyStop) else None

    def train_config(self, **values: Any) -> TrainConfig:
        return TrainConfig(**{**self.train, **values})

    def difficulty_items(self) -> list[tuple[str, str | None, dict[str, Any]]]:
        """(name, ladder level or None, parameter overrides) per difficulty, in order.

        A custom difficulty `{name: {level: small, pattern_size: 40}}` starts from a ladder
        level (or from the task's defaults without `level`) and sets parameters directly.
        """
        items: list[tuple[str, str | None, dict[str, Any]]] = []
        for entry in self.difficulties:
            if isinstance(entry, str):
                items.append((entry, entry, {}))
            else:
                for name, params in entry.items():
                    params = dict(params)
                    items.append((name, params.pop("level", None), params))
        return items

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a spec file; raise SpecError listing every problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise SpecError([f"{path}: cannot read: {e.strerror}"]) from None
    except yaml.YAMLError as e:
        raise SpecError([f"{path}: not valid YAML: {' '.join(str(e).split())}"]) from None
    return parse_spec(raw)


def parse_spec(raw: Any) -> SweepSpec:
    if not isinstance(raw, Mapping):
        raise SpecError(["spec: must be a mapping of keys to values"])
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(describe(e, first_only=False)) from None
    errors = _semantic_errors(spec)
    if errors:
        raise SpecError(errors)
    return spec


def _semantic_errors(spec: SweepSpec) -> list[str]:
    """Checks that need the registries: tasks, levels, families, parameters."""
    errors: list[str] = []
    try:
        task_levels = levels(spec.task)
    except ValueError as e:
        return [f"task: {e}"]
    for i, (name, level, params) in enumerate(spec.difficulty_items()):
        where = f"difficulties[{i}]" + ("" if level == name and not params else f".{name}")
        if level is not None and level not in task_levels:
            errors.append(f"{where}: unknown level {level!r}; valid: {', '.join(task_levels)}")
            continue
        try:
            make_task(spec.task, level, params, name)
        except ValueError as e:
            errors.append(f"{where}: {e}")
    names = [n for n, _, _ in spec.difficulty_items()]
    if len(set(names)) != len(names):
        errors.append(f"difficulties: names must be unique, got {names}")

    families: dict[str, str] = {}
    for name, entry in spec.models.items():
        where = f"models.{name}"
        if entry.family not in FAMILIES:
            errors.append(
                f"{where}.family: unknown family {entry.family!r}; valid: {', '.join(FAMILIES)}"
            )
            continue
        families[name] = entry.family
        try:
            make_config(entry.family, entry.params())
        except ValueError as e:
            errors.append(f"{where}: {e}")
        target = entry.match_parameters
        if target is not None:
            if target not in spec.models or target == name:
                others = [m for m in spec.models if m != name]
                errors.append(
                    f"{where}.match_parameters: {target!r} is not another model; "
                    f"valid: {', '.join(others)}"
                )
            elif "hidden" in entry.params():
                errors.append(f"{where}: give either hidden or match_parameters, not both")

    for key in _SET_BY_SWEEP:
        if key in spec.train:
            errors.append(
                f"train.{key}: set by the sweep (seeds: search.seed, confirm.seeds; "
                "device: resources.gpu)"
            )
    train = {k: v for k, v in spec.train.items() if k not in _SET_BY_SWEEP}
    try:
        TrainConfig(**train)
    except ValidationError as e:
        errors.extend(describe(e, "train", first_only=False))

    for param, dist in spec.search.space.items():
        where = f"search.space.{param}"
        having = [f for f in sorted(set(families.values())) if param in get_family(f).parameters]
        if param in TRAIN_SEARCHABLE:
            for value in dist.values():
                try:
                    TrainConfig(**{param: value})
                except ValidationError as e:
                    errors.append(f"{where}.{dist.kind()}: {describe(e)[0]}")
        elif not having:
            valid = sorted(
                set(TRAIN_SEARCHABLE).union(
                    *(get_family(f).parameters for f in set(families.values()))
                )
            )
            errors.append(f"{where}: no model in this sweep has it; valid: {', '.join(valid)}")
        for family in having:
            for value in dist.values():
                try:
                    make_config(family, {param: value})
                except ValueError as e:
                    errors.append(f"{where}.{dist.kind()}: {e}")
        if spec.search.sampler == "grid" and dist.kind() not in ("choice", "int"):
            errors.append(f"{where}: the grid sampler needs choice or int, not {dist.kind()}")
    return errors
