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
    entropy of the sampled action, the value estimate, the reward ((T, K, B) when K
    members play, `play_members`)."""

    log_probs: Tensor
    entropies: Tensor
    concentrations: Tensor  # sum_a p(a)^2, the Simpson index of the policy
    values: Tensor
    rewards: Tensor

    @property
    def episode_rewards(self) -> Tensor:
        """(B,) total reward of each episode ((K, B) in a population's rollout)."""
        return self.rewards.sum(0)


def sample(probs: Tensor, generators: Sequence[torch.Generator]) -> Tensor:
    """One action per row of `probs` (K, B, A), member k's (B, A) drawn with `generators[k]`:
    `torch.multinomial(p, 1, generator=g)`'s own method on the CPU (exponential noise q drawn
    like p, the argmax of p / q), so the same draws and the same actions, but one division and
    one argmax for all the members. Unlike `multinomial` it does not refuse a NaN probability
    (no check, no sync): a member whose policy is NaN gets a NaN loss, and diverges alone."""
    noise = [
        torch.empty_like(p).exponential_(generator=g)
        for p, g in zip(probs, generators, strict=True)
    ]
    return (probs / torch.stack(noise)).argmax(-1)  # (K, B)


class _Record:
    """One batch's steps as the model plays them (all the members', in a population): the
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
        action = sample(probs.detach().cpu().unsqueeze(0), [generator])[0].to(out.device)
        self.log_probs.append(log_p.gather(1, action.unsqueeze(1)).squeeze(1))
        self.entropies.append(-(probs * log_p).sum(-1))
        self.concentrations.append(probs.square().sum(-1))
        self.values.append(value)
        return action

    def act_members(
        self, out: Tensor, actions: int, generators: Sequence[torch.Generator]
    ) -> Tensor:
        """`act` for K members at once: `out` (K, B, actions + 1), member k's actions drawn
        with `generators[k]` (the same draws as its `act` alone): (K, B)."""
        logits, value = out[..., :actions], out[..., actions]
        log_p = torch.log_softmax(logits, dim=-1)  # (K, B, A)
        probs = log_p.exp()
        action = sample(probs.detach().cpu(), generators).to(out.device)
        self.log_probs.append(log_p.gather(2, action.unsqueeze(2)).squeeze(2))
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


class _MemberEnvs:
    """The members' environments: one environment of all K * B episodes when the task's
    can batch members (`members_batched`: its `reset` takes one generator per member, each
    drawing for its own block of `batch_size` episodes), else one environment per member,
    stepped one after another. Observations (K, B, inputs), rewards (K, B)."""

    def __init__(
        self,
        task: RewardTask,
        batch_size: int,
        generators: Sequence[torch.Generator],
        device: torch.device | str,
    ):
        self.size, self.batch = len(generators), batch_size
        env = task.environment()
        if getattr(env, "members_batched", False):
            self.envs = [env]
            self.first = env.reset(batch_size, generators, device)  # type: ignore[arg-type]
        else:
            self.envs = [env] + [task.environment() for _ in generators[1:]]
            self.first = torch.cat(
                [e.reset(batch_size, g, device) for e, g in zip(self.envs, generators, strict=True)]
            )
        self.first = self.first.view(self.size, batch_size, -1)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Apply `actions` (K, B): the next observations and the rewards."""
        flat = actions.reshape(-1)
        if len(self.envs) == 1:
            obs, reward = self.envs[0].step(flat)
        else:
            steps = [e.step(a) for e, a in zip(self.envs, flat.split(self.batch), strict=True)]
            obs, reward = (torch.cat(parts) for parts in zip(*steps, strict=True))
        return obs.view(self.size, self.batch, -1), reward.view(self.size, self.batch)


def play_members(
    members: Members,
    task: RewardTask,
    batch_size: int,
    generators: Sequence[torch.Generator],
    device: torch.device | str = "cpu",
) -> Rollout:
    """Each member plays `batch_size` episodes as `play` would with its generator (its own
    episodes, its draws in the same order), the members stepped together: one rollout of
    (T, K, B) tensors. Only the draws are made member by member (a generator each); every
    other operation of a step is one operation for all the members."""
    envs = _MemberEnvs(task, batch_size, generators, device)
    obs = envs.first
    state = members.initial_state(batch_size, device)
    record = _Record()
    for _ in range(task.steps):
        out, state = members.step(obs, state)  # (K, B, actions + 1)
        obs, reward = envs.step(record.act_members(out, task.actions, generators))
        record.rewards.append(reward)
    return record.rollout()


def discounted_returns(rewards: Tensor, gamma: float | Tensor) -> Tensor:
    """R_t = r_t + gamma * R_{t+1}, R_T = 0 (fixed-length episodes): (T, ...); `gamma` a
    number or a tensor broadcast against one step's rewards (a member's each: (K, 1))."""
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
        return cls.rollout_losses(learners, play_members(members, task, batch, generators, device))

    @staticmethod
    def rollout_losses(learners: Sequence[A2C], rollout: Rollout) -> Tensor:
        """(K,) `learners[k].rollout_loss` of member k's part of a population's rollout
        (T, K, B), bit for bit, computed for all the members at once."""

        def column(values: Sequence[float | bool], dtype: torch.dtype) -> Tensor:
            return torch.tensor(values, dtype=dtype, device=rollout.rewards.device).view(-1, 1)

        settings = [learner.settings for learner in learners]
        real = rollout.rewards.dtype
        returns = discounted_returns(rollout.rewards, column([s.gamma for s in settings], real))
        advantage = returns - rollout.values
        policy = -(rollout.log_probs * advantage.detach())
        # `rollout_loss`'s exploration term, member by member: + coef * sum p^2 or - coef * H
        simpson = column([s.entropy == "simpson" for s in settings], torch.bool)
        signed = [s.entropy_coef if s.entropy == "simpson" else -s.entropy_coef for s in settings]
        explore = column(signed, real) * torch.where(
            simpson, rollout.concentrations, rollout.entropies
        )
        value_coef = column([s.value_coef for s in settings], real)
        terms = policy + value_coef * advantage.square() + explore  # (T, K, B)
        # each member's mean over its own contiguous (T, B), as `rollout_loss` takes it
        return torch.stack([own.mean() for own in terms.transpose(0, 1).contiguous()])

    @classmethod
    def member_totals(
        cls,
        members: Members,
        task: RewardTask,
        batch: int,
        generators: Generators,
        device: torch.device,
    ) -> list[float]:
        rollout = play_members(members, task, batch, generators, device)  # (T, K, B)
        totals: list[float] = rollout.episode_rewards.sum(1).tolist()
        return totals
