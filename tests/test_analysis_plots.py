"""Figures: the info functions on a hand-built sweep (the numbers drawn), the drawing
functions (labels, units, aggregation and seeds stated; PNG and SVG written), and the
registry every figure module joins."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import analysis.figures
from analysis import Results, Summary, Sweep, summarize
from analysis.figures import FIGURES, FigurePart, figures, register_figure
from analysis.figures.common import Scale, metric_scale, save, seeds_text
from analysis.figures.episodes_to_solve import episodes_to_solve_info
from analysis.figures.final_error import draw_final_error, final_error_info
from analysis.figures.frontier import draw_frontier, frontier_info
from analysis.figures.importance import draw_importance, importance_info, importance_note
from analysis.figures.learning_curves import draw_learning_curves, learning_curves_info
from analysis.figures.parameters import parameters_info
from analysis.figures.reconstructions import reconstruction_info
from analysis.summary import IMPORTANCE_COLUMNS
from analysis.tables import CURVES_COLUMNS
from tests.support.rows import HIGH, LOW, pictures, seeds, trial

SPEC = {"difficulties": ["easy", "hard"], "models": {"plastic": {}, "rnn": {}}}


@pytest.fixture(scope="module")
def summary() -> Summary:
    """easy: plastic (10 seeds, all solved) against rnn (10 seeds, none solved);
    hard: plastic only, 3 seeds, one solved."""
    rows = seeds("easy", "plastic", LOW, num_parameters=100)
    for i, row in enumerate(rows):
        row["episodes_to_solve"] = 100 * (i + 1)
    rows += seeds("easy", "rnn", HIGH, num_parameters=110)
    rows += seeds("hard", "plastic", [0.4, 0.2, 0.3], num_parameters=400)
    rows[-2]["episodes_to_solve"] = 900
    for row in rows:
        row["solved_threshold"] = 0.25  # under it: LOW, and 0.2 of the hard level's seeds
    trials = pd.DataFrame(rows)
    ids = trials.loc[(trials["difficulty"] == "easy") & (trials["model"] == "plastic"), "trial_id"]
    curves = pd.DataFrame(
        [
            {"sweep": "s", "trial_id": t, "phase": "confirm", "difficulty": "easy"}
            | {"model": "plastic", "step": step, "episodes": 100 * step, "value": e / step}
            for t, e in zip(ids[:3], (0.2, 0.4, 0.6), strict=True)
            for step in (1, 2)
        ]
    )
    return summarize(Results(trials, curves, (Sweep("s", "/nowhere", SPEC, ""),)))


def test_seeds_text() -> None:
    assert seeds_text([3, 3]) == "n = 3 confirmation seeds per cell"
    assert seeds_text([10, 3, 9]) == "n = 3–10 confirmation seeds per cell"
    assert seeds_text([]) == "no confirmation seeds"


def test_learning_curves_info(summary: Summary) -> None:
    info = learning_curves_info(summary)
    assert (info.difficulties, info.models) == (("easy", "hard"), ("plastic", "rnn"))
    band = info.bands[("easy", "plastic")]
    assert band.episodes == (100.0, 200.0) and band.seeds == 3
    assert band.median == pytest.approx((0.4, 0.2))
    assert band.q25 == pytest.approx((0.3, 0.15)) and band.q75 == pytest.approx((0.5, 0.25))
    assert ("hard", "rnn") not in info.bands
    assert info.thresholds == (0.25, 0.25) and info.task.chance == 0.5


def test_final_error_info(summary: Summary) -> None:
    info = final_error_info(summary)
    plastic, rnn = info.series["plastic"], info.series["rnn"]
    # the headline's statistic: median and IQR
    assert plastic.median == pytest.approx((np.median(LOW), 0.3))
    assert plastic.q25 == pytest.approx((np.quantile(LOW, 0.25), 0.25))
    assert plastic.q75 == pytest.approx((np.quantile(LOW, 0.75), 0.35))
    assert plastic.seeds == (10, 3) and rnn.seeds == (10, 0)
    assert math.isnan(rnn.median[1])  # rnn did not run "hard"
    assert sorted(plastic.points)[-3:] == [(1, 0.2), (1, 0.3), (1, 0.4)]
    assert info.significant == ("plastic", None)  # 10 against 10, clearly apart
    assert info.levels == {"chance": (0.5, 0.5)} and info.thresholds == (0.25, 0.25)
    # errors from 0.01 to 0.5: more than a decade, none zero
    assert info.scale.name == "log" and info.scale.top == pytest.approx(0.5 * 10**0.15)


def test_metric_scale() -> None:
    assert metric_scale([0.01, 0.5], "min").name == "log"
    assert metric_scale([0.0, 0.013, 0.5], "min").name == "symlog"  # 0 must show
    assert metric_scale([0.0, 0.013, 0.5], "min").linthresh == 0.01
    assert metric_scale([0.2, 0.5], "min") == Scale("linear")  # within a decade
    assert metric_scale([0.01, 0.5, math.nan], "max").name == "linear"  # rewards
    assert metric_scale([-1.0, 0.01, 0.5], "min").name == "linear"
    assert metric_scale([math.nan], "min").name == "linear"


def test_episodes_to_solve_info(summary: Summary) -> None:
    info = episodes_to_solve_info(summary)
    plastic = info.series["plastic"]
    assert plastic.solved == (10, 1) and plastic.seeds == (10, 3)
    assert plastic.median == pytest.approx((550.0, 900.0))
    assert info.series["rnn"].solved == (0, 0) and math.isnan(info.series["rnn"].median[0])
    assert info.budget == 1000


def test_frontier_info(summary: Summary) -> None:
    info = frontier_info(summary)
    assert info.models == ("plastic", "rnn")
    assert info.solve_rate[0] == pytest.approx((1.0, 1 / 3))
    assert info.solve_rate[1][0] == 0.0 and math.isnan(info.solve_rate[1][1])
    assert info.solved == ((10, 1), (0, 0)) and info.seeds == ((10, 3), (10, 0))
    assert dict(info.frontier) == {"plastic": 0, "rnn": None}


def test_importance_info(summary: Summary) -> None:
    importance = pd.DataFrame(
        [
            ("s", "easy", "plastic", "lr", 0.7, 60, True, ""),
            ("s", "easy", "plastic", "eta", 0.3, 60, True, ""),
            ("s", "easy", "rnn", "lr", 1.0, 12, False, "the only parameter searched"),
            ("s", "hard", "plastic", "lr", 0.9, 12, False, "too few"),
            ("s", "hard", "plastic", "eta", 0.1, 12, False, "too few"),
            ("s", "hard", "rnn", "lr", math.nan, 1, False, "fewer than 2 completed trials"),
        ],
        columns=list(IMPORTANCE_COLUMNS),
    )
    info = importance_info(dataclasses.replace(summary, importance=importance))
    assert info.cells == ("easy / plastic", "easy / rnn", "hard / plastic", "hard / rnn")
    assert info.params == ("lr", "eta") and info.completed == (60, 12, 12, 1)
    assert info.importance[0] == (0.7, 0.3)
    assert info.importance[1][0] == 1.0 and math.isnan(info.importance[1][1])
    assert all(math.isnan(v) for v in info.importance[3])
    assert info.single == (False, True, False, True)
    assert info.meaningful == (True, False, False, False)
    fig = draw_importance(info)
    assert "PED-ANOVA" in fig.get_suptitle()
    assert '"too few": under 50 completed trials' in fig.get_suptitle()
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[2] == "hard / plastic (12 trials, too few)" and labels[0].endswith("(60 trials)")
    (image,) = fig.axes[0].get_images()
    coloured = image.get_array()
    assert coloured is not None
    # the one-parameter cell (1.0 by definition) is not coloured and does not set the scale
    assert np.ma.getmaskarray(coloured)[1, 0] and image.norm.vmax == pytest.approx(0.9)
    assert "1.00 (only)" in [t.get_text() for t in fig.axes[0].texts]
    few = importance[importance["model"] == "rnn"]
    weak = draw_importance(importance_info(dataclasses.replace(summary, importance=few)))
    assert "Too few trials to mean anything" in weak.get_suptitle()
    empty = draw_importance(importance_info(summary))  # no studies: says so, no crash
    assert "no Optuna studies" in " ".join(t.get_text() for t in empty.axes[0].texts)
    # the report's warning under the figure: hard/plastic searched 2 parameters, 12 trials
    note = importance_note(dataclasses.replace(summary, importance=importance))
    assert note.startswith("Hyperparameter importance: 1 of the cells that searched several")
    assert importance_note(summary) == ""  # no studies: nothing to warn of


def test_parameters_info(summary: Summary) -> None:
    info = parameters_info(summary)
    (easy, hard) = info.points["plastic"]
    assert easy[:3] == ("easy", 100.0, pytest.approx(np.median(LOW)))
    assert hard == ("hard", 400.0, 0.3, 0.25, 0.35)
    assert [p[0] for p in info.points["rnn"]] == ["easy"]
    assert info.levels == {"chance": 0.5}


def test_figures_state_axes_units_aggregation_and_seeds(summary: Summary) -> None:
    fig = draw_final_error(final_error_info(summary))
    (ax,) = fig.axes
    assert ax.get_ylabel() == "final bit error (fraction of wrong-sign bits; lower is better)"
    assert ax.get_xlabel() == "difficulty (easiest first)"
    assert ax.get_yscale() == "log"
    # the significant win at "easy" is named under it, where no error bar crosses it
    assert [t.get_text() for t in ax.get_xticklabels()] == ["easy\n* plastic", "hard"]
    assert not ax.texts
    title = " ".join(fig.get_suptitle().split())
    assert "median and IQR (25th–75th percentile" in title and "n = 3–10" in title
    assert "lowest median" in title and "y axis logarithmic" in title
    box = ax.get_legend()
    assert box is not None
    legend = [t.get_text() for t in box.get_texts()]
    assert "chance (0.5)" in legend and "solved (≤ 0.25)" in legend

    curves = draw_learning_curves(learning_curves_info(summary))
    assert "median (line) and IQR (band: 25th–75th percentile)" in curves.get_suptitle()
    assert curves.axes[-1].get_xlabel() == "training episodes"
    assert curves.get_supylabel() == (
        "evaluation bit error (fraction of wrong-sign bits; lower is better)"
    )
    assert curves.axes[0].get_title() == "plastic  (n = 3)"
    (levels,) = curves.legends
    assert [t.get_text() for t in levels.get_texts()] == ["chance (0.5)", "solved (≤ 0.25)"]

    frontier = draw_frontier(frontier_info(summary))
    texts = [t.get_text() for t in frontier.axes[0].texts]
    assert "10/10\nmedian 0.055" in texts and "not run" in texts
    assert len(frontier.axes[0].patches) == 1  # one frontier box: plastic at easy


def test_every_figure_is_written_as_png_and_svg(summary: Summary, tmp_path: Path) -> None:
    drawn = figures(summary)
    assert list(drawn) == [p.name for p in FIGURES if p.applies(summary)]
    assert "reconstructions" not in drawn  # not a picture task
    assert len(drawn) == len(FIGURES) - 1  # every other one applies to any sweep
    for name, fig in drawn.items():
        assert isinstance(fig, Figure) and fig.get_suptitle()
        png, svg = save(fig, tmp_path, name)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in svg.read_text()[:1000]


def test_the_registry_holds_every_module_of_the_package_in_report_order() -> None:
    modules = {
        p.stem for p in Path(analysis.figures.__file__).parent.glob("*.py") if p.stem != "common"
    } - {"__init__"}
    assert {p.data.__module__.rsplit(".", 1)[1] for p in FIGURES} == modules
    assert len({p.name for p in FIGURES}) == len(FIGURES)
    assert [p.order for p in FIGURES] == sorted(p.order for p in FIGURES)
    assert FIGURES[0].name == "final_error"  # the answer first
    with pytest.raises(ValueError, match=r"already registered by analysis\.figures\.frontier"):
        register_figure(FigurePart("frontier", "x", _nothing, _blank))
    with pytest.raises(ValueError, match="must be a Python identifier"):
        FigurePart("two words", "x", _nothing, _blank)


def _nothing(summary: Summary) -> str:
    return ""


def _blank(info: str) -> Figure:
    return Figure()


@pytest.fixture(scope="module")
def images() -> Summary:
    """An image sweep: easy with plastic (3 confirmation seeds) and rnn (2 search trials
    only), hard with plastic; 2 recorded episodes of 2 x 2 pixels per trial."""
    rows = seeds("easy", "plastic", [0.3, 0.1, 0.2]) + seeds("hard", "plastic", [0.5])
    rows += [trial("easy", "rnn", e, seed=s, phase="search") for s, e in ((4, 0.6), (5, 0.5))]
    for row in rows:
        row.update(task="images", metric="erased_mse", chance=0.2)
    spec = {
        "task": "images",
        "difficulties": ["easy", "hard"],
        "models": {"plastic": {}, "rnn": {}},
    }
    curves = pd.DataFrame(columns=list(CURVES_COLUMNS))
    results = Results(pd.DataFrame(rows), curves, (Sweep("s", "/x", spec, ""),), pictures(rows))
    return summarize(results)


def test_reconstruction_info(images: Summary) -> None:
    info = reconstruction_info(images)
    assert info.models == ("plastic", "rnn") and info.phases == ("confirm", "search")
    assert [(p.difficulty, p.sample) for p in info.pictures] == [
        ("easy", 0),
        ("easy", 1),
        ("hard", 0),
        ("hard", 1),
    ]
    easy = info.pictures[1]
    assert easy.shape == (2, 2) and easy.erased == (True, True, False, False)
    assert easy.seeds == {"plastic": 2, "rnn": 5}  # the median seed; the best search trial
    assert easy.target == pytest.approx((-1, -1 / 3, 1 / 3, 1))  # sample 1 of 2: scale 1
    # outputs are seed + sample everywhere: plastic 3, rnn 6; MSE on the top half
    assert easy.outputs["plastic"] == (3.0,) * 4
    assert easy.errors["plastic"] == pytest.approx(((3 + 1) ** 2 + (3 + 1 / 3) ** 2) / 2)
    assert easy.errors["rnn"] == pytest.approx(((6 + 1) ** 2 + (6 + 1 / 3) ** 2) / 2)
    assert set(info.pictures[2].outputs) == {"plastic"}  # hard: rnn did not run


def test_reconstruction_figure(images: Summary, tmp_path: Path) -> None:
    drawn = figures(images)
    assert "reconstructions" in drawn
    fig = drawn["reconstructions"]
    axes = fig.get_axes()
    assert len(axes) == 4 * 4  # 4 episodes x (original, cue, plastic, rnn)
    assert [a.get_title() for a in axes[:4]] == ["original", "cue", "plastic", "rnn"]
    # easy, sample 0, plastic seed 2: output 2 against -1/2 and -1/6 in the erased half
    assert axes[2].get_xlabel() == f"{((2 + 1 / 2) ** 2 + (2 + 1 / 6) ** 2) / 2:.3f} (seed 2)"
    assert "not\nrecorded" in [t.get_text() for t in axes[-1].texts]  # hard/rnn
    assert "held-out images" in fig.get_suptitle() and "median final error" in fig.get_suptitle()
    png, _ = save(fig, tmp_path, "reconstructions")
    assert png.stat().st_size > 0
