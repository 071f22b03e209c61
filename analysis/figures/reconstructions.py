"""Reconstructions (picture tasks only): per held-out episode, the original, the cue and
each model's output from its cell's typical trial."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from analysis.figures.common import (
    FigurePart,
    new_figure,
    suptitle,
)
from analysis.summary import Summary, TaskInfo


@dataclass(frozen=True)
class Picture:
    """One held-out episode of one difficulty: the image, the part the cue erased, and what
    each model's typical trial output at the last step."""

    difficulty: str
    sample: int
    shape: tuple[int, int]  # rows, cols
    target: tuple[float, ...]  # row-major
    erased: tuple[bool, ...]
    outputs: Mapping[str, tuple[float, ...]]  # model -> its output
    errors: Mapping[str, float]  # model -> mean squared error on the erased part
    seeds: Mapping[str, int]  # model -> the seed of the trial shown


@dataclass(frozen=True)
class ReconstructionInfo:
    sweep: str
    task: TaskInfo
    models: tuple[str, ...]
    pictures: tuple[Picture, ...]  # ladder order, then sample
    phases: tuple[str, ...]  # the phases of the trials shown (confirm, or search)


def reconstruction_info(summary: Summary) -> ReconstructionInfo:
    rows = summary.reconstructions
    models = tuple(m for m in summary.models if m in set(rows["model"]))
    pictures = []
    for _, same in rows.groupby(["difficulty", "sample"], sort=False):
        records = same.to_dict("records")
        first = records[0]
        target = np.asarray(first["target"], dtype=float)
        erased = np.asarray(first["erased"], dtype=bool)
        outputs, errors, seeds = {}, {}, {}
        for row in records:
            model, output = str(row["model"]), np.asarray(row["output"], dtype=float)
            outputs[model] = tuple(output.tolist())
            errors[model] = float(np.square(output - target)[erased].mean())
            seeds[model] = int(row["seed"])
        pictures.append(
            Picture(
                str(first["difficulty"]),
                int(first["sample"]),
                (int(first["rows"]), int(first["cols"])),
                tuple(target.tolist()),
                tuple(erased.tolist()),
                outputs,
                errors,
                seeds,
            )
        )
    phases = tuple(dict.fromkeys(str(p) for p in rows["phase"]))
    return ReconstructionInfo(summary.sweep, summary.task, models, tuple(pictures), phases)


def draw_reconstructions(info: ReconstructionInfo) -> Figure:
    """A grid: one row per held-out episode; original, cue (erased part in red), then each
    model's output on the images' grey scale (-1 black, +1 white)."""
    columns = ("original", "cue", *info.models)
    rows = max(1, len(info.pictures))
    fig = new_figure(1.45 * len(columns) + 0.9, 1.55 * rows + 1.2)
    axes = fig.subplots(rows, len(columns), squeeze=False)
    grey = matplotlib.colormaps["gray"].with_extremes(bad="#d04040")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for r, picture in enumerate(info.pictures):
        target = np.reshape(picture.target, picture.shape)
        cue = np.ma.masked_array(target, np.reshape(picture.erased, picture.shape))
        shown = {"original": target, "cue": cue}
        shown.update({m: np.reshape(o, picture.shape) for m, o in picture.outputs.items()})
        for c, column in enumerate(columns):
            ax = axes[r][c]
            if column not in shown:
                ax.text(0.5, 0.5, "not\nrecorded", ha="center", va="center", color="0.5")
                continue
            ax.imshow(shown[column], cmap=grey, vmin=-1, vmax=1, interpolation="nearest")
            if column in picture.errors:
                seed = picture.seeds[column]
                ax.set_xlabel(f"{picture.errors[column]:.3f} (seed {seed})", fontsize="x-small")
        axes[r][0].set_ylabel(f"{picture.difficulty}\n#{picture.sample}", fontweight="bold")
    for c, column in enumerate(columns):
        axes[0][c].set_title(column, fontsize="medium")
    which = (
        "the confirmation trial with the median final error"
        if info.phases == ("confirm",)
        else "the confirmation trial with the median final error (the best search trial "
        "where a cell has none)"
    )
    suptitle(
        fig,
        f"{info.sweep}: reconstructions of held-out images never seen in training",
        f"rows: difficulty and episode (the same images for every model); per model, {which}; "
        f"under each output: its {info.task.metric} and the trial's seed; red: the erased part",
    )
    return fig


def recorded_pictures(summary: Summary) -> bool:
    """Only sweeps that recorded reconstructions (picture tasks)."""
    return not summary.reconstructions.empty


FIGURE = FigurePart(
    "reconstructions",
    "Reconstructions of held-out images",
    reconstruction_info,
    draw_reconstructions,
    applies=recorded_pictures,
    order=30,
)
