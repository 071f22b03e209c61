"""What reward tasks share: a batched torch environment stepped with a model's actions and its
reference levels measured by simulation. They learn by advantage actor-critic
(`sweep.learners.a2c`).

A reward task's model outputs `actions` logits then one value estimate at every step; the
agent samples its action from the logits. An episode has a fixed number of steps; every
random draw (the episode's hidden layout, in-episode draws, the actions) comes from the
generator given at `reset`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from sweep.defaults import BACKPROPAMINE, Method
from sweep.tasks.base import AnyTask, TaskBase

# The reference levels are the mean reward per episode over this many episodes drawn from a
# fixed seed: a task measures them itself, once per set of protocol parameters.
REFERENCE_EPISODES = 512
REFERENCE_SEED = 20_190_501


class RewardEnv(Protocol):
    """A batch of environments, one per batch element, stepped together as tensors.

    An environment whose class sets `members_batched = True` also takes, at `reset`, one
    generator per member of a population: K blocks of `batch_size` episodes, block k drawn
    with the k-th generator exactly as alone (`sweep.learners.a2c.play_members` then steps
    the K members' episodes as one batch; other environments, one per member)."""

    actions: int  # the agent picks one of this many actions each step

    def reset(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> Tensor:
        """Start `batch_size` fresh episodes; every later random draw also uses `generator`.
        Returns the first observation (B, input_size)."""
        ...

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Apply actions (B,) int64: the next observation (B, input_size) and the reward
        (B,) the actions earned (which the next observation also shows)."""
        ...

    def oracle(self) -> Tensor:
        """The actions (B,) of an agent that knows what is hidden (the reward's place, the
        rewarded cue): the task's upper reference."""
        ...


@runtime_checkable
class RewardTask(AnyTask, Protocol):
    """A task learned from reward inside each episode (`sweep.learners.a2c`)."""

    @property
    def actions(self) -> int: ...

    @property
    def observation_bound(self) -> float: ...

    def environment(self) -> RewardEnv: ...


Policy = Callable[[RewardEnv, torch.Generator, int], Tensor]


def random_actions(env: RewardEnv, generator: torch.Generator, batch: int) -> Tensor:
    return torch.randint(0, env.actions, (batch,), generator=generator)


def oracle_actions(env: RewardEnv, generator: torch.Generator, batch: int) -> Tensor:
    return env.oracle()


def measured_reward(
    env: RewardEnv, steps: int, policy: Policy, episodes: int = REFERENCE_EPISODES
) -> float:
    """Mean reward per episode of a fixed policy over `episodes` episodes from a fixed seed."""
    generator = torch.Generator().manual_seed(REFERENCE_SEED)
    env.reset(episodes, generator)
    total = torch.zeros(episodes)
    for _ in range(steps):
        _, reward = env.step(policy(env, generator, episodes))
        total += reward
    return float(total.mean())


@dataclass(frozen=True)
class References:
    """A task's measured reference levels (reward per episode)."""

    chance: float  # a uniformly random policy
    oracle: float  # an agent that knows what is hidden

    def threshold(self, fraction: float) -> float:
        """Solved: at least `fraction` of the way from chance to the oracle."""
        return self.chance + fraction * (self.oracle - self.chance)

    def as_dict(self) -> dict[str, float]:
        """The levels worth drawing beside chance (`Task.references`)."""
        return {"oracle": self.oracle}


def measure_references(env: RewardEnv, steps: int) -> References:
    return References(
        measured_reward(env, steps, random_actions), measured_reward(env, steps, oracle_actions)
    )


# A task's reference levels, measured once per set of protocol parameters (each task has its
# own settings class, so its settings never equal another task's).
_MEASURED: dict[Any, References] = {}


def backpropamine_train(adam_eps: float, grad_clip: float, entropy_coef: float) -> dict[str, Any]:
    """The training settings of a Backpropamine command line (its tasks' READMEs), given
    those its tasks differ in: A2C with the Simpson exploration penalty, batch 30, gamma 0.9,
    value_coef 0.1; lr 1e-3 (the reference's 1e-4 is for 6M episodes: README, parity table)."""
    return dict(
        batch_size=30,
        lr=1e-3,
        adam_eps=adam_eps,
        grad_clip=grad_clip,
        gamma=0.9,
        entropy="simpson",
        entropy_coef=entropy_coef,
        value_coef=0.1,
    )


class RewardTaskBase(TaskBase):
    """What every reward task has in common, given its `name`, `settings_class` (a frozen
    settings dataclass with `steps` and `solved_fraction`), `levels` (the ladder),
    `actions`, `input_size`, `observation_bound` and `environment()`: the metric and its
    goal, construction from a level, the measured reference levels and the solved
    threshold, and the output layout (action logits, then one value estimate)."""

    actions: int
    metric = "reward"
    goal = "max"
    learner = "a2c"
    # Backpropamine's training settings for this task (its README's command line), and the
    # unmodulated plastic network's eta there
    # (a plugin's reward task may leave these: TrainConfig's defaults, Backpropamine's maze eta
    # and 64 neurons)
    reference_train: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    reference_eta: ClassVar[float] = 0.01

    def reference_hidden(self) -> int:
        """The plastic network's neurons at this level: the reference's, scaled to it."""
        return 64

    @property
    def method(self) -> Method:
        """Backpropamine's code: its A2C settings, and a plastic network with a hidden layer
        (the direct architecture's tanh outputs would bound the logits and the value)."""
        plastic = {"hidden": self.reference_hidden(), "eta": self.reference_eta}
        return Method(BACKPROPAMINE, dict(self.reference_train), plastic)

    def environment(self) -> RewardEnv:
        raise NotImplementedError

    def _measured(self) -> References:
        found = _MEASURED.get(self.config)
        if found is None:
            found = measure_references(self.environment(), self.config.steps)
            _MEASURED[self.config] = found
        return found

    @property
    def chance(self) -> float:
        """A uniformly random policy's reward per episode (measured, cached)."""
        return self._measured().chance

    @property
    def references(self) -> dict[str, float]:
        return self._measured().as_dict()

    @property
    def solved_threshold(self) -> float:
        return self._measured().threshold(self.config.solved_fraction)

    @property
    def picture(self) -> None:
        return None

    @property
    def output_size(self) -> int:
        return self.actions + 1  # action logits, then the value estimate

    @property
    def steps(self) -> int:
        return int(self.config.steps)


def one_hot(index: Tensor, size: int) -> Tensor:
    return torch.nn.functional.one_hot(index, size).float()
