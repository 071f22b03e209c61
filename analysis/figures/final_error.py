"""The headline figure: each model's final metric against difficulty, median and IQR across
confirmation seeds with every seed as a dot, and the significant winner named under its
difficulty."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.common import (
    FigurePart,
    Scale,
    Spread,
    as_counts,
    by_difficulty,
    error_bars,
    error_label,
    legend_outside,
    level_lines,
    levels_of,
    metric_scale,
    model_colors,
    new_figure,
    offsets,
    present,
    scale_text,
    seeds_text,
    set_scale,
    spread_by_difficulty,
    suptitle,
    thresholds_of,
)
from analysis.summary import Summary, TaskInfo

# Columns read: each seed's final value in `Summary.seeds` (a trials column); the rest are
# the summary's own (median, q25, q75, seeds; the headline's significant and winner).
FINAL = "final_value"


@dataclass(frozen=True)
class ErrorSeries(Spread):
    """One model's final metric at each difficulty (NaN where it has no seeds): the
    headline's statistic, the median and IQR across seeds."""

    seeds: tuple[int, ...]
    points: tuple[tuple[int, float], ...]  # (difficulty index, final value) of every seed


@dataclass(frozen=True)
class FinalErrorInfo:
    sweep: str
    task: TaskInfo
    difficulties: tuple[str, ...]
    models: tuple[str, ...]
    series: Mapping[str, ErrorSeries]
    thresholds: tuple[float, ...]
    levels: Mapping[str, tuple[float, ...]]  # chance and reference levels, per difficulty
    significant: tuple[str | None, ...]  # per difficulty: the winner, when it wins significantly
    scale: Scale


def final_error_info(summary: Summary) -> FinalErrorInfo:
    difficulties, models = present(summary)
    rank = {d: i for i, d in enumerate(difficulties)}
    series = {}
    for model in models:
        cells = summary.cells[summary.cells["model"] == model]
        seeds = summary.seeds[summary.seeds["model"] == model]
        series[model] = ErrorSeries(
            **spread_by_difficulty(cells, difficulties),
            seeds=as_counts((by_difficulty(cells, difficulties, "seeds"),))[0],
            points=tuple(
                (rank[d], float(e))
                for d, e in zip(seeds["difficulty"], seeds[FINAL], strict=True)
                if d in rank
            ),
        )
    wins = summary.headline[summary.headline["significant"].astype(bool)]
    winner = dict(zip(wins["difficulty"], wins["winner"], strict=True))
    thresholds, levels = thresholds_of(summary, difficulties), levels_of(summary, difficulties)
    drawn = [
        *(v for s in series.values() for v in (*s.median, *s.q25, *s.q75)),
        *(e for s in series.values() for _, e in s.points),
        *thresholds,
        *(v for values in levels.values() for v in values),
    ]
    return FinalErrorInfo(
        summary.sweep,
        summary.task,
        difficulties,
        models,
        series,
        thresholds,
        levels,
        tuple(winner.get(d) for d in difficulties),
        metric_scale(drawn, summary.task.goal),
    )


def draw_final_error(info: FinalErrorInfo) -> Figure:
    fig = new_figure(max(6.5, 1.3 * len(info.difficulties) + 3.5), 4.8)
    ax = fig.subplots()
    colors, shift = model_colors(info.models), offsets(info.models)
    for model, s in info.series.items():
        error_bars(ax, np.arange(len(info.difficulties)) + shift[model], s, colors[model], model)
        if s.points:
            px = np.array([i for i, _ in s.points], dtype=float) + shift[model]
            ax.scatter(px, [e for _, e in s.points], s=9, color=colors[model], alpha=0.45, lw=0)
    level_lines(ax, info.task, info.levels, info.thresholds)
    set_scale(ax, info.scale)
    # A significant win is named under its difficulty, where no error bar can cross it.
    ticks = [
        d if winner is None else f"{d}\n* {winner}"
        for d, winner in zip(info.difficulties, info.significant, strict=True)
    ]
    ax.set_xticks(range(len(info.difficulties)), ticks)
    ax.set_xlabel("difficulty (easiest first)")
    ax.set_ylabel(error_label(info.task))
    legend_outside(ax)
    counts = [n for s in info.series.values() for n in s.seeds if n]
    ax.set_xlim(-0.5, len(info.difficulties) - 0.5)
    best = "highest" if info.task.goal == "max" else "lowest"
    suptitle(
        fig,
        f"{info.sweep}: final {info.task.metric}, median and IQR (25th–75th percentile; dots: "
        f"single seeds) over {seeds_text(counts)}",
        f"* model under a difficulty: {best} median, Holm-adjusted rank-sum p < 0.05 against "
        f"the runner-up{scale_text(info.scale)}",
    )
    return fig


FIGURE = FigurePart(
    "final_error", "Final {metric} against difficulty", final_error_info, draw_final_error, order=10
)
