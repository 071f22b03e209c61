"""A real maze sweep on embedded Ray: reward trials run through the trainable, checkpoint and
land in the tables with their A2C settings and the task's goal and references."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sweep.tasks import make_task
from tests.support.sweeps import sweep, tiny_spec, write_spec


@pytest.mark.slow
def test_a_maze_sweep_records_rewards(tmp_path: Path) -> None:
    spec = tiny_spec(
        tmp_path,
        name="maze",
        task="maze",
        difficulties=[{"short": {"level": "tiny", "steps": 10}}],
        models={
            "modulated": {"family": "plastic", "hidden": 8, "modulation": "simple"},
            "rnn": {"family": "rnn", "match_parameters": "modulated"},
        },
        train={"episodes": 32, "batch_size": 8, "eval_every": 16, "eval_episodes": 8},
    )
    spec["search"] = {"trials_per_cell": 1, "seed": 0, "space": {"gamma": {"uniform": [0.8, 0.99]}}}
    done = sweep("run", str(write_spec(tmp_path, spec)))
    assert done.returncode == 0, done.stderr
    trials = pd.read_parquet(tmp_path / "results" / "maze" / "trials")
    assert len(trials) == 2 * (1 + 2) and set(trials["status"]) == {"completed"}
    assert set(trials["task.size"]) == {5} and set(trials["task.steps"]) == {10}
    assert trials["hp.gamma"].between(0.8, 0.99).all()
    assert set(trials["hp.entropy_coef"]) == {0.03}
    oracle = make_task("maze", "tiny", {"steps": 10}).references["oracle"]
    assert trials["final_value"].between(0, oracle).all()
    assert (trials["best_value"] >= trials["final_value"]).all()  # the best is the highest
    curves = pd.read_parquet(tmp_path / "results" / "maze" / "curves")
    assert set(curves["episodes"]) == {16, 32}
