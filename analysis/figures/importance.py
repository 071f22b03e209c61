"""Hyperparameter importance: PED-ANOVA on each cell's Optuna study, a cell x parameter
grid; the report warns under it when cells have too few trials for it to mean anything."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.common import (
    FigurePart,
    new_figure,
    suptitle,
)
from analysis.summary import IMPORTANCE_TRIALS, Summary


@dataclass(frozen=True)
class ImportanceInfo:
    sweep: str
    cells: tuple[str, ...]  # rows: "difficulty / model"
    params: tuple[str, ...]  # columns
    importance: tuple[tuple[float, ...], ...]  # [cell][param], NaN: not searched or too few
    completed: tuple[int, ...]  # completed search trials per cell
    single: tuple[bool, ...]  # per cell: one parameter searched (1.0 by definition)
    meaningful: tuple[bool, ...]  # per cell: several parameters and enough trials
    enough: int  # the completed trials PED-ANOVA needs to mean anything


def importance_info(summary: Summary) -> ImportanceInfo:
    frame = summary.importance
    cells = tuple(dict.fromkeys(zip(frame["difficulty"], frame["model"], strict=True)))
    params = tuple(dict.fromkeys(frame["param"]))
    table = frame.set_index(["difficulty", "model", "param"])["importance"].unstack("param")
    values = table.reindex(index=list(cells), columns=list(params)).to_numpy(dtype=float)
    per_cell = frame.groupby(["difficulty", "model"]).agg(
        completed=("completed", "max"),
        params=("param", "nunique"),
        meaningful=("meaningful", "all"),
    )
    per_cell = per_cell.reindex(list(cells))
    return ImportanceInfo(
        summary.sweep,
        tuple(f"{d} / {m}" for d, m in cells),
        params,
        tuple(tuple(float(v) for v in row) for row in values),
        tuple(int(n) for n in per_cell["completed"]),
        tuple(bool(n == 1) for n in per_cell["params"]),
        tuple(bool(v) for v in per_cell["meaningful"]),
        IMPORTANCE_TRIALS,
    )


def draw_importance(info: ImportanceInfo) -> Figure:
    fig = new_figure(max(6.0, 1.2 * len(info.params) + 4.5), 0.45 * len(info.cells) + 2.6)
    ax = fig.subplots()
    title = (
        f"{info.sweep}: hyperparameter importance per cell (PED-ANOVA on the cell's Optuna "
        "study, sums to 1 per cell)"
    )
    if not info.cells:
        ax.text(0.5, 0.5, "no Optuna studies found", ha="center", va="center")
        ax.set_axis_off()
        suptitle(fig, title)
        return fig
    values = np.array(info.importance, dtype=float).reshape(len(info.cells), len(info.params))
    # A cell that searched one parameter has importance 1 by definition: it is not coloured,
    # so the colours compare only cells where parameters competed.
    single = np.array(info.single, dtype=bool)[:, None] & np.ones_like(values, dtype=bool)
    coloured = np.ma.masked_where(single | np.isnan(values), values)
    top = float(coloured.max()) if coloured.count() else 1.0
    image = ax.imshow(coloured, cmap="Blues", vmin=0, vmax=max(top, 1e-9), aspect="auto")
    for r, c in np.ndindex(values.shape):
        v = values[r, c]
        text = "–" if math.isnan(v) else f"{v:.2f}" + (" (only)" if info.single[r] else "")
        dark = not info.single[r] and not math.isnan(v) and v > 0.6 * top
        ax.text(
            c,
            r,
            text,
            ha="center",
            va="center",
            fontsize="small",
            color="white" if dark else ("0.45" if info.single[r] else "black"),
        )
    ax.set_xticks(range(len(info.params)), info.params)
    labels = [
        f"{c} ({k} trials{'' if ok or single_ else ', too few'})"
        for c, k, ok, single_ in zip(
            info.cells, info.completed, info.meaningful, info.single, strict=True
        )
    ]
    ax.set_yticks(range(len(info.cells)), labels)
    ax.set_xlabel("searched hyperparameter")
    ax.set_ylabel("cell (difficulty / model, completed search trials)")
    fig.colorbar(image, ax=ax, label="importance (fraction of the cell's total)")
    notes = [
        "–: not searched by the cell, or fewer than 2 completed trials; (only): the one "
        "parameter the cell searched, 1 by definition, not coloured"
    ]
    if not any(info.meaningful):
        notes.insert(
            0,
            f"Too few trials to mean anything: no cell has the {info.enough} completed trials "
            "PED-ANOVA needs; read these as noise.",
        )
    elif not all(m or s for m, s in zip(info.meaningful, info.single, strict=True)):
        notes.insert(0, f'"too few": under {info.enough} completed trials, noise.')
    suptitle(fig, title, *notes)
    return fig


def importance_note(summary: Summary) -> str:
    """Whether the importances mean anything: PED-ANOVA needs many trials per cell."""
    frame = summary.importance
    several = frame.groupby(["difficulty", "model"])["param"].transform("nunique") > 1
    weak = frame.loc[several & ~frame["meaningful"].astype(bool)]
    if weak.empty:
        return ""
    cells = weak.groupby(["difficulty", "model"], sort=False).ngroups
    return (
        f"Hyperparameter importance: {cells} of the cells that searched several parameters "
        f"have fewer than {IMPORTANCE_TRIALS} completed search trials, too few for "
        "PED-ANOVA's importances to mean anything; read them as noise."
    )


FIGURE = FigurePart(
    "importance",
    "Hyperparameter importance",
    importance_info,
    draw_importance,
    note=importance_note,
    order=70,
)
