"""The grid maze (Miconi et al. 2018 §4.4; Backpropamine, Miconi et al. 2019).

An L x L grid with walls on the border and at every (even, even) cell. Each episode hides a
reward at a random free cell; the agent sees only the 3 x 3 neighbourhood of walls around it,
the reward and action of its previous step and the time. Stepping onto the reward earns
`reward` (10) and moves the agent to a random free cell (never the reward's), so an agent
that remembers where the reward was can collect it again and again within the episode's
fixed number of steps. Moving into a wall leaves the agent where it is (minus
`wall_penalty`).

Observation (16 channels): the 3 x 3 view (1 = wall, row-major), the previous reward, the
previous action (one-hot, 4), the elapsed fraction of the episode, a constant 1.
Actions: 0 up, 1 down, 2 left, 3 right.
"""

from __future__ import annotations

from dataclasses import dataclass as plain_dataclass
from functools import cache
from typing import Annotated, Any

import torch
from pydantic import (
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    field_validator,
)
from pydantic.dataclasses import dataclass
from torch import Tensor

from sweep.tasks.reward import RewardTaskBase, one_hot

ACTIONS = 4
VIEW = 9


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class MazeSettings:
    """Protocol parameters of the maze (defaults: Backpropamine's 13 x 13, 200 steps).
    solved_fraction: a level counts as solved at this fraction of the way from a random
    policy's reward to that of an agent that knows where the reward is."""

    size: PositiveInt = 13
    steps: PositiveInt = 200
    reward: PositiveFloat = 10.0
    wall_penalty: NonNegativeFloat = 0.0
    solved_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5

    @field_validator("size")
    @classmethod
    def _odd(cls, size: int) -> int:
        if size < 5 or size % 2 == 0:
            raise ValueError(f"{size}: the maze's side must be odd and at least 5")
        return size


# The difficulty ladder, easiest first: the 2018 paper's 9 x 9 (250 steps) and
# Backpropamine's 13 x 13 (200 steps) among the levels.
LEVELS: dict[str, dict[str, Any]] = {
    "tiny": dict(size=5, steps=50),
    "small": dict(size=7, steps=100),
    "paper-2018": dict(size=9, steps=250),
    "large": dict(size=11, steps=200),
    "backpropamine": dict(size=13, steps=200),
}


@plain_dataclass(frozen=True)
class Layout:
    """The fixed grid of a side: which cells are walls, the free cells, where each action
    leads from each cell, the shortest-path distance between any two cells."""

    wall: Tensor  # (L*L,) bool
    free: Tensor  # (F,) flat indices of the free cells
    moves: Tensor  # (L*L, 4) the cell each action leads to (itself when blocked)
    view: Tensor  # (L*L, 9) the 3 x 3 neighbourhood's walls, as floats
    distance: Tensor  # (L*L, L*L) steps between free cells (a large number otherwise)


@cache
def layout(size: int) -> Layout:
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    border = (rows == 0) | (cols == 0) | (rows == size - 1) | (cols == size - 1)
    wall = (border | ((rows % 2 == 0) & (cols % 2 == 0))).reshape(-1)
    cells = torch.arange(size * size)
    moves = torch.empty(size * size, ACTIONS, dtype=torch.long)
    for a, delta in enumerate((-size, size, -1, 1)):  # up, down, left, right
        target = (cells + delta).clamp(0, size * size - 1)
        moves[:, a] = torch.where(wall[target], cells, target)
    offsets = torch.tensor([dr * size + dc for dr in (-1, 0, 1) for dc in (-1, 0, 1)])
    around = (cells.unsqueeze(1) + offsets).clamp(0, size * size - 1)
    free = cells[~wall]
    return Layout(wall, free, moves, wall[around].float(), _distances(moves, free, size))


def _distances(moves: Tensor, free: Tensor, size: int) -> Tensor:
    """Breadth-first search from every free cell (the grids are small: plain lists)."""
    far = size * size
    step, open_cells = moves.tolist(), set(free.tolist())
    rows = []
    for source in range(far):
        row = [far] * far
        if source in open_cells:
            row[source], frontier, d = 0, [source], 0
            while frontier:
                d += 1
                frontier = list({n for cell in frontier for n in step[cell] if row[n] > d})
                for cell in frontier:
                    row[cell] = d
        rows.append(row)
    return torch.tensor(rows)


class MazeEnv:
    """A batch of mazes of one side, stepped together (see the module's docstring)."""

    actions = ACTIONS

    def __init__(self, settings: MazeSettings):
        self.config = settings
        self.grid = layout(settings.size)

    def reset(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> Tensor:
        self.generator, self.device, self.t = generator, torch.device(device), 0
        free = self.grid.free
        self.goal_index = torch.randint(0, len(free), (batch_size,), generator=generator)
        self.goal = free[self.goal_index]  # (B,) flat cell of the hidden reward
        self.position = self._elsewhere()
        self.last_action = torch.zeros(batch_size, dtype=torch.long)
        self.last_reward = torch.zeros(batch_size)
        return self._observe()

    def _elsewhere(self) -> Tensor:
        """A random free cell per episode, never the reward's: (B,)."""
        free = self.grid.free
        k = torch.randint(0, len(free) - 1, self.goal_index.shape, generator=self.generator)
        return free[k + (k >= self.goal_index).long()]

    def _observe(self) -> Tensor:
        steps = self.config.steps
        parts = [
            self.grid.view[self.position],  # (B, 9)
            self.last_reward.unsqueeze(1),
            one_hot(self.last_action, ACTIONS) * (self.t > 0),  # no action before the first
            torch.full((len(self.goal), 1), self.t / steps),
            torch.ones(len(self.goal), 1),
        ]
        return torch.cat(parts, dim=1).to(self.device)  # (B, 16)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        actions = actions.cpu()
        target = self.grid.moves[self.position, actions]
        blocked = target == self.position
        found = target == self.goal
        # drawn every step for every episode, so the stream never depends on the outcomes
        teleport = self._elsewhere()
        self.position = torch.where(found, teleport, target)
        cfg = self.config
        reward = found.float() * cfg.reward - blocked.float() * cfg.wall_penalty
        self.last_action, self.last_reward, self.t = actions, reward, self.t + 1
        return self._observe(), reward.to(self.device)

    def oracle(self) -> Tensor:
        """The first action on a shortest path to the reward."""
        reach = self.grid.moves[self.position]  # (B, 4)
        left = self.grid.distance[reach, self.goal.unsqueeze(1)]  # (B, 4)
        return left.argmin(dim=1)


class MazeTask(RewardTaskBase):
    name = "maze"
    settings_class = MazeSettings
    levels = LEVELS
    actions = ACTIONS
    config: MazeSettings

    @property
    def observation_bound(self) -> float:
        """No observation channel exceeds this in magnitude (the previous reward's)."""
        return max(1.0, self.config.reward + self.config.wall_penalty)

    @property
    def input_size(self) -> int:
        return VIEW + 1 + ACTIONS + 2

    def environment(self) -> MazeEnv:
        return MazeEnv(self.config)
