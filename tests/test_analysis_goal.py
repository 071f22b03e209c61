"""Analysis of a sweep whose metric is better higher (a reward task, goal "max"), read from
Parquet tables that the sweep's own writer wrote with the store's schema; and the reference
levels and provenance of a schema-2 sweep."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis import Results, Summary, load, summarize
from analysis.plots import (
    Scale,
    draw_final_error,
    draw_frontier,
    draw_learning_curves,
    draw_parameters,
    final_error_info,
    frontier_info,
    learning_curves_info,
    parameters_info,
)
from analysis.report import write_report
from analysis.summary import frontier_text
from analysis.tables import CURVES_COLUMNS
from sweep.store import SCHEMA_VERSION, VERSIONED
from tests.support.folders import sweep_folder
from tests.support.rows import seeds

LEVELS = ["5x5", "7x7", "9x9"]
# A reward per episode: a random policy's differs per maze (the task measures it).
CHANCE = {"5x5": 1.0, "7x7": 0.5, "9x9": 0.25}
SOLVED_AT = 5.0  # reward at or above which a seed counts as solved
GOOD = np.linspace(8.0, 9.0, 10)  # ten seeds, clearly better than
POOR = np.linspace(2.0, 3.0, 10)
WORSE = np.linspace(0.0, 1.0, 10)  # lowest: the winner if the goal were ignored
PROVENANCE = {
    "git_commit": "abc123",
    "device": "cpu",
    "node": "n1",
    "gpu_ids": "",  # a CPU run
    "schema_version": SCHEMA_VERSION,
    "platform": "Linux-6.1-x86_64-with-glibc2.36",
    **{f"version.{p}": f"{p}-1.0" for p in VERSIONED},
}


def reward_seeds(difficulty: str, model: str, rewards: Any, **values: Any) -> list[dict]:
    """Confirmation trials of a reward task; a seed whose reward reached the threshold
    solved it (after 100 episodes)."""
    rows = seeds(difficulty, model, rewards, **values)
    for row in rows:
        row.update(
            task="maze",
            metric="reward",
            goal="max",
            chance=CHANCE[difficulty],
            solved_threshold=SOLVED_AT,
            references=json.dumps({}),
            episodes_to_solve=100 if row["final_value"] >= SOLVED_AT else None,
        )
    return rows


def write_sweep(root: Path, name: str, task: str, rows: list[dict[str, Any]]) -> Path:
    """A resolved spec.yaml with unset options as null (as `sweep run` writes it)."""
    spec = {
        "task": task,
        "difficulties": LEVELS if task == "maze" else ["easy", "hard"],
        "models": {
            "plastic": {"family": "plastic", "match_parameters": None},
            "lstm": {"family": "lstm", "match_parameters": None, "hidden": 64},
            "rnn": {"family": "rnn", "match_parameters": "plastic"},
        },
        "search": {"space": {"lr": {"uniform": None, "loguniform": [1e-4, 1e-2]}}},
        "plugin_root": None,
    }
    return sweep_folder(root, name, spec, trials=rows, provenance=PROVENANCE)


def maze_rows() -> list[dict[str, Any]]:
    """5x5: plastic best (highest reward), lstm, rnn lowest; 7x7: nobody solves; 9x9:
    plastic solves again (an island beyond 7x7). Search trials of 5x5/plastic with rewards
    1, 7 and 3 (the second is the best)."""
    rows = reward_seeds("5x5", "plastic", GOOD)
    rows += reward_seeds("5x5", "lstm", POOR) + reward_seeds("5x5", "rnn", WORSE)
    rows += reward_seeds("7x7", "plastic", POOR) + reward_seeds("7x7", "lstm", WORSE)
    rows += reward_seeds("7x7", "rnn", WORSE - 0.5)
    rows += reward_seeds("9x9", "plastic", GOOD - 1) + reward_seeds("9x9", "lstm", POOR)
    rows += reward_seeds("9x9", "rnn", WORSE)
    for number, reward in enumerate((1.0, 7.0, 3.0)):
        (search,) = reward_seeds("5x5", "plastic", [reward], phase="search", optuna_trial=number)
        rows.append({**search, "hp.lr": 10.0 ** -(number + 2)})
    return rows


@pytest.fixture(scope="module")
def maze(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("goal"), "maze", "maze", maze_rows())


@pytest.fixture(scope="module")
def summary(maze: Path) -> Summary:
    return summarize(load(maze))


def test_the_winner_has_the_highest_reward_and_a_positive_margin(summary: Summary) -> None:
    assert summary.task.goal == "max" and summary.task.metric == "reward"
    assert summary.task.direction == "higher is better"
    top = summary.headline.set_index("difficulty")
    assert list(top["winner"]) == ["plastic", "plastic", "plastic"]
    assert list(top["runner_up"]) == ["lstm", "lstm", "lstm"]
    assert top.loc["5x5", "median"] == pytest.approx(np.median(GOOD))
    assert top.loc["5x5", "q25"] == pytest.approx(np.quantile(GOOD, 0.25))
    # the margin is how much better the winner is: positive, whichever way the metric points
    assert top.loc["5x5", "margin"] == pytest.approx(np.median(GOOD) - np.median(POOR))
    assert (top["margin"] > 0).all()
    assert top["significant"].all() and set(top["goal"]) == {"max"}
    assert set(summary.cells["goal"]) == {"max"}


def test_solved_frontier_and_island_follow_the_reward(summary: Summary) -> None:
    cells = summary.cells.set_index(["difficulty", "model"])
    assert cells.loc[("5x5", "plastic"), "solve_rate"] == 1.0
    assert cells.loc[("7x7", "plastic"), "solve_rate"] == 0.0
    found = summary.frontier.set_index("model")
    assert found.loc["plastic", "frontier"] == "5x5"
    assert found.loc["plastic", "stops_at"] == "7x7"
    assert found.loc["plastic", "islands"] == ("9x9",)
    assert found["frontier"].isna()["lstm"] and found.loc["lstm", "islands"] == ()
    (plastic,) = summary.frontier[summary.frontier["model"] == "plastic"].to_dict("records")
    assert frontier_text(plastic) == (
        "plastic: frontier 5x5; also solves 9x9 (island beyond 7x7, which it does not solve)"
    )


def test_the_best_configuration_is_the_highest_reward(summary: Summary) -> None:
    (best,) = summary.best.to_dict("records")
    assert (best["optuna_trial"], best["final_value"], best["hp.lr"]) == (1, 7.0, 1e-3)


def test_figures_say_reward_and_higher_is_better(summary: Summary) -> None:
    info = final_error_info(summary)
    assert info.scale == Scale("linear")  # rewards: no log scale
    assert info.levels == {"chance": (1.0, 0.5, 0.25)} and info.thresholds == (5.0,) * 3
    fig = draw_final_error(info)
    (ax,) = fig.axes
    assert ax.get_ylabel() == "final reward (per episode; higher is better)"
    assert ax.get_yscale() == "linear"
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{d}\n* plastic" for d in LEVELS]
    title = " ".join(fig.get_suptitle().split())
    assert "final reward, median and IQR" in title and "highest median" in title
    box = ax.get_legend()
    assert box is not None
    legend = [t.get_text() for t in box.get_texts()]
    # chance differs per maze: one segment per level, named once; the threshold is the same
    assert legend[:2] == ["chance", "solved (≥ 5)"]

    curves = draw_learning_curves(learning_curves_info(summary))
    assert curves.get_supylabel() == "evaluation reward (per episode; higher is better)"

    frontier = draw_frontier(frontier_info(summary))
    assert len(frontier.axes[0].patches) == 2  # plastic's frontier box and its island
    assert "(island)" in " ".join(t.get_text() for t in frontier.axes[0].texts)
    assert "median final reward" in frontier.get_suptitle()

    parameters = draw_parameters(parameters_info(summary))
    assert parameters.axes[0].get_ylabel() == "final reward (per episode; higher is better)"


def test_the_report_of_a_reward_sweep(maze: Path, tmp_path: Path) -> None:
    page = write_report(load(maze), tmp_path / "out").read_text()
    table = re.search(r"<table class='headline'>(.*?)</table>", page, re.S)
    assert table is not None
    assert "median final reward [IQR]" in table[1] and "margin (winner better by)" in table[1]
    winners = re.findall(r"<tr class='significant'><td>([^<]*)</td><td>([^<]*)</td>", table[1])
    assert winners == [(d, "plastic") for d in LEVELS]
    margin = np.median(GOOD) - np.median(POOR)
    assert f"<td>{margin:.3g}</td>" in table[1]
    assert "Winner: highest median final reward (higher is better)" in page
    assert "plastic: frontier 5x5; also solves 9x9 (island beyond 7x7" in page
    assert "Final reward against difficulty" in page
    assert "median final error" not in page


def test_report_provenance_and_spec(maze: Path, tmp_path: Path) -> None:
    page = write_report(load(maze), tmp_path / "out").read_text()
    for package in VERSIONED:
        assert f"<td>{package} version (trials)</td><td>{package}-1.0 (93)</td>" in page
    assert "<td>platform (trials)</td><td>Linux-6.1-x86_64-with-glibc2.36 (93)</td>" in page
    assert "GPU ids" not in page  # a CPU run: no empty column
    spec = re.search(r"<h3>The spec that ran \(spec.yaml\)</h3>\s*<pre>(.*?)</pre>", page, re.S)
    assert spec is not None
    assert "null" not in spec[1] and "plugin_root" not in spec[1]
    assert "match_parameters: plastic" in spec[1] and "hidden: 64" in spec[1]
    assert "IQR: the inter-quartile range across seeds, from the 25th to the 75th" in page


def test_pattern_figures_draw_the_reference_levels(tmp_path: Path) -> None:
    rows = seeds("easy", "plastic", [0.0, 0.01, 0.02]) + seeds("easy", "rnn", [0.3, 0.26, 0.28])
    rows += seeds("hard", "plastic", [0.1, 0.2]) + seeds("hard", "rnn", [0.4, 0.45])
    degrade = {"easy": 0.5, "hard": 0.3}
    for row in rows:
        cue = degrade[row["difficulty"]] / 2
        row.update(goal="min", references=json.dumps({"copy the cue": cue}))
    summary = summarize(load(write_sweep(tmp_path, "patterns", "patterns", rows)))
    levels = summary.levels.set_index(["difficulty", "name"])["value"]
    assert levels.to_dict() == {
        ("easy", "chance"): 0.5,
        ("easy", "copy the cue"): 0.25,
        ("hard", "chance"): 0.5,
        ("hard", "copy the cue"): 0.15,
    }
    info = final_error_info(summary)
    assert info.levels == {"chance": (0.5, 0.5), "copy the cue": (0.25, 0.15)}
    # an exact 0 among errors spanning decades: logarithmic above the decade of the smallest
    # positive value drawn (plastic's 25th percentile at "easy", 0.005), linear below
    assert (info.scale.name, info.scale.linthresh) == ("symlog", 0.001)
    fig = draw_final_error(info)
    (ax,) = fig.axes
    assert ax.get_yscale() == "symlog" and ax.get_ylim()[0] == 0
    assert ax.get_ylim()[1] > 0.5  # chance, the highest line, is not drawn on the frame
    box = ax.get_legend()
    assert box is not None
    legend = [t.get_text() for t in box.get_texts()]
    assert legend[:3] == ["chance (0.5)", "copy the cue", "solved (≤ 0.02)"]
    # the reference differs per level: a segment over each level's slot
    segments = [c for c in ax.collections if c.get_label() == "copy the cue"]
    assert len(segments) == 1 and len(ax.collections) >= 2
    parameters = draw_parameters(parameters_info(summary))
    drawn = parameters.axes[0].get_legend()
    assert drawn is not None
    # only chance is the same at every level; copying the cue differs, so it cannot be drawn
    assert [t.get_text() for t in drawn.get_texts()][:1] == ["chance (0.5)"]
    assert "copy the cue" not in [t.get_text() for t in drawn.get_texts()]
    curves = draw_learning_curves(learning_curves_info(summary))
    (legend_box,) = curves.legends
    assert "copy the cue" in [t.get_text() for t in legend_box.get_texts()]
    assert not math.isnan(info.thresholds[0])


def test_sweeps_of_either_goal_summarize_together() -> None:
    maze = [{**r, "sweep": "maze"} for r in maze_rows()]
    patterns = seeds("easy", "plastic", [0.1, 0.2, 0.3]) + seeds("easy", "rnn", [0.4, 0.5, 0.6])
    rows = maze + [{**r, "sweep": "patterns", "goal": "min"} for r in patterns]
    found = summarize(Results(pd.DataFrame(rows), pd.DataFrame(columns=list(CURVES_COLUMNS))))
    winners = found.headline.set_index(["sweep", "difficulty"])["winner"]
    assert winners[("maze", "5x5")] == "plastic"  # the highest reward
    assert winners[("patterns", "easy")] == "plastic"  # the lowest error
    assert (found.headline["margin"] > 0).all()
    assert found.task.goal == "max"  # the first sweep's metric
