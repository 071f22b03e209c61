"""Learning curves: one panel per difficulty and model, the median evaluation metric over
training with its IQR band across confirmation seeds, beside chance, the reference levels
and the solved threshold."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from matplotlib.figure import Figure

from analysis.figures.common import (
    SOLVED_STYLE,
    FigurePart,
    Spread,
    error_label,
    floats,
    level_label,
    level_lines,
    level_styles,
    levels_of,
    model_colors,
    new_figure,
    present,
    seeds_text,
    solved_label,
    suptitle,
    thresholds_of,
    uniform,
)
from analysis.summary import Summary, TaskInfo


@dataclass(frozen=True)
class Band(Spread):
    """A cell's learning curve: per evaluation step, median and quartiles across seeds."""

    episodes: tuple[float, ...]
    seeds: int  # the most seeds any step has


@dataclass(frozen=True)
class LearningCurvesInfo:
    sweep: str
    task: TaskInfo
    difficulties: tuple[str, ...]  # grid rows
    models: tuple[str, ...]  # grid columns
    bands: Mapping[tuple[str, str], Band]  # (difficulty, model) -> curve
    thresholds: tuple[float, ...]  # per difficulty
    levels: Mapping[str, tuple[float, ...]]  # chance and reference levels, per difficulty


def learning_curves_info(summary: Summary) -> LearningCurvesInfo:
    difficulties, models = present(summary)
    bands = {
        (str(d), str(m)): Band(
            episodes=floats(rows["episodes"]),
            median=floats(rows["median"]),
            q25=floats(rows["q25"]),
            q75=floats(rows["q75"]),
            seeds=int(rows["seeds"].max()),
        )
        for (d, m), rows in summary.curves.groupby(["difficulty", "model"], sort=False)
    }
    return LearningCurvesInfo(
        summary.sweep,
        summary.task,
        difficulties,
        models,
        bands,
        thresholds_of(summary, difficulties),
        levels_of(summary, difficulties),
    )


def draw_learning_curves(info: LearningCurvesInfo) -> Figure:
    rows, cols = max(1, len(info.difficulties)), max(1, len(info.models))
    fig = new_figure(2.6 * cols + 2.4, 1.9 * rows + 1.0)
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    colors = model_colors(info.models)
    for r, difficulty in enumerate(info.difficulties):
        for c, model in enumerate(info.models):
            ax = axes[r][c]
            band = info.bands.get((difficulty, model))
            if band is not None:
                ax.fill_between(band.episodes, band.q25, band.q75, color=colors[model], alpha=0.3)
                ax.plot(band.episodes, band.median, color=colors[model], lw=1.5)
            else:
                ax.text(0.5, 0.5, "no curves", transform=ax.transAxes, ha="center", color="0.5")
            level_lines(
                ax,
                info.task,
                {name: (values[r],) for name, values in info.levels.items()},
                (info.thresholds[r],),
            )
            n = f"n = {band.seeds}" if band is not None else "n = 0"
            ax.set_title(f"{model}  ({n})", fontsize="medium")
            if c == 0:
                ax.set_ylabel(difficulty, fontweight="bold")
            if r == rows - 1:
                ax.set_xlabel("training episodes")
    # One legend for the level lines, with their values where every row has the same.
    styles = level_styles(info.levels)
    handles = [styles[name].line() for name in info.levels]
    handles.append(SOLVED_STYLE.line())
    labels = [level_label(name, values) for name, values in info.levels.items()]
    labels.append(solved_label(info.task.goal, uniform(info.thresholds)))
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize="small")
    fig.supylabel(error_label(info.task, "evaluation"))
    counts = [b.seeds for b in info.bands.values()]
    suptitle(
        fig,
        f"{info.sweep}: learning curves, median (line) and IQR (band: 25th–75th percentile) "
        f"over {seeds_text(counts)}",
        "rows: difficulty (easiest first); lines: each level's chance, reference levels and "
        "solved threshold",
    )
    return fig


FIGURE = FigurePart(
    "learning_curves", "Learning curves", learning_curves_info, draw_learning_curves, order=40
)
