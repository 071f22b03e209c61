"""Advantage actor-critic (Backpropamine's A2C), the learner of the reward tasks: the model
plays a batch of episodes in the task's environment, choosing each action from its logits,
and learns from the rewards; evaluation is the mean reward per episode of fresh episodes.

A reward task's model outputs `actions` logits then one value estimate at every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import torch
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as config_dataclass
from torch import Tensor

from sweep.learners.base import Ranks
from sweep.models import Model
from sweep.tasks.reward import RewardTask


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
    log_probs, entropies, concentrations, values, rewards = [], [], [], [], []
    for _ in range(task.steps):
        out, state = model.step(obs, state)  # (B, actions + 1)
        logits, value = out[:, : task.actions], out[:, task.actions]
        log_p = torch.log_softmax(logits, dim=-1)  # (B, A)
        probs = log_p.exp()
        action = torch.multinomial(probs.detach().cpu(), 1, generator=generator).squeeze(1)
        action = action.to(out.device)
        obs, reward = env.step(action)
        log_probs.append(log_p.gather(1, action.unsqueeze(1)).squeeze(1))
        entropies.append(-(probs * log_p).sum(-1))
        concentrations.append(probs.square().sum(-1))
        values.append(value)
        rewards.append(reward)
    stack = torch.stack
    return Rollout(
        stack(log_probs), stack(entropies), stack(concentrations), stack(values), stack(rewards)
    )


def discounted_returns(rewards: Tensor, gamma: float) -> Tensor:
    """R_t = r_t + gamma * R_{t+1}, R_T = 0 (fixed-length episodes): (T, B)."""
    returns = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


class A2C:
    """Plays its own episodes, so it trains with one worker (no data parallelism)."""

    name: ClassVar[str] = "a2c"
    settings_class: ClassVar[type] = A2CSettings
    data_parallel: ClassVar[bool] = False

    def __init__(self, settings: A2CSettings | None = None):
        self.settings = settings or A2CSettings()

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

    @torch.no_grad()
    def evaluate(
        self,
        model: Model,
        task: RewardTask,
        episodes: int,
        batch_size: int,
        generator: torch.Generator,
        device: torch.device,
    ) -> float:
        """Mean reward per episode over `episodes` fresh episodes the model plays (its actions
        sampled from its policy, as in training), in batches of `batch_size`."""
        total, seen = 0.0, 0
        while seen < episodes:
            batch = min(batch_size, episodes - seen)
            total += play(model, task, batch, generator, device).episode_rewards.sum().item()
            seen += batch
        return total / episodes
