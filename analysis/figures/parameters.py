"""Parameter count against the final metric: one point per cell (median and IQR across
confirmation seeds), labelled with its difficulty."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.common import (
    FigurePart,
    Scale,
    error_label,
    floats,
    legend_outside,
    level_styles,
    levels_of,
    metric_scale,
    model_colors,
    new_figure,
    point_label,
    present,
    scale_text,
    seeds_text,
    set_scale,
    suptitle,
    uniform,
)
from analysis.summary import Summary, TaskInfo


@dataclass(frozen=True)
class ParametersInfo:
    sweep: str
    task: TaskInfo
    models: tuple[str, ...]
    points: Mapping[str, tuple[tuple[str, float, float, float, float], ...]]
    # model -> (difficulty, num_parameters, median, q25, q75) per cell
    seeds: tuple[int, ...]  # seeds per cell
    scale: Scale
    levels: Mapping[str, float]  # chance and reference levels the same at every difficulty


_POINT = ("num_parameters", "median", "q25", "q75")


def parameters_info(summary: Summary) -> ParametersInfo:
    _, models = present(summary)
    cells = summary.cells[summary.cells["seeds"] > 0]
    points = {
        m: tuple(
            zip(
                (str(d) for d in cells.loc[cells["model"] == m, "difficulty"]),
                *(floats(cells.loc[cells["model"] == m, c]) for c in _POINT),
                strict=True,
            )
        )
        for m in models
    }
    seeds = tuple(int(n) for n in cells["seeds"])
    # Points of every difficulty share the axes: only levels the same at each can be drawn.
    per_level = levels_of(summary, present(summary)[0]).items()
    levels = {name: v for name, values in per_level if (v := uniform(values)) is not None}
    drawn = [v for c in ("median", "q25", "q75") for v in floats(cells[c])]
    scale = metric_scale([*drawn, *levels.values()], summary.task.goal)
    return ParametersInfo(summary.sweep, summary.task, models, points, seeds, scale, levels)


def draw_parameters(info: ParametersInfo) -> Figure:
    fig = new_figure(7.5, 4.8)
    ax = fig.subplots()
    colors = model_colors(info.models)
    for model, cells in info.points.items():
        if not cells:
            continue
        _, n, median, q25, q75 = (np.array(v) for v in zip(*cells, strict=True))
        ax.errorbar(
            n.astype(float),
            median.astype(float),
            yerr=[
                median.astype(float) - q25.astype(float),
                q75.astype(float) - median.astype(float),
            ],
            fmt="o",
            color=colors[model],
            capsize=3,
            label=model,
        )
    styles = level_styles(info.levels)
    for name, value in info.levels.items():
        style = styles[name]
        ax.axhline(value, label=f"{name} ({value:g})", color=style.color, ls=style.ls, lw=style.lw)
    ax.set_xscale("log")
    ax.margins(x=0.08)
    set_scale(ax, info.scale)
    # Labels after the limits are final: points in the right third are labelled on their
    # left, so no label runs off the axes.
    ax.autoscale_view()
    to_axes = ax.transData + ax.transAxes.inverted()
    for model, cells in info.points.items():
        for difficulty, x, y, _, _ in cells:
            left = bool(to_axes.transform((x, y))[0] > 0.67)
            point_label(ax, difficulty, (x, y), colors[model], left=left)
    ax.set_xlabel("trainable parameters (count, log scale)")
    ax.set_ylabel(error_label(info.task))
    legend_outside(ax)
    suptitle(
        fig,
        f"{info.sweep}: parameter count vs final {info.task.metric}, median and IQR "
        f"(25th–75th percentile) over {seeds_text(info.seeds)}",
        f"one point per cell, labelled with its difficulty{scale_text(info.scale)}",
    )
    return fig


FIGURE = FigurePart(
    "parameters", "Parameter count against {metric}", parameters_info, draw_parameters, order=60
)
