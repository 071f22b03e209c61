"""The reward tasks' environments: the maze's walls, moves, reward and teleport; the cue-reward
task's trials and scoring; reproducibility; the measured reference levels; the Gymnasium view."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from gymnasium.utils.env_checker import check_env

from sweep.plan import make_cells
from sweep.spec import SpecError, parse_spec
from sweep.tasks import levels, make_task
from sweep.tasks.cue_reward import NO_CUE, CueRewardEnv, CueRewardSettings
from sweep.tasks.gym_env import RewardTaskEnv
from sweep.tasks.maze import (
    LEVELS,
    MazeEnv,
    MazeSettings,
    MazeTask,
    expected_reward,
    layout,
    memoryless_best,
)
from sweep.tasks.reward import measured_reward, oracle_actions, random_actions
from tests.support.registries import REWARD_TASKS
from tests.support.sweeps import sweep, tiny_spec

UP, DOWN, LEFT, RIGHT = range(4)


@pytest.mark.parametrize("size", [5, 9, 13])
def test_the_centre_pillar_is_cleared_as_in_the_reference(size: int) -> None:
    """backpropamine maze/batch.py: `lab[CTR, CTR] = 0`, the maze's one landmark; at 5 x 5
    an open 3 x 3 room."""
    grid = layout(size)
    wall = grid.wall.view(size, size)
    centre = size // 2
    assert not wall[centre, centre] and grid.centre == centre * size + centre
    pillars = [(r, c) for r in range(2, size - 1, 2) for c in range(2, size - 1, 2)]
    assert all(bool(wall[r, c]) == ((r, c) != (centre, centre)) for r, c in pillars)
    if size == 5:
        assert not wall[1:4, 1:4].any()
    assert grid.centre not in grid.goals.tolist()
    assert len(grid.goals) == len(grid.free) - 1


def test_the_agent_starts_in_the_centre_and_the_reward_is_never_there() -> None:
    env, _ = _maze(batch=512, size=9)
    assert torch.all(env.position == env.grid.centre)
    assert torch.all(env.goal != env.grid.centre)
    assert len(env.goal.unique()) == len(env.grid.goals)  # every other free cell is drawn
    env, _ = _maze(batch=512, size=9, start="random")
    assert len(env.position.unique()) > 1 and torch.all(env.position != env.goal)
    assert not env.grid.wall[env.position].any()


def test_maze_walls_are_the_border_and_the_even_even_cells() -> None:
    grid = layout(7)  # its centre (3, 3) holds no pillar: nothing to clear
    wall = grid.wall.view(7, 7)
    for r in range(7):
        for c in range(7):
            expected = r in (0, 6) or c in (0, 6) or (r % 2 == 0 and c % 2 == 0)
            assert bool(wall[r, c]) == expected, (r, c)
    assert len(grid.free) == 5 * 5 - 4
    # the view of (1, 1): the corner of the border above and left, free to the right/below
    view = grid.view[1 * 7 + 1].view(3, 3)
    assert view.tolist() == [[1, 1, 1], [1, 0, 0], [1, 0, 1]]


def _maze(batch: int = 64, seed: int = 0, **settings: object) -> tuple[MazeEnv, torch.Tensor]:
    env = MazeEnv(MazeSettings(**{"size": 5, "steps": 50, **settings}))  # type: ignore[arg-type]
    return env, env.reset(batch, torch.Generator().manual_seed(seed))


def test_maze_moves_stop_at_walls_and_cost_the_wall_penalty() -> None:
    env, obs = _maze(wall_penalty=0.5)
    size = 5
    assert obs.shape == (64, 16)
    for action, delta in ((UP, -size), (DOWN, size), (LEFT, -1), (RIGHT, 1)):
        before = env.position.clone()
        goal = env.goal.clone()
        _, reward = env.step(torch.full((64,), action))
        target = before + delta
        blocked = env.grid.wall[target]
        found = ~blocked & (target == goal)
        moved = ~blocked & ~found
        assert torch.equal(env.position[blocked], before[blocked])
        assert torch.equal(env.position[moved], target[moved])
        assert torch.equal(reward[blocked], torch.full((int(blocked.sum()),), -0.5))
        assert torch.all(reward[moved] == 0)
        assert not env.grid.wall[env.position].any()


def test_reaching_the_reward_pays_ten_and_teleports_to_another_free_cell() -> None:
    env, _ = _maze(batch=256)
    total_found = 0
    for _ in range(50):
        goal = env.goal.clone()
        actions = env.oracle()
        target = env.grid.moves[env.position, actions]
        found = target == goal
        obs, reward = env.step(actions)
        assert torch.equal(reward, found.float() * 10.0)
        assert torch.all(env.position[found] != goal[found])  # moved away from it
        assert not env.grid.wall[env.position].any()
        assert torch.equal(obs[:, 9], reward)  # the next observation shows the reward
        assert torch.equal(env.goal, goal)  # the reward stays put all episode
        total_found += int(found.sum())
    assert total_found > 256  # the oracle finds it again and again


def test_the_observation_shows_view_previous_action_and_time() -> None:
    env, obs = _maze(batch=8)
    assert torch.equal(obs[:, :9], env.grid.view[env.position])
    assert torch.all(obs[:, 10:14] == 0) and torch.all(obs[:, 14] == 0)
    obs, _ = env.step(torch.full((8,), RIGHT))
    assert torch.all(obs[:, 10 + RIGHT] == 1) and obs[:, 10:14].sum() == 8
    assert torch.allclose(obs[:, 14], torch.full((8,), 1 / 50)) and torch.all(obs[:, 15] == 1)


def _trajectory(env: MazeEnv | CueRewardEnv, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    seen = [env.reset(16, generator)]
    for _t in range(40):
        obs, reward = env.step(torch.arange(16) % env.actions)
        seen += [obs, reward]
    return seen


@pytest.mark.parametrize(
    "env", [MazeEnv(MazeSettings(size=7)), CueRewardEnv(CueRewardSettings(steps=40))]
)
def test_same_generator_same_episodes(env: MazeEnv | CueRewardEnv) -> None:
    first, again, other = _trajectory(env, 1), _trajectory(env, 1), _trajectory(env, 2)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("start", ["centre", "random"])
def test_a_maze_of_members_is_each_members_own_maze(start: str) -> None:
    """Given one generator per member, a maze plays K blocks of episodes, block k exactly the
    episodes (observations, rewards, draws) of a maze reset with the k-th generator alone."""
    settings = MazeSettings(size=7, start=start)  # type: ignore[arg-type]
    seeds, batch = (3, 4, 5), 16
    together = MazeEnv(settings)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    seen = [together.reset(batch, generators)]
    alone = [MazeEnv(settings) for _ in seeds]
    own = [torch.Generator().manual_seed(s) for s in seeds]
    seen_alone = [[env.reset(batch, g)] for env, g in zip(alone, own, strict=True)]
    for t in range(60):  # past many rewards found: teleports drawn
        actions = (torch.arange(batch * len(seeds)) * 7 + t) % 4
        seen += list(together.step(actions))
        for m, env in enumerate(alone):
            seen_alone[m] += list(env.step(actions[m * batch : (m + 1) * batch]))
    for m in range(len(seeds)):
        block = [x[m * batch : (m + 1) * batch] for x in seen]
        assert all(torch.equal(a, b) for a, b in zip(block, seen_alone[m], strict=True))
        assert torch.equal(generators[m].get_state(), own[m].get_state())
    assert sum(float(r.sum()) for r in seen[2::2]) > 0  # rewards were found


def test_cue_reward_trials_follow_the_protocol() -> None:
    settings = CueRewardSettings(cues=4, cue_size=20, steps=120)
    env = CueRewardEnv(settings)
    env.reset(32, torch.Generator().manual_seed(0))
    go = settings.cues
    for b in range(32):
        cues = env.cues[b]
        assert len({tuple(c.tolist()) for c in cues}) == 4  # distinct
        line = env.timeline[b].tolist()
        gos = [t for t, x in enumerate(line) if x == go]
        assert len(gos) >= 120 // 8 - 1
        # every trial: a blank, two distinct cues among blanks, Go, a blank; 5..8 steps
        start = 0
        for g in gos:
            trial = line[start : g + 2]
            if g + 1 >= 120:
                break
            assert 5 <= len(trial) <= 8, trial
            assert trial[0] == NO_CUE and trial[-1] == NO_CUE and trial[-2] == go
            shown = [x for x in trial[1:-2] if x != NO_CUE]
            assert len(shown) == 2 and len(set(shown)) == 2
            start = g + 2


def test_cue_reward_scores_the_go_step_as_the_reference_code_does() -> None:
    """At Go: respond after the rewarded cue, or withhold without it: +1; else -1. Nothing
    at other steps (the action penalty is 0 by default)."""
    settings = CueRewardSettings(cues=4, cue_size=20, steps=120, action_penalty=0.25)
    env = CueRewardEnv(settings)
    generator = torch.Generator().manual_seed(3)
    env.reset(64, generator)
    for t in range(120):
        actions = torch.randint(0, 2, (64,), generator=generator)
        go = env.timeline[:, t] == settings.cues
        rewarded = env.rewarded_go[:, t]
        _, reward = env.step(actions)
        right = (actions == 1) == rewarded
        expected = torch.where(go, torch.where(right, 1.0, -1.0), 0.0) - 0.25 * (actions == 1)
        assert torch.equal(reward, expected)
        assert not rewarded[~go].any()


def test_the_cue_is_shown_with_its_bits_and_go_has_its_own_channel() -> None:
    env = CueRewardEnv(CueRewardSettings(cues=4, cue_size=20, steps=60))
    obs = env.reset(8, torch.Generator().manual_seed(0))
    for t in range(59):
        shown = env.timeline[:, t]
        for b in range(8):
            cue = int(shown[b])
            bits = obs[b, :20]
            assert torch.equal(bits, env.cues[b, cue]) if 0 <= cue < 4 else not bits.any()
            assert obs[b, 20] == (cue == 4)
        obs, _ = env.step(torch.zeros(8, dtype=torch.long))


@pytest.mark.parametrize("task", REWARD_TASKS)
def test_chance_is_a_random_policy_measured_and_the_oracle_beats_it(task: str) -> None:
    made = [make_task(task, level) for level in levels(task)]
    for t in made:
        env = t.environment()  # type: ignore[attr-defined]
        assert t.chance == measured_reward(env, t.steps, random_actions)
        oracle = t.references["oracle"]
        assert oracle == measured_reward(env, t.steps, oracle_actions)
        assert oracle > t.solved_threshold > t.chance
        assert t.goal == "max" and t.metric == "reward"
    assert len({t.chance for t in made}) == len(made)  # measured per level, not a constant


def test_a_random_policy_earns_about_nothing_on_cue_reward() -> None:
    chance = make_task("cue_reward", "backpropamine").chance
    assert abs(chance) < 0.5


def test_unknown_level_lists_the_ladder() -> None:
    with pytest.raises(ValueError, match=re.escape(", ".join(levels("maze")))):
        make_task("maze", "huge")
    with pytest.raises(ValueError, match="odd and at least 5"):
        make_task("maze", None, {"size": 6})
    with pytest.raises(ValueError, match="fewer than cues=4"):
        make_task("cue_reward", None, {"cue_size": 1})


@pytest.mark.parametrize("task", REWARD_TASKS)
def test_one_episode_is_a_gymnasium_env(task: str) -> None:
    env = RewardTaskEnv(make_task(task, levels(task)[0]))  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)
    first, _ = env.reset(seed=5)
    again, _ = RewardTaskEnv(make_task(task, "tiny")).reset(seed=5)  # type: ignore[arg-type]
    assert (first == again).all()
    steps = 0
    truncated = False
    while not truncated:
        obs, _reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and not terminated
        steps += 1
    assert steps == env.task.steps


def _maze_spec(**changes: Any) -> dict[str, Any]:
    spec = tiny_spec(Path("/nonexistent"), task="maze", difficulties=["tiny", "small"])
    spec["search"]["space"] = {
        "lr": {"loguniform": [1.0e-4, 1.0e-2]},
        "gamma": {"uniform": [0.8, 0.99]},
        "entropy_coef": {"loguniform": [1.0e-3, 0.1]},
        "value_coef": {"choice": [0.1, 0.5]},
    }
    spec.update(changes)
    return spec


def test_a_maze_sweep_searches_the_a2c_coefficients() -> None:
    cells = make_cells(parse_spec(_maze_spec()))
    assert len(cells) == 6
    assert {c.task.descriptor.metric for c in cells} == {"reward"}
    assert all(c.task.descriptor.chance < c.task.descriptor.solved_threshold for c in cells)


def test_a2c_coefficients_are_searched_only_for_reward_tasks() -> None:
    spec = _maze_spec(task="patterns", difficulties=["trivial"])
    with pytest.raises(SpecError) as raised:
        parse_spec(spec)
    lines = raised.value.errors
    mistake = "a setting of the a2c learner; this task learns by supervised"
    assert len(lines) == 3 and all(x.endswith(mistake) for x in lines)
    assert lines[0].startswith("search.space.gamma: ")


def test_a_reward_sweep_trains_with_one_worker_per_trial() -> None:
    one = r"resources.workers: 2: task 'maze' learns by a2c and trains with one worker"
    with pytest.raises(SpecError, match=one):
        parse_spec(_maze_spec(resources={"workers": 2, "cpu": 1}))


def test_sweep_train_on_the_maze_prints_what_its_numbers_mean() -> None:
    args = ["--task", "maze", "--difficulty", "tiny", "--model", "plastic"]
    small = ["--episodes", "8", "--batch-size", "4", "--eval-every", "8", "--eval-episodes", "4"]
    done = sweep("train", *args, "--param", "modulation=simple", *small, "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    task = make_task("maze", "tiny")
    assert record["metric"] == "reward" and record["goal"] == "max"
    assert record["chance"] == task.chance
    assert record["solved_threshold"] == task.solved_threshold
    assert record["final_reward"] == record["final_value"] and record["done"] is True
    assert record["best_reward"] == record["best_value"] >= record["final_reward"]


def test_sweep_train_on_an_unknown_maze_level_lists_the_ladder(tmp_path: Path) -> None:
    args = ["--task", "maze", "--difficulty", "13x13", "--model", "plastic"]
    done = sweep("train", *args, cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert (
        "'13x13'" in done.stderr and "tiny, small, paper-2018, large, backpropamine" in done.stderr
    )


@pytest.mark.parametrize("start", ["centre", "random"])
def test_the_exact_expectation_is_what_simulation_measures(start: str) -> None:
    """The memoryless reference's objective, checked on the uniform policy: its exact
    expected reward is the mean reward of simulated episodes."""
    settings = MazeSettings(size=7, steps=60, start=start)  # type: ignore[arg-type]
    views = len(torch.unique(layout(7).view, dim=0))
    exact = expected_reward(settings, torch.zeros(views, 4)).item()
    simulated = measured_reward(MazeEnv(settings), settings.steps, random_actions, 8192)
    assert simulated == pytest.approx(exact, rel=0.05)  # about 4 standard errors


@pytest.mark.slow
@pytest.mark.parametrize("level", list(LEVELS))
def test_every_maze_level_is_solvable_and_needs_memory(level: str) -> None:
    """Chance < the best memoryless policy found < the solved threshold < the oracle: an
    agent that reaches the threshold remembers something a reactive policy cannot."""
    task = MazeTask.from_level(level)
    memoryless = memoryless_best(task.config)
    assert task.chance < memoryless < task.solved_threshold < task.references["oracle"]
    assert memoryless > 1.5 * task.chance  # the search did find a better reactive policy
