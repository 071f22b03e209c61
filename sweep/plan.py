"""Cells: one per (difficulty, model) of a spec, each with its own search space."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sweep.models import build_model, get_family, hidden_for_parameters, num_parameters
from sweep.spec import TRAIN_SEARCHABLE, Distribution, SweepSpec
from sweep.tasks import Task, make_task


@dataclass(frozen=True)
class Cell:
    """A (difficulty, model) pair: the unit that gets one Optuna study and one budget."""

    index: int
    difficulty: str
    model: str
    family: str
    level: str | None  # the ladder level the difficulty starts from (None: task defaults)
    overrides: dict[str, Any]  # task parameters set directly
    params: dict[str, Any]  # fixed model hyperparameters, `hidden` resolved when matched
    space: dict[str, Distribution] = field(default_factory=dict)  # what this cell searches

    @property
    def id(self) -> str:
        return f"{self.difficulty}/{self.model}"

    def task(self, task: str) -> Task:
        return make_task(task, self.level, self.overrides, self.difficulty)


def make_cells(spec: SweepSpec) -> list[Cell]:
    """Difficulty-major order. A model with match_parameters gets, per difficulty, the
    hidden size closest to the other model's parameter count (at its fixed settings); one
    with match_neurons gets the other model's number of neurons."""
    cells: list[Cell] = []
    for difficulty, level, overrides in spec.difficulty_items():
        task = make_task(spec.task, level, overrides, difficulty)
        for model, entry in spec.models.items():
            params = entry.params()
            if entry.match is not None:
                kind, name = entry.match
                other = spec.models[name]
                sizes = (task.input_size, task.output_size)
                if kind == "neurons":
                    params["hidden"] = build_model(other.family, *sizes, other.params()).neurons
                else:
                    target = num_parameters(other.family, *sizes, other.params())
                    params["hidden"] = hidden_for_parameters(entry.family, target, *sizes, params)
            has = set(TRAIN_SEARCHABLE) | set(get_family(entry.family).parameters)
            space = {p: d for p, d in spec.search.space.items() if p in has}
            cells.append(
                Cell(len(cells), difficulty, model, entry.family, level, overrides, params, space)
            )
    return cells


def cells_by_id(spec: SweepSpec) -> dict[str, Cell]:
    return {c.id: c for c in make_cells(spec)}


def search_seed(spec: SweepSpec, cell: Cell, number: int) -> int:
    """Seed of search trial `number` of a cell: distinct across cells and trials."""
    return spec.search.seed * 1_000_000 + cell.index * 1_000 + number


def confirm_seed(spec: SweepSpec, k: int) -> int:
    """The k-th confirmation seed, the same for every cell (a paired comparison across models)
    and never used by a search trial."""
    return (spec.search.seed + 1) * 1_000_000 - 1 - k
