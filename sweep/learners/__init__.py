"""Learners: how a model learns from a task, beside the tasks. Each owns its settings (a
pydantic dataclass: they become `hp.*` columns of its trials' rows only), its training loss
and its evaluation; a task names its learner (`learner`, "supervised" when it names none),
and the training loop (`sweep.train.Trial`) only calls it.

    supervised  sampled episodes with targets; the task's loss and metric (data parallel)
    a2c         advantage actor-critic on episodes the model plays (the reward tasks)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from sweep.errors import registered
from sweep.learners.a2c import A2C
from sweep.learners.base import Learner, Ranks
from sweep.learners.supervised import Supervised
from sweep.tasks.base import learner_of

LEARNERS: dict[str, type[Learner]] = {"supervised": Supervised, "a2c": A2C}


def settings_names(learner: str) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(_entry(learner).settings_class))


def all_settings() -> tuple[str, ...]:
    """Every learner's settings' names, each once (a search may sample them)."""
    return tuple(dict.fromkeys(n for name in LEARNERS for n in settings_names(name)))


def owner(setting: str) -> str | None:
    """The first learner that has this setting (None: no learner's)."""
    return next((name for name in LEARNERS if setting in settings_names(name)), None)


def own_settings(learner: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Those of `values` that are this learner's settings."""
    names = settings_names(learner)
    return {k: v for k, v in values.items() if k in names}


def settings_in_effect(learner: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting of the learner with `values` set (validated: ValueError on a bad one)."""
    settings = _entry(learner).settings_class(**own_settings(learner, values))
    return dataclasses.asdict(settings)


def make_learner(learner: str, values: Mapping[str, Any] | None = None) -> Learner:
    """The learner with its settings from `values` (keys of other learners ignored)."""
    cls = _entry(learner)
    return cls(cls.settings_class(**own_settings(learner, values or {})))


def _entry(learner: str) -> type[Learner]:
    return registered(LEARNERS, "learner", learner)


__all__ = [
    "LEARNERS",
    "Learner",
    "Ranks",
    "all_settings",
    "learner_of",
    "make_learner",
    "own_settings",
    "owner",
    "settings_in_effect",
    "settings_names",
]
