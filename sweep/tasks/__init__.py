"""Task registry: task name -> difficulty ladder and constructor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plastic_models.rules import qualified
from sweep.errors import registered
from sweep.store import GOALS
from sweep.tasks.base import Episode, Task, learner_of
from sweep.tasks.cue_reward import LEVELS as CUE_REWARD_LEVELS
from sweep.tasks.cue_reward import CueRewardTask
from sweep.tasks.images import LEVELS as IMAGE_LEVELS
from sweep.tasks.images import ImageTask
from sweep.tasks.maze import LEVELS as MAZE_LEVELS
from sweep.tasks.maze import MazeTask
from sweep.tasks.patterns import LEVELS as PATTERN_LEVELS
from sweep.tasks.patterns import PatternTask
from sweep.tasks.reward import RewardTask

TASKS: dict[str, tuple[Any, dict[str, dict[str, Any]]]] = {
    "patterns": (PatternTask, PATTERN_LEVELS),
    "images": (ImageTask, IMAGE_LEVELS),
    "cue_reward": (CueRewardTask, CUE_REWARD_LEVELS),
    "maze": (MazeTask, MAZE_LEVELS),
}


def register_task(name: str, cls: Any, levels: Mapping[str, Mapping[str, Any]]) -> None:
    """Add a task (a plugin's): `cls` makes it with `cls.from_level(level, overrides, name)`
    (see `PatternTask`), declares on the class its `settings_class` (a pydantic dataclass of
    its protocol parameters: they become `task.*` columns), `metric` and `goal` (the same at
    every level: the sweep driver reads them without building the task); `levels` is its
    ladder, easiest first."""
    if not name.isidentifier():
        raise ValueError(f"task name {name!r} must be a Python identifier")
    known = TASKS.get(name)
    if known is not None and qualified(known[0]) != qualified(cls):  # not a re-import
        raise ValueError(f"task {name!r} is already registered by {qualified(known[0])}")
    metric, goal = getattr(cls, "metric", None), getattr(cls, "goal", None)
    if not isinstance(metric, str):
        raise ValueError(f"task {name!r}: {qualified(cls)}.metric must name the metric")
    if goal not in GOALS:
        raise ValueError(
            f"task {name!r}: {qualified(cls)}.goal is {goal!r}; valid: {', '.join(GOALS)}"
        )
    TASKS[name] = (cls, {level: dict(settings) for level, settings in levels.items()})


def levels(task: str) -> list[str]:
    """The named difficulty levels of a task, easiest first."""
    return list(_entry(task)[1])


def task_metric(task: str) -> tuple[str, str]:
    """(metric, goal) of a task, from its class: the same at every level."""
    cls, _ = _entry(task)
    return str(cls.metric), str(cls.goal)


def make_task(
    task: str,
    difficulty: str | None,
    overrides: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Task:
    """A task at a named level (None: the task's defaults), optionally with some protocol
    parameters set directly; `name` labels the result (default: the level's name)."""
    cls, _ = _entry(task)
    made: Task = cls.from_level(difficulty, overrides, name)
    return made


def task_learner(task: str) -> str:
    """The learner a registered task names (`sweep.learners`), from its class."""
    return learner_of(_entry(task)[0])


def _entry(task: str) -> tuple[Any, dict[str, dict[str, Any]]]:
    return registered(TASKS, "task", task)


__all__ = [
    "TASKS",
    "Episode",
    "RewardTask",
    "Task",
    "levels",
    "make_task",
    "register_task",
    "task_learner",
    "task_metric",
]
