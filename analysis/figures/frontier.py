"""The difficulty frontier: a model x difficulty grid of solve rates, each model's frontier
boxed and its islands marked."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from analysis.figures.common import (
    FigurePart,
    as_counts,
    by_difficulty,
    new_figure,
    present,
    seeds_text,
    suptitle,
)
from analysis.summary import SOLVED_IN, Summary, TaskInfo


@dataclass(frozen=True)
class FrontierInfo:
    sweep: str
    task: TaskInfo
    difficulties: tuple[str, ...]  # columns
    models: tuple[str, ...]  # rows
    solve_rate: tuple[tuple[float, ...], ...]  # [model][difficulty], NaN: not run
    solved: tuple[tuple[int, ...], ...]
    seeds: tuple[tuple[int, ...], ...]
    median: tuple[tuple[float, ...], ...]
    frontier: Mapping[str, int | None]  # model -> index of its frontier (see summary.frontier)
    islands: Mapping[str, tuple[int, ...]]  # model -> levels solved beyond a failed one
    at_least: float


def frontier_info(summary: Summary) -> FrontierInfo:
    difficulties, models = present(summary)
    by_model = {m: summary.cells[summary.cells["model"] == m] for m in models}

    def column(name: str) -> tuple[tuple[float, ...], ...]:
        return tuple(by_difficulty(by_model[m], difficulties, name) for m in models)

    rank = {d: i for i, d in enumerate(difficulties)}
    rows = summary.frontier.set_index("model")
    reached = rows["frontier"].to_dict()
    islands = rows["islands"].to_dict()
    return FrontierInfo(
        summary.sweep,
        summary.task,
        difficulties,
        models,
        solve_rate=column("solve_rate"),
        solved=as_counts(column("solved")),
        seeds=as_counts(column("seeds")),
        median=column("median"),
        frontier={
            m: rank.get(str(reached[m])) if pd.notna(reached.get(m)) else None for m in models
        },
        islands={m: tuple(rank[d] for d in islands.get(m, ()) if d in rank) for m in models},
        at_least=SOLVED_IN,
    )


def draw_frontier(info: FrontierInfo) -> Figure:
    fig = new_figure(max(5.5, 1.6 * len(info.difficulties) + 2.8), 1.0 * len(info.models) + 2.4)
    ax = fig.subplots()
    image = ax.imshow(
        np.array(info.solve_rate, dtype=float).reshape(len(info.models), len(info.difficulties)),
        cmap="Greens",
        vmin=0,
        vmax=1,
        aspect="auto",
    )
    for r, model in enumerate(info.models):
        for c in range(len(info.difficulties)):
            rate = info.solve_rate[r][c]
            text = (
                "not run"
                if math.isnan(rate)
                else f"{info.solved[r][c]}/{info.seeds[r][c]}\nmedian {info.median[r][c]:.3g}"
            )
            if c in info.islands.get(model, ()):
                text += "\n(island)"
            dark = not math.isnan(rate) and rate > 0.6
            ax.text(
                c,
                r,
                text,
                ha="center",
                va="center",
                fontsize="small",
                color="white" if dark else "black",
            )
    for r, model in enumerate(info.models):
        column = info.frontier.get(model)
        if column is not None:
            ax.add_patch(Rectangle((column - 0.5, r - 0.5), 1, 1, fill=False, ec="C3", lw=3))
        for island in info.islands.get(model, ()):
            ax.add_patch(
                Rectangle((island - 0.45, r - 0.45), 0.9, 0.9, fill=False, ec="C1", lw=2, ls="--")
            )
    ax.set_xticks(range(len(info.difficulties)), info.difficulties)
    ax.set_yticks(range(len(info.models)), info.models)
    ax.set_xlabel("difficulty (easiest first)")
    ax.set_ylabel("model")
    fig.colorbar(image, ax=ax, label="solve rate (fraction of seeds)")
    counts = [n for row in info.seeds for n in row if n]
    suptitle(
        fig,
        f"{info.sweep}: difficulty frontier over {seeds_text(counts)}",
        f"cells: seeds solved / seeds and median final {info.task.metric}; red box: the "
        f"frontier, the hardest level solved in ≥ {info.at_least:.0%} of the seeds with every "
        "easier level; dashed orange: an island, solved beyond a level the model fails",
    )
    return fig


FIGURE = FigurePart("frontier", "Difficulty frontier", frontier_info, draw_frontier, order=20)
