"""Summaries across seeds on hand-built trials and curves frames, with known answers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest

from analysis import (
    Results,
    Sweep,
    best_configs,
    cell_summary,
    comparisons,
    curve_summary,
    frontier,
    headline,
    param_importance,
    summarize,
)
from analysis.stats import rank_sum
from analysis.summary import frontier_text, goal_of, seed_limit, typical_reconstructions
from tests.support.rows import HIGH, LOW, pictures, seeds, trial


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def test_cell_summary_median_iqr_mean_and_solves() -> None:
    rows = seeds("easy", "plastic", [0.1, 0.2, 0.3, 0.4, 0.5])
    for row in rows:
        row["solved_threshold"] = 0.2
    rows[0]["episodes_to_solve"], rows[1]["episodes_to_solve"] = 100, 300
    # Touched the threshold at an evaluation and fell back: the trained network did not
    # solve the level, so this seed is not counted solved.
    rows[2]["episodes_to_solve"] = 50
    rows += [
        trial("easy", "plastic", 0.0, status="diverged"),  # left out, counted
        trial("easy", "plastic", math.nan, status="failed"),
        trial("easy", "plastic", 0.0, phase="search"),  # not a confirmation seed
    ]
    (cell,) = cell_summary(frame(rows)).to_dict("records")
    assert (cell["seeds"], cell["diverged"], cell["failed"]) == (5, 1, 1)
    assert (cell["q25"], cell["median"], cell["q75"]) == pytest.approx((0.2, 0.3, 0.4))
    assert "iqr" not in cell  # the IQR is the interval [q25, q75], never its width
    assert cell["mean"] == pytest.approx(0.3) and cell["goal"] == "min"  # no goal: a v1 sweep
    assert cell["ci_low"] < 0.3 < cell["ci_high"]
    assert cell["ci_low"] >= 0.1 and cell["ci_high"] <= 0.5
    assert (cell["solved"], cell["solve_rate"], cell["solve_median"]) == (2, 0.4, 200.0)


def test_a_cell_whose_seeds_all_diverged_has_no_statistics() -> None:
    rows = seeds("easy", "rnn", [0.5, 0.5], status="diverged")
    (cell,) = cell_summary(frame(rows)).to_dict("records")
    assert (cell["seeds"], cell["diverged"]) == (0, 2)
    assert math.isnan(cell["median"]) and math.isnan(cell["solve_rate"])


def test_comparisons_rank_sum_and_holm_per_difficulty() -> None:
    rows = (
        seeds("easy", "plastic", LOW)
        + seeds("easy", "rnn", HIGH)
        + seeds("easy", "lstm", LOW + 0.001)
        + seeds("hard", "plastic", HIGH)
        + seeds("hard", "rnn", HIGH)
    )
    tests = comparisons(frame(rows)).set_index(["difficulty", "model_a", "model_b"])
    p = rank_sum(LOW, HIGH).p
    assert tests.loc[("easy", "plastic", "rnn"), "p"] == pytest.approx(p)
    # three pairs at "easy": the two tiny p-values are scaled by 3 and 2, then made monotone
    assert tests.loc[("easy", "plastic", "rnn"), "p_holm"] == pytest.approx(3 * p)
    assert tests.loc[("easy", "rnn", "lstm"), "p_holm"] == pytest.approx(3 * p)
    assert bool(tests.loc[("easy", "plastic", "rnn"), "significant"])
    assert not tests.loc[("easy", "plastic", "lstm"), "significant"]
    # one pair at "hard", identical groups: its own family, nothing to correct
    assert tests.loc[("hard", "plastic", "rnn"), "p"] == 1.0
    assert tests.loc[("hard", "plastic", "rnn"), "p_holm"] == 1.0


def test_headline_names_the_winner_its_margin_and_significance() -> None:
    rows = (
        seeds("easy", "rnn", HIGH)
        + seeds("easy", "plastic", LOW)
        + seeds("hard", "plastic", HIGH)
        + seeds("hard", "rnn", HIGH)
        + seeds("mid", "plastic", [0.1, 0.2, 0.3])
        + seeds("mid", "rnn", [0.4, 0.5, 0.6])
    )
    trials = frame(rows)
    cells = cell_summary(trials)
    top = headline(cells, comparisons(trials)).set_index("difficulty")
    assert top.loc["easy", "winner"] == "plastic" and top.loc["easy", "runner_up"] == "rnn"
    assert top.loc["easy", "median"] == pytest.approx(np.median(LOW))
    assert top.loc["easy", "margin"] == pytest.approx(np.median(HIGH) - np.median(LOW))
    assert top.loc["easy", "significant"] and top.loc["easy", "verdict"] == "significant"
    assert top.loc["hard", "verdict"] == "tie (equal medians)"
    assert not top.loc["hard", "significant"]
    # 3 seeds a side: a complete separation is still only p = 0.1
    assert top.loc["mid", "winner"] == "plastic" and top.loc["mid", "p_holm"] == pytest.approx(0.1)
    assert top.loc["mid", "verdict"] == "not significant"
    assert top.loc["mid", "best_p"] == pytest.approx(0.1)
    limit = seed_limit(top.reset_index())
    assert limit is not None and "cannot give p below 0.1" in limit


def test_goal_of_rows() -> None:
    assert goal_of(frame(seeds("easy", "plastic", [0.1]))) == "min"  # not recorded: a v1 sweep
    assert goal_of(frame(seeds("easy", "plastic", [0.1], goal="max"))) == "max"
    mixed = frame(seeds("easy", "a", [0.1], goal="max") + seeds("easy", "b", [0.1], goal="min"))
    with pytest.raises(ValueError, match=r"goals \['max', 'min'\]"):
        goal_of(mixed)
    with pytest.raises(ValueError, match="expected one of"):
        goal_of(frame(seeds("easy", "plastic", [0.1], goal="up")))


def test_headline_with_one_model_and_no_seed_limit_with_ten_seeds() -> None:
    trials = frame(seeds("easy", "plastic", LOW) + seeds("hard", "plastic", LOW))
    top = headline(cell_summary(trials), comparisons(trials))
    assert list(top["verdict"]) == ["only model", "only model"]
    ten = frame(seeds("easy", "plastic", LOW) + seeds("easy", "rnn", HIGH))
    assert seed_limit(headline(cell_summary(ten), comparisons(ten))) is None


def _solve_rates(rates: dict[tuple[str, str], float]) -> pd.DataFrame:
    rows = [
        {"sweep": "s", "difficulty": d, "model": m, "solve_rate": r} for (d, m), r in rates.items()
    ]
    return pd.DataFrame(rows)


def test_frontier_is_the_hardest_level_solved_with_every_easier_one() -> None:
    order = ["d1", "d2", "d3", "d4"]
    rates = {
        **{("d1", "x"): 1.0, ("d2", "x"): 0.5, ("d3", "x"): 0.3, ("d4", "x"): 0.6},
        **{(d, "y"): 0.0 for d in order},
        **{("d1", "z"): 0.49, ("d2", "z"): math.nan},
        **{("d3", "w"): 1.0, ("d1", "w"): 1.0},
        **{(d, "v"): 1.0 for d in order},
    }
    found = frontier(_solve_rates(rates), order).set_index("model")
    reached = found["frontier"].to_dict()
    # x solves d1 and d2, fails d3 (0.3 < half) and solves d4: the frontier cannot skip d3,
    # and d4 is an island
    assert reached["x"] == "d2" and found.loc["x", "frontier_rank"] == 1
    assert found.loc["x", "stops_at"] == "d3" and found.loc["x", "islands"] == ("d4",)
    assert found.loc["x", "levels_solved"] == 3
    assert pd.isna(reached["y"]) and found.loc["y", "levels_solved"] == 0
    assert found.loc["y", "islands"] == () and found.loc["y", "stops_at"] == "d1"
    assert pd.isna(reached["z"])  # 0.49 < half
    # w has no seeds at d2: not known to be solved, so its frontier stops there
    assert reached["w"] == "d1" and found.loc["w", "islands"] == ("d3",)
    assert reached["v"] == "d4" and found["stops_at"].isna()["v"]
    # the order given is the ladder: reversed, x solves d4, fails d3, and d2, d1 are islands
    backwards = frontier(_solve_rates(rates), order[::-1]).set_index("model")
    assert backwards.loc["x", "frontier"] == "d4"
    assert backwards.loc["x", "islands"] == ("d2", "d1")


def test_frontier_text_shows_islands() -> None:
    rates = {("small", "plastic"): 1.0, ("medium", "plastic"): 0.0, ("large", "plastic"): 0.7}
    found = frontier(_solve_rates(rates), ["small", "medium", "large"])
    (row,) = found.to_dict("records")
    assert frontier_text(row) == (
        "plastic: frontier small; also solves large (island beyond medium, which it does not solve)"
    )
    (none,) = frontier(_solve_rates({("small", "rnn"): 0.0}), ["small"]).to_dict("records")
    assert frontier_text(none) == "rnn: frontier none"


def test_best_config_is_the_lowest_final_value_of_the_search() -> None:
    rows = [
        trial("easy", "plastic", 0.3, phase="search", optuna_trial=0, **{"hp.lr": 0.1}),
        trial("easy", "plastic", 0.1, phase="search", optuna_trial=1, status="diverged"),
        trial("easy", "plastic", 0.2, phase="search", optuna_trial=2, **{"hp.lr": 0.02}),
        trial("easy", "plastic", 0.2, phase="search", optuna_trial=3, **{"hp.lr": 0.03}),
        trial("easy", "plastic", math.nan, phase="search", optuna_trial=4, status="failed"),
        trial("easy", "plastic", 0.0, optuna_trial=2),  # confirmation: not a candidate
        trial("easy", "rnn", 0.4, phase="search", optuna_trial=0, **{"hp.lr": 0.5}),
    ]
    best = best_configs(frame(rows)).set_index("model")
    assert best.loc["plastic", "optuna_trial"] == 2  # ties go to the earlier trial
    assert best.loc["plastic", "final_value"] == 0.2
    assert best.loc["plastic", "hp.lr"] == 0.02
    assert best.loc["rnn", "hp.lr"] == 0.5


def _study(params: list[dict[str, Any]], values: list[float | None]) -> optuna.Study:
    """An in-memory study of finished trials (None: a failed trial)."""
    study = optuna.create_study()
    for p, v in zip(params, values, strict=True):
        distributions: dict[str, optuna.distributions.BaseDistribution] = {
            k: optuna.distributions.FloatDistribution(0.0, 1.0)
            if isinstance(x, float)
            else optuna.distributions.CategoricalDistribution(["a", "b"])
            for k, x in p.items()
        }
        state = optuna.trial.TrialState.FAIL if v is None else optuna.trial.TrialState.COMPLETE
        study.add_trial(
            optuna.trial.create_trial(params=p, distributions=distributions, value=v, state=state)
        )
    return study


def test_param_importance_per_cell_never_crashes() -> None:
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(size=40), rng.uniform(size=40)
    studies = {
        ("s", "easy/plastic"): _study(
            [{"x": float(x), "y": float(y)} for x, y in zip(xs, ys, strict=True)],
            [float(x**2 + 0.01 * y) for x, y in zip(xs, ys, strict=True)],  # x matters
        ),
        ("s", "easy/rnn"): _study([{"x": 0.1}, {"x": 0.2}, {"x": 0.3}], [0.5, 0.4, None]),
        ("s", "hard/plastic"): _study([{"x": 0.1, "rule": "a"}, {"x": 0.2}], [0.5, None]),
        ("s", "hard/rnn"): _study([], []),
        ("s", "hard/lstm"): _study([{"x": 0.1, "y": 0.2}, {"x": 0.3, "y": 0.9}], [0.5, 0.5]),
    }
    found = param_importance(studies).set_index(["difficulty", "model", "param"])
    found = found.sort_index()
    imp = found["importance"]
    assert imp[("easy", "plastic", "x")] > 0.8 > imp[("easy", "plastic", "y")]
    assert imp.loc[("easy", "plastic")].sum() == pytest.approx(1.0)
    assert imp[("easy", "rnn", "x")] == 1.0  # the only parameter searched
    assert found.loc[("easy", "rnn", "x"), "completed"] == 2
    assert found.loc[("hard", "plastic", "rule"), "note"] == "fewer than 2 completed trials"
    assert math.isnan(imp[("hard", "plastic", "x")])
    assert ("hard", "rnn") not in {k[:2] for k in found.index}  # nothing searched
    assert imp.loc[("hard", "lstm")].tolist() == [0.5, 0.5]  # a flat objective: no ranking
    assert "equal" in str(found.loc[("hard", "lstm", "x"), "note"])
    # no cell here has the 50 completed trials PED-ANOVA needs to mean anything
    assert not found["meaningful"].any()
    assert str(found.loc[("easy", "plastic", "x"), "note"]).startswith(
        "only 40 completed trials: too few to mean anything"
    )
    assert found.loc[("easy", "rnn", "x"), "note"] == "the only parameter searched"
    many = np.random.default_rng(1).uniform(size=(60, 2))
    enough = {("s", "easy/plastic"): _study([{"x": a, "y": b} for a, b in many], list(many[:, 0]))}
    (ok, _) = param_importance(enough).to_dict("records")
    assert ok["meaningful"] and ok["completed"] == 60 and "too few" not in ok["note"]


def test_curve_summary_over_confirmation_seeds_leaves_out_diverged_trials() -> None:
    trials = frame(
        [
            trial("easy", "plastic", 0.1, trial_id="a"),
            trial("easy", "plastic", 0.1, trial_id="b"),
            trial("easy", "plastic", 0.5, trial_id="bad", status="diverged"),
        ]
    )
    curve = [  # (trial, phase, step, episodes, error); "c" still runs: no trials row yet
        ("a", "confirm", 1, 100, 0.1),
        ("b", "confirm", 1, 100, 0.2),
        ("c", "confirm", 1, 100, 0.3),
        ("a", "confirm", 2, 200, 0.05),
        ("bad", "confirm", 1, 100, 0.9),
        ("s", "search", 1, 100, 0.9),
    ]
    curves = pd.DataFrame(
        [
            {"sweep": "s", "trial_id": t, "phase": p, "difficulty": "easy", "model": "plastic"}
            | {"step": step, "episodes": episodes, "value": error}
            for t, p, step, episodes, error in curve
        ]
    )
    found = curve_summary(curves, trials).set_index("step")
    assert found["seeds"].to_dict() == {1: 3, 2: 1}
    first = found.loc[1]
    assert [first["q25"], first["median"], first["q75"]] == pytest.approx([0.15, 0.2, 0.25])
    assert found["episodes"].to_dict() == {1: 100, 2: 200}
    assert found["median"].to_dict()[2] == 0.05


def test_summarize_orders_rows_by_the_specs_ladder() -> None:
    rows = seeds("b-hard", "rnn", HIGH) + seeds("b-hard", "plastic", LOW)
    rows += seeds("a-easy", "rnn", HIGH) + seeds("a-easy", "plastic", LOW)
    spec = {"difficulties": ["b-hard", "a-easy"], "models": {"plastic": {}, "rnn": {}}}
    results = Results(frame(rows), _no_curves(), (Sweep("s", "/nowhere", spec, ""),))
    summary = summarize(results)
    assert summary.difficulties == ("b-hard", "a-easy")
    assert list(summary.headline["difficulty"]) == ["b-hard", "a-easy"]
    assert list(summary.cells["model"]) == ["plastic", "rnn", "plastic", "rnn"]
    assert list(summary.headline["winner"]) == ["plastic", "plastic"]
    assert summary.task.chance == 0.5
    assert summary.sweep == "s"


def _no_curves() -> pd.DataFrame:
    columns = ["sweep", "trial_id", "phase", "difficulty", "model", "step", "episodes", "value"]
    return pd.DataFrame(columns=columns)


def test_typical_reconstructions_are_the_median_seeds() -> None:
    rows = seeds("easy", "plastic", [0.3, 0.1, 0.2, 0.4])  # seeds 0..3
    rows += [trial("easy", "plastic", 0.0, seed=9, status="diverged")]  # never shown
    rows += [trial("easy", "plastic", 0.0, seed=8)]  # the best, but recorded no pictures
    rows += [trial("easy", "rnn", e, seed=s, phase="search") for s, e in ((5, 0.5), (6, 0.45))]
    rows += seeds("hard", "plastic", [0.3, 0.1, 0.2])
    shown = typical_reconstructions(frame(rows), pictures(rows[:5] + rows[6:]))
    # easy/plastic: 0.1 0.2 0.3 0.4 -> the lower middle, seed 2; hard: the middle, seed 2
    # (0.1 0.2 0.3 of seeds 1 2 0); easy/rnn has no confirmation: its best search trial
    per_cell = {
        (r.difficulty, r.model): (r.seed, r.final_value, r.phase) for r in shown.itertuples()
    }
    assert per_cell == {
        ("easy", "plastic"): (2, 0.2, "confirm"),
        ("easy", "rnn"): (6, 0.45, "search"),
        ("hard", "plastic"): (2, 0.2, "confirm"),
    }
    assert len(shown) == 3 * 2  # 2 samples of each cell's one trial
    assert typical_reconstructions(frame(rows), pictures([])).empty
