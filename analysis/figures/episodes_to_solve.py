"""Episodes to solve: per difficulty and model, the training episodes the seeds that solved
the level needed, and how many of the seeds did."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.common import (
    NAN,
    FigurePart,
    Spread,
    as_counts,
    by_difficulty,
    error_bars,
    legend_outside,
    model_colors,
    new_figure,
    offsets,
    point_label,
    present,
    seeds_text,
    spread_by_difficulty,
    suptitle,
)
from analysis.summary import Summary


@dataclass(frozen=True)
class SolveSeries(Spread):
    """One model's episodes to solve per difficulty, over the seeds that solved it."""

    solved: tuple[int, ...]
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class EpisodesToSolveInfo:
    sweep: str
    difficulties: tuple[str, ...]
    models: tuple[str, ...]
    series: Mapping[str, SolveSeries]
    budget: float  # training episodes per trial


def episodes_to_solve_info(summary: Summary) -> EpisodesToSolveInfo:
    difficulties, models = present(summary)
    series = {}
    for model in models:
        cells = summary.cells[summary.cells["model"] == model]
        counts = as_counts(
            tuple(by_difficulty(cells, difficulties, c) for c in ("solved", "seeds"))
        )
        series[model] = SolveSeries(
            **spread_by_difficulty(cells, difficulties, "solve_"),
            solved=counts[0],
            seeds=counts[1],
        )
    budget = float(summary.cells["episodes"].max()) if len(summary.cells) else NAN
    return EpisodesToSolveInfo(summary.sweep, difficulties, models, series, budget)


def draw_episodes_to_solve(info: EpisodesToSolveInfo) -> Figure:
    fig = new_figure(max(6.0, 1.3 * len(info.difficulties) + 3), 4.6)
    ax = fig.subplots()
    colors, shift = model_colors(info.models), offsets(info.models)
    for model, s in info.series.items():
        x = np.arange(len(info.difficulties)) + shift[model]
        median = error_bars(ax, x, s, colors[model], model)
        for xi, yi, k, n in zip(x, median, s.solved, s.seeds, strict=True):
            if n:
                y = info.budget if math.isnan(yi) else yi
                point_label(ax, f"{k}/{n}", (xi, y), colors[model])
    if not math.isnan(info.budget):
        ax.axhline(info.budget, color="0.4", ls="--", lw=1, label="training budget")
    ax.set_xticks(range(len(info.difficulties)), info.difficulties)
    ax.set_xlabel("difficulty (easiest first)")
    ax.set_ylabel("training episodes to reach the solved threshold")
    ax.set_ylim(0, None if math.isnan(info.budget) else info.budget * 1.08)
    legend_outside(ax)
    counts = [n for s in info.series.values() for n in s.seeds if n]
    ax.set_xlim(-0.5, len(info.difficulties) - 0.5)
    suptitle(
        fig,
        f"{info.sweep}: episodes to solve, median and IQR (25th–75th percentile) over the "
        f"seeds that solved, of {seeds_text(counts)}",
        "labels: seeds solved / seeds (at the budget line when none solved)",
    )
    return fig


FIGURE = FigurePart(
    "episodes_to_solve",
    "Episodes to solve",
    episodes_to_solve_info,
    draw_episodes_to_solve,
    order=50,
)
