"""The sweep's plan: cells, one per (difficulty, model), resolved once on the driver; and the
settings of each trial the searcher hands out."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sweep.defaults import Method, cell_params, method_of, resolve_model
from sweep.learners import settings_in_effect
from sweep.models import get_family, make_config
from sweep.records import TaskDescriptor, TrialConfig
from sweep.spec import SEEDS_PER_CELL, SEEDS_PER_SWEEP, TRAIN_SEARCHABLE, Distribution, SweepSpec
from sweep.tasks import Task, make_task, task_learner

# the reference of a task that declares none: the families' own defaults
FAMILY_DEFAULTS = Method()

_SET_PER_TRIAL = ("seed", "device")


@dataclass(frozen=True)
class TaskInfo:
    """A difficulty's task as the driver needs it: how to rebuild it, and what it records."""

    name: str
    level: str | None  # the ladder level the difficulty starts from (None: task defaults)
    overrides: dict[str, Any]  # task parameters set directly
    settings: dict[str, Any]  # every protocol parameter in effect
    descriptor: TaskDescriptor
    # what the task's reference code sets (`sweep.defaults`); the default also serves plans
    # pickled before it existed (a resumed older sweep)
    method: Method = FAMILY_DEFAULTS

    @classmethod
    def of(cls, task: Task, name: str, level: str | None, overrides: dict[str, Any]) -> TaskInfo:
        return cls(
            name,
            level,
            overrides,
            task.settings(),
            TaskDescriptor.of(task),
            method_of(task),
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A plan pickled by schema-2 code (a resumed older sweep) holds the descriptor's
        fields flat."""
        if "descriptor" not in state:
            names = [f.name for f in dataclasses.fields(TaskDescriptor)]
            state["descriptor"] = TaskDescriptor(**{k: state.pop(k) for k in names})
        self.__dict__.update(state)


@dataclass(frozen=True)
class Cell:
    """A (difficulty, model) pair: the unit that gets one Optuna study and one budget."""

    index: int
    difficulty: str
    model: str
    family: str
    task: TaskInfo
    params: dict[str, Any]  # fixed model hyperparameters, `hidden` resolved when matched
    space: dict[str, Distribution] = field(default_factory=dict)  # what this cell searches

    @property
    def id(self) -> str:
        return cell_id(self.difficulty, self.model)


def cell_id(difficulty: str, model: str) -> str:
    return f"{difficulty}/{model}"


def cell_ids(spec: SweepSpec) -> list[str]:
    """The cells' names in plan order, without building anything."""
    return [cell_id(d, m) for d, _, _ in spec.difficulty_items() for m in spec.models]


def make_cells(spec: SweepSpec, order: list[str] | None = None) -> list[Cell]:
    """Difficulty-major order; `order` (a grown sweep's cells by first appearance,
    `sweep.growth.cell_order`) numbers the cells, so that a cell keeps its index, and with
    it its trials' seeds, however the sweep grows. A model with match_parameters gets, per
    difficulty, the hidden size closest to the other model's parameter count (at its fixed
    settings); one with match_neurons gets the other model's number of neurons. Builds each
    difficulty's task once: call it once per sweep."""
    cells: list[Cell] = []
    for difficulty, level, overrides in spec.difficulty_items():
        task = make_task(spec.task, level, overrides, difficulty)
        info = TaskInfo.of(task, spec.task, level, overrides)
        for model, entry in spec.models.items():
            sizes = (task.input_size, task.output_size)
            params = cell_params(info.method, spec.models, model, sizes)
            has = set(TRAIN_SEARCHABLE) | set(get_family(entry.family).parameters)
            space = {p: d for p, d in spec.search.space.items() if p in has}
            name = cell_id(difficulty, model)
            index = order.index(name) if order and name in order else len(cells)
            cells.append(Cell(index, difficulty, model, entry.family, info, params, space))
    return cells


def trial_config(
    spec: SweepSpec, cell: Cell, phase: str, number: int, seed: int, hp: dict[str, Any]
) -> TrialConfig:
    """A trial of `cell` with the searched values `hp`: every setting resolved (defaults
    filled in, validated), so neither the trial nor the driver resolves anything again."""
    family_params = set(get_family(cell.family).parameters)
    given = {**cell.params, **{k: v for k, v in hp.items() if k in family_params}}
    model = make_config(cell.family, resolve_model(cell.task.method, cell.family, given))
    searched = {k: v for k, v in hp.items() if k not in family_params}
    train = spec.train_config(cell.task.method.train, **searched)
    learned = {**cell.task.method.train, **spec.train, **searched}
    return TrialConfig(
        cell=cell.id,
        difficulty=cell.difficulty,
        model=cell.model,
        family=cell.family,
        phase=phase,
        number=number,
        seed=seed,
        task=cell.task.name,
        level=cell.task.level,
        overrides=dict(cell.task.overrides),
        task_settings=dict(cell.task.settings),
        descriptor=cell.task.descriptor,
        hp=dict(hp),
        model_params={f.name: getattr(model, f.name) for f in dataclasses.fields(model)},
        train={
            f.name: getattr(train, f.name)
            for f in dataclasses.fields(train)
            if f.name not in _SET_PER_TRIAL
        },
        learner_settings=settings_in_effect(task_learner(cell.task.name), learned),
    )


def search_seed(spec: SweepSpec, cell: Cell, number: int) -> int:
    """Seed of search trial `number` of a cell: distinct across cells and trials."""
    return spec.search.seed * SEEDS_PER_SWEEP + cell.index * SEEDS_PER_CELL + number


def confirm_index(spec: SweepSpec, seed: int) -> int:
    """Which confirmation seed `seed` is (the inverse of `confirm_seed`)."""
    return (spec.search.seed + 1) * SEEDS_PER_SWEEP - 1 - seed


def confirm_seed(spec: SweepSpec, k: int) -> int:
    """The k-th confirmation seed, the same for every cell (a paired comparison across models)
    and never used by a search trial."""
    return (spec.search.seed + 1) * SEEDS_PER_SWEEP - 1 - k
