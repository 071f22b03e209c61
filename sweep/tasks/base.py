"""The task interface: pure episode generation, a training loss and a scored metric."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self, TypeVar

import torch
from pydantic import ValidationError
from torch import Tensor

from sweep.defaults import Method
from sweep.errors import describe, unknown

S = TypeVar("S")

Split = Literal["train", "eval"]


@dataclass(frozen=True)
class Episode:
    """A batch of episodes. inputs: (T, B, I); targets: (B, O), wanted at the last step;
    mask: (B, O), the outputs the metric scores (None: all)."""

    inputs: Tensor
    targets: Tensor
    mask: Tensor | None = None


class AnyTask(Protocol):
    """What every task declares, whatever its learner (the supervised `Task`, the reward
    tasks' `sweep.tasks.reward.RewardTask`)."""

    name: str
    level: str  # the difficulty's name ("custom" when set parameter by parameter)
    metric: str  # name of the primary metric
    goal: str  # "min": lower is better (errors); "max": higher is better (rewards)
    learner: str  # how a model learns it (`sweep.learners`): "supervised", "a2c"
    chance: float  # the metric of a network that learned nothing
    solved_threshold: float  # solved when the metric reaches this (`sweep.store.reached`)

    @property
    def input_size(self) -> int: ...

    @property
    def output_size(self) -> int: ...

    @property
    def steps(self) -> int: ...


class Task(AnyTask, Protocol):
    """A memory task at one difficulty. Every random draw uses the generator it is given."""

    # Other levels worth drawing beside chance, by name (patterns: the error of copying the
    # cue, where every model starts); empty when there are none.
    references: dict[str, float]

    @property
    def picture(self) -> tuple[int, int] | None:
        """(rows, cols) of a target drawn as a picture; None for a task whose targets are not
        pictures (finished trials record reconstructions only for picture tasks)."""
        ...

    def settings(self) -> dict[str, object]:
        """The resolved protocol parameters, for results rows."""
        ...

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        split: Split = "train",
    ) -> Episode:
        """`split="eval"` draws from material never used in training, where the task has
        such a thing (images: held-out photographs)."""
        ...

    def loss(self, outputs: Tensor, episode: Episode) -> Tensor:
        """Differentiable training loss of outputs (T, B, O); a scalar, the mean over the
        batch (data-parallel trials weight each rank's share by its size)."""
        ...

    def score(self, outputs: Tensor, episode: Episode) -> float:
        """The primary metric of outputs on the episode, averaged over the batch."""
        ...


def learner_of(task: Any) -> str:
    """The learner a task (its class or an instance) names; "supervised" when it names none
    (a plugin's task may leave it)."""
    return str(getattr(task, "learner", "supervised"))


def resolve_settings(
    settings_class: type[S],
    levels: Mapping[str, Mapping[str, Any]],
    task: str,
    level: str | None,
    overrides: Mapping[str, Any] | None,
) -> S:
    """A ladder level (None: the class defaults) with some parameters set directly; bad
    input is one ValueError line naming the value and the valid choices."""
    if level is not None and level not in levels:
        raise ValueError(unknown(f"{task} difficulty", level, list(levels)))
    try:
        return settings_class(**{**levels.get(level or "", {}), **(overrides or {})})
    except ValidationError as e:
        raise ValueError(describe(e, schema=settings_class)[0]) from None


def sequence_steps(cycles: int, items: int, prestime: int, delay: int, test_time: int) -> int:
    return cycles * items * (prestime + delay) + test_time


def show_sequence(
    items: Tensor,
    cue: Tensor,
    cycles: int,
    prestime: int,
    delay: int,
    test_time: int,
    generator: torch.Generator,
) -> Tensor:
    """The input sequence of a memory episode: each of the K items shown for `prestime`
    steps then `delay` blank steps, in a new random order every cycle; then the cue for
    `test_time` steps; plus a constant bias channel. items: (B, K, D), cue: (B, D)
    -> (T, B, D + 1)."""
    b, k, d = items.shape
    steps = sequence_steps(cycles, k, prestime, delay, test_time)
    inputs = torch.zeros(steps, b, d + 1)
    for cycle in range(cycles):
        order = torch.argsort(torch.rand(b, k, generator=generator), dim=1)  # (B, K)
        shown = torch.gather(items, 1, order.unsqueeze(2).expand(b, k, d))
        for i in range(k):
            start = (cycle * k + i) * (prestime + delay)
            inputs[start : start + prestime, :, :d] = shown[:, i]
    inputs[-test_time:, :, :d] = cue
    inputs[:, :, d] = 1.0  # bias
    return inputs


class TaskBase:
    """What the built-in tasks share, given on the class their `name`, `settings_class` (a
    pydantic dataclass of the protocol parameters) and `levels` (the ladder): construction
    from a level, and the settings as a row's `task.*` values."""

    name: str
    settings_class: type
    levels: Mapping[str, Mapping[str, Any]]
    config: Any  # an instance of the settings class

    def __init__(self, settings: Any, level: str = "custom"):
        self.config = settings
        self.level = level

    @classmethod
    def from_level(
        cls, level: str | None, overrides: Mapping[str, Any] | None = None, name: str | None = None
    ) -> Self:
        """A ladder level (None: the defaults) with some parameters set directly."""
        settings: Any = resolve_settings(cls.settings_class, cls.levels, cls.name, level, overrides)
        return cls(settings, name or level or "custom")

    def settings(self) -> dict[str, object]:
        return dataclasses.asdict(self.config)


class SequenceTask(TaskBase):
    """A supervised memory task whose episode shows K items, then a cue (`show_sequence`),
    and wants the whole item back at the last step. Its settings have `cycles`, `prestime`,
    `delay`, `test_time` and `input_scale`; a subclass names the setting that counts the items
    an episode shows (`items`) and draws them (`draw`)."""

    goal = "min"
    learner = "supervised"
    method = Method()  # the 2018 paper's code: its defaults are the families' own
    items: str  # the setting K: the items an episode shows

    def draw(
        self, batch_size: int, generator: torch.Generator, split: Split
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """An episode's items (B, K, D), its cue (B, D), the targets (B, D) and the part of
        them the metric scores (B, D), or None: all."""
        raise NotImplementedError

    @property
    def steps(self) -> int:
        c = self.config
        k = getattr(c, self.items)
        return sequence_steps(c.cycles, k, c.prestime, c.delay, c.test_time)

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        split: Split = "train",
    ) -> Episode:
        c = self.config
        items, cue, targets, mask = self.draw(batch_size, generator, split)
        inputs = show_sequence(items, cue, c.cycles, c.prestime, c.delay, c.test_time, generator)
        scored = None if mask is None else mask.to(device)
        return Episode((inputs * c.input_scale).to(device), targets.to(device), scored)

    def loss(self, outputs: Tensor, episode: Episode) -> Tensor:
        """Squared error on the last step (over the whole item), summed over outputs as in the
        reference, mean over the batch."""
        return (outputs[-1] - episode.targets).square().sum(-1).mean()
