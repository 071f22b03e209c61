"""Advantage actor-critic (Backpropamine's A2C), the learner of the reward tasks: the model
plays a batch of episodes in the task's environment, choosing each action from its logits,
and learns from the rewards; evaluation is the mean reward per episode of fresh episodes.

A reward task's model outputs `actions` logits then one value estimate at every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

import torch
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as config_dataclass
from torch import Tensor

from sweep.learners.base import Activations, Generators, Learner, Ranks
from sweep.models import Model
from sweep.tasks.reward import RewardTask

if TYPE_CHECKING:
    from sweep.members import Members


@config_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class A2CSettings:
    """gamma: discount of future rewards in the returns. entropy: the exploration term,
    "shannon" (a bonus on the policy's entropy) or "simpson" (a penalty on sum p^2, the
    Backpropamine code's). entropy_coef: its weight. value_coef: weight of the value
    estimate's squared error. Defaults: Backpropamine's (a task's reference may set them)."""

    gamma: Annotated[float, Field(ge=0, le=1)] = 0.9
    entropy_coef: Annotated[float, Field(ge=0)] = 0.03
    value_coef: Annotated[float, Field(ge=0)] = 0.1
    entropy: Literal["shannon", "simpson"] = "shannon"


@dataclass(frozen=True)
class Rollout:
    """One batch of episodes played by the model: per step (T, B) the log-probability and
    entropy of the sampled action, the value estimate, the reward."""

    log_probs: Tensor
    entropies: Tensor
    concentrations: Tensor  # sum_a p(a)^2, the Simpson index of the policy
    values: Tensor
    rewards: Tensor

    @property
    def episode_rewards(self) -> Tensor:
        """(B,) total reward of each episode."""
        return self.rewards.sum(0)


class _Record:
    """One batch's steps as the model plays them (one member's, in a population): the
    action chosen at each step and what `Rollout` holds."""

    def __init__(self) -> None:
        self.log_probs: list[Tensor] = []
        self.entropies: list[Tensor] = []
        self.concentrations: list[Tensor] = []
        self.values: list[Tensor] = []
        self.rewards: list[Tensor] = []

    def act(self, out: Tensor, actions: int, generator: torch.Generator) -> Tensor:
        """The actions (B,) sampled from the logits of `out` (B, actions + 1) with
        `generator`; records their log-probability, the policy's entropy and the value."""
        logits, value = out[:, :actions], out[:, actions]
        log_p = torch.log_softmax(logits, dim=-1)  # (B, A)
        probs = log_p.exp()
        action = torch.multinomial(probs.detach().cpu(), 1, generator=generator).squeeze(1)
        action = action.to(out.device)
        self.log_probs.append(log_p.gather(1, action.unsqueeze(1)).squeeze(1))
        self.entropies.append(-(probs * log_p).sum(-1))
        self.concentrations.append(probs.square().sum(-1))
        self.values.append(value)
        return action

    def rollout(self) -> Rollout:
        stack = torch.stack
        return Rollout(
            stack(self.log_probs),
            stack(self.entropies),
            stack(self.concentrations),
            stack(self.values),
            stack(self.rewards),
        )


def play(
    model: Model,
    task: RewardTask,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> Rollout:
    """Run `batch_size` episodes with the model choosing the actions step by step (actions
    sampled from its logits with `generator`)."""
    env = task.environment()
    obs = env.reset(batch_size, generator, device)
    state = model.initial_state(batch_size, device)
    record = _Record()
    for _ in range(task.steps):
        out, state = model.step(obs, state)  # (B, actions + 1)
        obs, reward = env.step(record.act(out, task.actions, generator))
        record.rewards.append(reward)
    return record.rollout()


def play_members(
    members: Members,
    task: RewardTask,
    batch_size: int,
    generators: Sequence[torch.Generator],
    device: torch.device | str = "cpu",
) -> list[Rollout]:
    """Each member plays `batch_size` episodes as `play` would with its generator (its own
    environment, its draws in the same order), the members stepped together: one rollout
    per member."""
    envs = [task.environment() for _ in generators]
    obs = [env.reset(batch_size, g, device) for env, g in zip(envs, generators, strict=True)]
    state = members.initial_state(batch_size, device)
    records = [_Record() for _ in generators]
    for _ in range(task.steps):
        out, state = members.step(torch.stack(obs), state)  # (K, B, actions + 1)
        for k, (env, record, generator) in enumerate(zip(envs, records, generators, strict=True)):
            obs[k], reward = env.step(record.act(out[k], task.actions, generator))
            record.rewards.append(reward)
    return [record.rollout() for record in records]


def discounted_returns(rewards: Tensor, gamma: float) -> Tensor:
    """R_t = r_t + gamma * R_{t+1}, R_T = 0 (fixed-length episodes): (T, B)."""
    returns = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


class A2C(Learner):
    """Plays its own episodes, so it trains with one worker (no data parallelism)."""

    name: ClassVar[str] = "a2c"
    settings_class: ClassVar[type] = A2CSettings
    data_parallel: ClassVar[bool] = False
    settings: A2CSettings

    def rollout_loss(self, rollout: Rollout) -> Tensor:
        """Mean over steps and episodes of -log pi(a) * advantage + value_coef * (R - V)^2
        plus the exploration term, with R the discounted return to the episode's end (the
        advantage R - V does not train the value through the policy term). Exploration:
        "shannon" - entropy_coef * H(pi); "simpson" + entropy_coef * sum_a pi(a)^2
        (Backpropamine's code: a penalty on concentrated policies)."""
        s = self.settings
        returns = discounted_returns(rollout.rewards, s.gamma)  # (T, B)
        advantage = returns - rollout.values
        policy = -(rollout.log_probs * advantage.detach())
        if s.entropy == "simpson":
            explore = s.entropy_coef * rollout.concentrations
        else:
            explore = -s.entropy_coef * rollout.entropies
        return (policy + s.value_coef * advantage.square() + explore).mean()

    def loss(
        self,
        model: Model,
        task: RewardTask,
        batch: int,
        generator: torch.Generator,
        device: torch.device,
        ranks: Ranks,
    ) -> Tensor:
        """The loss of `batch` fresh episodes the model plays (one rank: `ranks` is 1 of 1)."""
        return self.rollout_loss(play(model, task, batch, generator, device))

    def batch_total(
        self,
        model: Model,
        task: RewardTask,
        batch: int,
        generator: torch.Generator,
        device: torch.device,
    ) -> float:
        """The reward of `batch` fresh episodes the model plays (its actions sampled from its
        policy, as in training): `evaluate` is the mean reward per episode."""
        return play(model, task, batch, generator, device).episode_rewards.sum().item()

    @classmethod
    def update_bytes(cls, activations: Activations, task: RewardTask, batch: int) -> int:
        """`step` by step under plain autograd: every step's graph is kept until backward; per
        step the observation and, for the policy and value head, the outputs, log-softmax,
        probabilities, entropy terms and their gradients (about 8 per output)."""
        steps = task.steps
        own = 4 * batch * steps * (task.input_size + 8 * task.output_size)
        return activations(batch, steps, "steps") + own

    @classmethod
    def member_losses(
        cls,
        learners: Sequence[A2C],
        members: Members,
        task: RewardTask,
        batch: int,
        generators: Generators,
        device: torch.device,
    ) -> Tensor:
        """(K,) each member's `loss` of `batch` fresh episodes it plays from its generator,
        with its own learner's settings (`learners[k]`)."""
        rollouts = play_members(members, task, batch, generators, device)
        return torch.stack(
            [learner.rollout_loss(r) for learner, r in zip(learners, rollouts, strict=True)]
        )

    @classmethod
    def member_totals(
        cls,
        members: Members,
        task: RewardTask,
        batch: int,
        generators: Generators,
        device: torch.device,
    ) -> list[float]:
        rollouts = play_members(members, task, batch, generators, device)
        return [r.episode_rewards.sum().item() for r in rollouts]
