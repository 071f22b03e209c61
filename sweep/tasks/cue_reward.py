"""Cue-reward (stimulus-response) association (Backpropamine, Miconi et al. 2019).

Each episode draws `cues` distinct random +-1 cues of `cue_size` bits and makes one of them
the rewarded cue. The episode is a run of trials: a trial of `cues // 2 + 3 + U{0, cues-1}`
steps shows `cues // 2` distinct cues, once each at random places between a blank first step
and a Go signal on the next-to-last step (the last step is blank). The agent's action at the
Go step is scored: responding (action 1) when the rewarded cue was among the trial's cues,
or withholding (action 0) when it was not, earns +`reward`; anything else -`reward`. So
withholding is scored as in the reference code (+1 when right), not as its README says.
Responding at any other step costs `action_penalty` (0, the code's default). A random policy
earns about 0; the agent must find out which cue pays by trial and error in each episode.

Observation (`cue_size + 6` channels): the cue shown (zeros when none), the Go signal, the
previous reward, the previous action (one-hot, 2), the elapsed fraction of the episode, a
constant 1. Actions: 0 withhold, 1 respond.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import (
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    model_validator,
)
from pydantic.dataclasses import dataclass
from torch import Tensor

from sweep.tasks.reward import RewardTaskBase, backpropamine_train, one_hot

ACTIONS = 2
RESPOND = 1
NO_CUE = -1


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class CueRewardSettings:
    """Protocol parameters of the cue-reward task (defaults: Backpropamine's 4 cues of 20
    bits, 120 steps). solved_fraction: solved at this fraction of the way from a random
    policy's reward to that of an agent that knows the rewarded cue."""

    cues: Annotated[int, Field(ge=2)] = 4
    cue_size: PositiveInt = 20
    steps: PositiveInt = 120
    reward: PositiveFloat = 1.0
    action_penalty: NonNegativeFloat = 0.0
    solved_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5

    @model_validator(mode="after")
    def _distinct_cues_exist(self) -> CueRewardSettings:
        if 2**self.cue_size < self.cues:
            raise ValueError(
                f"cue_size {self.cue_size} has fewer than cues={self.cues} distinct patterns"
            )
        return self


# The difficulty ladder, easiest first; the last is Backpropamine's setting.
LEVELS: dict[str, dict[str, Any]] = {
    "tiny": dict(cues=2, cue_size=4, steps=40),
    "small": dict(cues=2, cue_size=8, steps=60),
    "medium": dict(cues=3, cue_size=10, steps=80),
    "large": dict(cues=4, cue_size=16, steps=100),
    "backpropamine": dict(cues=4, cue_size=20, steps=120),
}


def distinct_cues(batch: int, cues: int, bits: int, generator: torch.Generator) -> Tensor:
    """(B, C, S) +-1 cues, distinct within each episode (episodes with a repeat redrawn)."""
    drawn = torch.randint(0, 2, (batch, cues, bits), generator=generator).float() * 2 - 1
    while True:
        same = (drawn.unsqueeze(1) == drawn.unsqueeze(2)).all(-1)  # (B, C, C)
        repeated = (same.sum((1, 2)) > cues).nonzero().squeeze(1)
        if len(repeated) == 0:
            return drawn
        again = torch.randint(0, 2, (len(repeated), cues, bits), generator=generator)
        drawn[repeated] = again.float() * 2 - 1


def schedule(
    batch: int, settings: CueRewardSettings, rewarded: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """The episode's timeline (B, T): the cue shown at each step (NO_CUE for a blank, `cues`
    for the Go signal), and (B, T) True at the Go steps of trials that showed the rewarded
    cue."""
    c, steps = settings.cues, settings.steps
    shown = c // 2
    trials = steps // (shown + 3) + 1  # enough to fill the episode
    longest = shown + 3 + c - 1
    lengths = shown + 3 + torch.randint(0, c, (batch, trials), generator=generator)  # (B, K)
    which = torch.argsort(torch.rand(batch, trials, c, generator=generator), -1)[..., :shown]
    # the cues go to distinct random slots among the trial's middle steps (1 .. length - 3)
    middle = torch.arange(longest - 3)
    keys = torch.rand(batch, trials, longest - 3, generator=generator)
    keys = torch.where(middle < (lengths - 3).unsqueeze(-1), keys, 2.0)
    slots = torch.argsort(keys, -1)[..., :shown] + 1  # (B, K, shown)
    content = torch.full((batch, trials, longest), NO_CUE, dtype=torch.long)
    content.scatter_(2, slots, which)
    content.scatter_(2, (lengths - 2).unsqueeze(-1), c)  # Go on the next-to-last step
    has = (which == rewarded.view(-1, 1, 1)).any(-1)  # (B, K)
    timeline = torch.full((batch, steps), NO_CUE, dtype=torch.long)
    rewarded_go = torch.zeros(batch, steps, dtype=torch.bool)
    starts = lengths.cumsum(1) - lengths
    rows = torch.arange(batch).unsqueeze(1).expand(batch, trials)
    for j in range(longest):
        at = starts + j
        keep = (j < lengths) & (at < steps)
        b, t, cue = rows[keep], at[keep], content[..., j][keep]
        timeline[b, t] = cue
        rewarded_go[b, t] = (cue == c) & has[keep]
    return timeline, rewarded_go


class CueRewardEnv:
    """A batch of cue-reward episodes, stepped together (see the module's docstring)."""

    actions = ACTIONS

    def __init__(self, settings: CueRewardSettings):
        self.config = settings

    def reset(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> Tensor:
        cfg = self.config
        self.device, self.t = torch.device(device), 0
        self.cues = distinct_cues(batch_size, cfg.cues, cfg.cue_size, generator)
        rewarded = torch.randint(0, cfg.cues, (batch_size,), generator=generator)
        self.timeline, self.rewarded_go = schedule(batch_size, cfg, rewarded, generator)
        self.last_action = torch.zeros(batch_size, dtype=torch.long)
        self.last_reward = torch.zeros(batch_size)
        return self._observe()

    def _observe(self) -> Tensor:
        cfg, batch = self.config, len(self.timeline)
        shown = self.timeline[:, min(self.t, cfg.steps - 1)]  # (B,)
        is_cue = (shown >= 0) & (shown < cfg.cues)
        cue = self.cues[torch.arange(batch), shown.clamp(0, cfg.cues - 1)]  # (B, S)
        parts = [
            cue * is_cue.unsqueeze(1),
            (shown == cfg.cues).float().unsqueeze(1),  # Go
            self.last_reward.unsqueeze(1),
            one_hot(self.last_action, ACTIONS) * (self.t > 0),
            torch.full((batch, 1), self.t / cfg.steps),
            torch.ones(batch, 1),
        ]
        return torch.cat(parts, dim=1).to(self.device)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.config
        actions = actions.cpu()
        respond = actions == RESPOND
        go = self.timeline[:, self.t] == cfg.cues
        right = respond == self.rewarded_go[:, self.t]
        scored = torch.where(right, cfg.reward, -cfg.reward) * go
        reward = scored - respond.float() * cfg.action_penalty
        self.last_action, self.last_reward, self.t = actions, reward, self.t + 1
        return self._observe(), reward.to(self.device)

    def oracle(self) -> Tensor:
        """Respond exactly at the Go steps of trials that showed the rewarded cue."""
        return self.rewarded_go[:, self.t].long()


class CueRewardTask(RewardTaskBase):
    name = "cue_reward"
    settings_class = CueRewardSettings
    levels = LEVELS
    actions = ACTIONS
    config: CueRewardSettings
    # backpropamine sr/README.md's command line (Adam eps 1e-6, batch 30, clip 2, entropy 0.1)
    reference_train = backpropamine_train(adam_eps=1e-6, grad_clip=2.0, entropy_coef=0.1)
    reference_eta = 0.1  # sr/modul.py: the plastic network's eta (learned)

    def reference_hidden(self) -> int:
        """200 neurons at 4 cues of 20 bits (the reference), scaled by the square root of
        the bits to remember below it."""
        bits = self.config.cues * self.config.cue_size
        return max(16, round(200 * (bits / 80) ** 0.5))

    @property
    def observation_bound(self) -> float:
        """No observation channel exceeds this in magnitude (the previous reward's)."""
        return max(1.0, self.config.reward + self.config.action_penalty)

    @property
    def input_size(self) -> int:
        return self.config.cue_size + 6

    def environment(self) -> CueRewardEnv:
        return CueRewardEnv(self.config)
