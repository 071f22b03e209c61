"""The grid maze (Miconi et al. 2018 §4.4; Backpropamine, Miconi et al. 2019).

An L x L grid with walls on the border and at every (even, even) cell except the centre,
which is cleared: the maze's one landmark (the reference code's `lab[CTR, CTR] = 0`; at 5 x 5
this leaves an open 3 x 3 room). Each episode hides a reward at a random free cell other than
the centre; the agent starts in the centre (`start: centre`, the reference's; `random`: a
random free cell other than the reward's) and sees only the 3 x 3 neighbourhood of walls
around it, the reward and action of its previous step and the time. Stepping onto the reward
earns `reward` (10) and moves the agent to a random free cell (never the reward's), so an
agent that remembers where the reward was can collect it again and again within the
episode's fixed number of steps. Moving into a wall leaves the agent where it is (minus
`wall_penalty`).

Observation (16 channels): the 3 x 3 view (1 = wall, row-major), the previous reward, the
previous action (one-hot, 4), the elapsed fraction of the episode, a constant 1.
Actions: 0 up, 1 down, 2 left, 3 right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass as plain_dataclass
from functools import cache
from typing import Annotated, Any, Literal

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

from sweep.tasks.reward import RewardTaskBase, backpropamine_train, one_hot

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
    start: Literal["centre", "random"] = "centre"
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
    centre: int  # flat index of the centre cell (free: the cleared landmark)
    goals: Tensor  # (F - 1,) flat indices of the cells a reward may hide in: free, not the centre
    rank: Tensor  # (L*L,) a free cell's position in `free` (-1 for walls)
    moves: Tensor  # (L*L, 4) the cell each action leads to (itself when blocked)
    view: Tensor  # (L*L, 9) the 3 x 3 neighbourhood's walls, as floats
    distance: Tensor  # (L*L, L*L) steps between free cells (a large number otherwise)


@cache
def layout(size: int) -> Layout:
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    border = (rows == 0) | (cols == 0) | (rows == size - 1) | (cols == size - 1)
    centre = (size // 2) * size + size // 2
    wall = (border | ((rows % 2 == 0) & (cols % 2 == 0))).reshape(-1)
    wall[centre] = False  # cleared: the one landmark
    cells = torch.arange(size * size)
    moves = torch.empty(size * size, ACTIONS, dtype=torch.long)
    for a, delta in enumerate((-size, size, -1, 1)):  # up, down, left, right
        target = (cells + delta).clamp(0, size * size - 1)
        moves[:, a] = torch.where(wall[target], cells, target)
    offsets = torch.tensor([dr * size + dc for dr in (-1, 0, 1) for dc in (-1, 0, 1)])
    around = (cells.unsqueeze(1) + offsets).clamp(0, size * size - 1)
    free = cells[~wall]
    rank = torch.full((size * size,), -1, dtype=torch.long)
    rank[free] = torch.arange(len(free))
    goals = free[free != centre]
    view = wall[around].float()
    return Layout(wall, free, centre, goals, rank, moves, view, _distances(moves, free, size))


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
    members_batched = True  # `reset` takes one generator per member too

    def __init__(self, settings: MazeSettings):
        self.config = settings
        self.grid = layout(settings.size)

    def reset(
        self,
        batch_size: int,
        generator: torch.Generator | Sequence[torch.Generator],
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """Start `batch_size` episodes drawn with `generator`; given one generator per member
        (`members_batched`), K blocks of `batch_size` episodes, block k drawn with the k-th
        exactly as it would be alone."""
        if isinstance(generator, torch.Generator):
            self.generators = [generator]
        else:
            self.generators = list(generator)
        self.block, self.device, self.t = batch_size, torch.device(device), 0
        grid = self.grid
        self.goal = grid.goals[self._draw(len(grid.goals))]  # (B,) flat cell of the reward
        self.goal_index = grid.rank[self.goal]  # (B,) its place among the free cells
        if self.config.start == "centre":
            self.position = torch.full((len(self.goal),), grid.centre, dtype=torch.long)
        else:
            self.position = self._elsewhere()
        self.last_action = torch.zeros(len(self.goal), dtype=torch.long)
        self.last_reward = torch.zeros(len(self.goal))
        return self._observe()

    def _draw(self, high: int) -> Tensor:
        """A number in [0, high) per episode, each block from its own generator: (B,)."""
        draws = [torch.randint(0, high, (self.block,), generator=g) for g in self.generators]
        return draws[0] if len(draws) == 1 else torch.cat(draws)

    def _elsewhere(self) -> Tensor:
        """A random free cell per episode, never the reward's: (B,)."""
        free = self.grid.free
        k = self._draw(len(free) - 1)
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


# The memoryless reference: a reactive policy, one action distribution per distinct 3 x 3 view,
# trained by gradient ascent on its exact expected reward (below): Adam for this many steps
# from the uniform policy, at each of these (lr, eps); the objective has local optima.
MEMORYLESS_STEPS = 40
MEMORYLESS_RUNS = ((0.3, 0.01), (1.0, 0.1))


def expected_reward(settings: MazeSettings, logits: Tensor) -> Tensor:
    """The exact expected reward per episode of a policy that sees only the 3 x 3 view: logits
    (V, 4), one row per distinct view of a free cell. The agent's position is a Markov chain
    over the cells, followed for every hiding place of the reward at once (goals uniform,
    the start as `settings.start` says): no sampling, differentiable in the logits."""
    grid = layout(settings.size)
    view_of = torch.unique(grid.view, dim=0, return_inverse=True)[1]  # (L*L,) into V views
    policy = torch.softmax(logits, dim=1)[view_of]  # (L*L, 4)
    cells, goals = len(grid.wall), grid.goals
    at_goal = torch.nn.functional.one_hot(goals, cells).float()  # (G, L*L)
    elsewhere = torch.zeros(cells)
    elsewhere[grid.free] = 1.0
    elsewhere = (elsewhere - at_goal) / (len(grid.free) - 1)  # (G, L*L): teleport, not the goal
    if settings.start == "centre":
        where = (
            torch.nn.functional.one_hot(torch.tensor(grid.centre), cells).float().expand_as(at_goal)
        )
    else:
        where = elsewhere
    blocked = (grid.moves == torch.arange(cells).unsqueeze(1)).float()  # (L*L, 4)
    bump = (policy * blocked).sum(1) * settings.wall_penalty  # (L*L,) expected penalty
    targets = grid.moves.reshape(-1)  # (L*L * 4,) where each (cell, action) leads
    flow = policy.reshape(1, cells, ACTIONS)
    jump = elsewhere - at_goal  # the mass that found the reward moves on
    goal_column = goals.unsqueeze(1)
    total = torch.zeros(len(goals))
    for _ in range(settings.steps):
        moved = torch.zeros_like(where).index_add(
            1, targets, (where.unsqueeze(2) * flow).reshape(len(goals), -1)
        )
        found = moved.gather(1, goal_column)  # (G, 1) probability of stepping onto it
        total = total + found.squeeze(1) * settings.reward - where @ bump
        where = moved + found * jump
    return total.mean()


@cache
def memoryless_best(settings: MazeSettings) -> float:
    """The best reward per episode found for a memoryless (reactive) policy: one that acts on
    the current 3 x 3 view alone. A level whose solved threshold lies above it needs memory.
    Gradient ascent from the uniform policy (chance) on the exact expectation, the best of
    `MEMORYLESS_RUNS`: a lower bound on the best such policy, the same number every time."""
    views = len(torch.unique(layout(settings.size).view, dim=0))
    best = -math.inf
    for lr, eps in MEMORYLESS_RUNS:
        logits = torch.zeros(views, ACTIONS, requires_grad=True)
        optimizer = torch.optim.Adam([logits], lr=lr, eps=eps)
        for _ in range(MEMORYLESS_STEPS):
            value = expected_reward(settings, logits)
            best = max(best, value.item())
            optimizer.zero_grad()
            (-value).backward()
            optimizer.step()
        with torch.no_grad():
            best = max(best, expected_reward(settings, logits).item())
    return best


class MazeTask(RewardTaskBase):
    name = "maze"
    settings_class = MazeSettings
    levels = LEVELS
    actions = ACTIONS
    config: MazeSettings
    # backpropamine maze/README.md's command line; Adam's eps: maze/batch.py (1e-4)
    reference_train = backpropamine_train(adam_eps=1e-4, grad_clip=4.0, entropy_coef=0.03)
    reference_eta = 0.01  # maze/batch.py: the plastic network's eta (learned)

    def reference_hidden(self) -> int:
        """100 neurons at 13 x 13 (the reference), in proportion to the side below it."""
        return max(16, round(100 * self.config.size / 13))

    @property
    def observation_bound(self) -> float:
        """No observation channel exceeds this in magnitude (the previous reward's)."""
        return max(1.0, self.config.reward + self.config.wall_penalty)

    @property
    def input_size(self) -> int:
        return VIEW + 1 + ACTIONS + 2

    def environment(self) -> MazeEnv:
        return MazeEnv(self.config)

    @property
    def memoryless(self) -> float:
        """The best reward per episode found for a policy without memory (`memoryless_best`;
        computed on demand, not at every trial: tens of seconds on the largest mazes)."""
        return memoryless_best(self.config)
