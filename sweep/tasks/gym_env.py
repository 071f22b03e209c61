"""One episode of a reward task as a `gymnasium.Env`, for inspecting it with familiar tools
(`gymnasium.utils.env_checker.check_env`, wrappers, a random agent). Training never uses
it: the training path steps whole batches of episodes as tensors (`sweep.tasks.reward`).

    env = RewardTaskEnv(make_task("maze", "tiny"))
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

`reset(seed=...)` follows Gymnasium: a seed re-seeds the episode stream, `reset()` without
one continues it. Episodes have a fixed length: `truncated` turns True at the last step,
`terminated` never does.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from sweep.tasks.reward import RewardEnv, RewardTask


class RewardTaskEnv(gymnasium.Env[np.ndarray, np.int64]):
    def __init__(self, task: RewardTask):
        self.task = task
        bound = task.observation_bound
        self.observation_space = spaces.Box(-bound, bound, (task.input_size,), np.float32)
        self.action_space = spaces.Discrete(task.actions)
        self._env: RewardEnv = task.environment()
        self._generator: torch.Generator | None = None
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or self._generator is None:
            # the torch stream follows Gymnasium's own seeding (np_random)
            start = int(self.np_random.integers(2**62))
            self._generator = torch.Generator().manual_seed(start)
        self._t = 0
        obs = self._env.reset(1, self._generator)
        return obs[0].numpy().astype(np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward = self._env.step(torch.tensor([int(action)]))
        self._t += 1
        truncated = self._t >= self.task.steps
        return obs[0].numpy().astype(np.float32), float(reward[0]), False, truncated, {}
