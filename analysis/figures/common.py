"""What every figure module uses: the figure part a module declares, and the shared drawing
pieces (labels, colours, level lines, scales, legends, titles, saving).

Figures are `matplotlib.figure.Figure` objects, never pyplot: no global state and no GUI
backend, so PNGs render with Agg and SVGs with matplotlib's SVG writer wherever this runs.
Every figure names its axes and units, the aggregation and the seeds.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.typing import LineStyleType

from analysis.summary import Summary, TaskInfo

Info = TypeVar("Info")


def always(summary: Summary) -> bool:
    """A figure every sweep gets."""
    return True


def no_note(summary: Summary) -> str:
    return ""


@dataclass(frozen=True)
class FigurePart(Generic[Info]):
    """One figure: a module of `analysis.figures` declares it as `FIGURE`, or a plugin
    passes it to `analysis.figures.register_figure`. The report and `figures()` read every
    part from the one registry, in `order`."""

    name: str  # an identifier: the figure's file name (name.png, name.svg)
    caption: str  # the report's caption; "{metric}" becomes the task's metric by name
    data: Callable[[Summary], Info]  # the numbers drawn (pure: tested on hand-built sweeps)
    draw: Callable[[Info], Figure]  # a thin drawing of them
    applies: Callable[[Summary], bool] = always  # whether this sweep gets the figure
    note: Callable[[Summary], str] = no_note  # a warning the report shows under it ("": none)
    order: int = 100  # place in the report, lowest first (built-in figures: 10-70)

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"figure name {self.name!r} must be a Python identifier")

    def render(self, summary: Summary) -> Figure:
        return self.draw(self.data(summary))

    def caption_of(self, summary: Summary) -> str:
        return self.caption.format(metric=summary.task.metric)


AnyPart = FigurePart[Any]


NAN = math.nan
CONFIRMATION = "confirmation seeds"


def seeds_text(counts: Iterable[int]) -> str:
    """Like "n = 10 confirmation seeds per cell"; a range when cells differ (diverged seeds
    are left out)."""
    values = sorted({int(c) for c in counts})
    if not values:
        return f"no {CONFIRMATION}"
    n = str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"
    return f"n = {n} {CONFIRMATION} per cell"


def error_label(task: TaskInfo, what: str = "final") -> str:
    """The metric's axis label: its name, unit and which way is better."""
    return f"{what} {task.metric} ({task.unit}; {task.direction})"


def model_colors(models: Iterable[str]) -> dict[str, str]:
    """One colour per model, the same in every figure of a report."""
    return {m: f"C{i % 10}" for i, m in enumerate(models)}


def present(summary: Summary) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The difficulties and models with confirmation results (finished, or curves of
    running trials), in ladder and spec order."""
    ran = pd.concat(
        [summary.cells[["difficulty", "model"]], summary.curves[["difficulty", "model"]]]
    )
    difficulties = tuple(d for d in summary.difficulties if d in set(ran["difficulty"]))
    models = tuple(m for m in summary.models if m in set(ran["model"]))
    return difficulties, models


def floats(values: pd.Series) -> tuple[float, ...]:
    return tuple(float(v) for v in values.to_numpy(dtype=float, na_value=NAN))


def by_difficulty(
    frame: pd.DataFrame, difficulties: tuple[str, ...], column: str
) -> tuple[float, ...]:
    """A column aligned to `difficulties`, NaN where a difficulty has no row."""
    series = frame.set_index("difficulty")[column]
    return floats(series.reindex(list(difficulties)).astype(float))


def as_counts(rows: tuple[tuple[float, ...], ...]) -> tuple[tuple[int, ...], ...]:
    """Counts from a float table (NaN where nothing ran: 0)."""
    return tuple(tuple(0 if math.isnan(v) else int(v) for v in row) for row in rows)


def thresholds_of(summary: Summary, difficulties: tuple[str, ...]) -> tuple[float, ...]:
    per_level = summary.cells.groupby("difficulty")["solved_threshold"].median()
    return tuple(float(per_level.get(d, NAN)) for d in difficulties)


def levels_of(summary: Summary, difficulties: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    """Chance and the task's reference levels (`Summary.levels`), each per difficulty (NaN
    where a difficulty has none), in the task's order, chance first."""
    frame = summary.levels
    table = frame.pivot_table(index="difficulty", columns="name", values="value", sort=False)
    names = list(dict.fromkeys(frame["name"]))
    return {
        str(name): floats(table[name].reindex(list(difficulties)).astype(float)) for name in names
    }


def uniform(values: tuple[float, ...]) -> float | None:
    """The value when every difficulty has the same one, else None."""
    finite = {v for v in values if not math.isnan(v)}
    return finite.pop() if len(finite) == 1 and not any(math.isnan(v) for v in values) else None


def solved_label(goal: str, threshold: float | None) -> str:
    value = "threshold" if threshold is None else f"{threshold:g}"
    return f"solved ({'≥' if goal == 'max' else '≤'} {value})"


@dataclass(frozen=True)
class Spread:
    """Across seeds, at each difficulty or step: the median and quartiles (NaN: no seeds)."""

    median: tuple[float, ...]
    q25: tuple[float, ...]
    q75: tuple[float, ...]


def spread_by_difficulty(
    frame: pd.DataFrame, difficulties: tuple[str, ...], prefix: str = ""
) -> dict[str, tuple[float, ...]]:
    """A `Spread`'s fields from the columns `{prefix}median`, `{prefix}q25`, `{prefix}q75`,
    aligned to `difficulties`."""
    return {f: by_difficulty(frame, difficulties, prefix + f) for f in ("median", "q25", "q75")}


def error_bars(ax: Axes, x: np.ndarray, spread: Spread, color: str, label: str) -> np.ndarray:
    """Medians joined by a line, with IQR whiskers; returns the medians."""
    median = np.array(spread.median)
    low = np.nan_to_num(median - np.array(spread.q25))
    high = np.nan_to_num(np.array(spread.q75) - median)
    ax.errorbar(x, median, yerr=[low, high], fmt="o-", color=color, capsize=3, label=label)
    return median


@dataclass(frozen=True)
class LineStyle:
    color: str
    ls: LineStyleType
    lw: float

    def line(self) -> Line2D:
        """A legend handle."""
        return Line2D([], [], color=self.color, ls=self.ls, lw=self.lw)


_CHANCE = LineStyle("0.4", "--", 1.0)
SOLVED_STYLE = LineStyle("C2", ":", 1.5)
# Reference levels the task declares: dark grey, each its own dash pattern.
_REFERENCE_DASHES: tuple[LineStyleType, ...] = (
    (0, (6, 2, 1, 2)),
    (0, (2, 2)),
    (0, (8, 3)),
    (0, (1, 1)),
)


def level_styles(names: Iterable[str]) -> dict[str, LineStyle]:
    """The line of each level: chance's, and a dash pattern per reference level."""
    references = [n for n in names if n != "chance"]
    styles = {"chance": _CHANCE}
    for i, name in enumerate(references):
        styles[name] = LineStyle("0.25", _REFERENCE_DASHES[i % len(_REFERENCE_DASHES)], 1.2)
    return styles


def _hline(ax: Axes, values: tuple[float, ...], label: str, style: LineStyle) -> None:
    """One level line: across the axes when every difficulty has the same value, else a
    segment over each difficulty's slot; labelled once in the legend."""
    same = uniform(values)
    if same is not None:
        ax.axhline(same, label=label, color=style.color, ls=style.ls, lw=style.lw)
        return
    for i, value in enumerate(values):
        if not math.isnan(value):
            ax.hlines(
                value, i - 0.4, i + 0.4, label=label, color=style.color, ls=style.ls, lw=style.lw
            )
            label = "_nolegend_"


def level_label(name: str, values: tuple[float, ...]) -> str:
    same = uniform(values)
    return f"{name} ({same:g})" if same is not None else name


def level_lines(
    ax: Axes, task: TaskInfo, levels: Mapping[str, tuple[float, ...]], thresholds: tuple[float, ...]
) -> None:
    """Chance, the task's reference levels and the solved threshold of each difficulty
    (they may differ), each labelled with its value when it is the same at every level."""
    styles = level_styles(levels)
    for name, values in levels.items():
        _hline(ax, values, level_label(name, values), styles[name])
    _hline(ax, thresholds, solved_label(task.goal, uniform(thresholds)), SOLVED_STYLE)


def legend_outside(ax: Axes) -> None:
    """Outside the axes, where it hides no data."""
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def suptitle(fig: Figure, *paragraphs: str) -> None:
    """The figure's title, each paragraph wrapped to the figure's width."""
    width = int(fig.get_figwidth() * 13)
    lines = (textwrap.fill(p, width, break_on_hyphens=False) for p in paragraphs)
    fig.suptitle("\n".join(lines), fontsize="medium")


@dataclass(frozen=True)
class Scale:
    """The metric axis: "linear", "log", or "symlog" (logarithmic above `linthresh`, linear
    below it down to 0, so that an exact 0 still shows)."""

    name: str
    linthresh: float = NAN
    top: float = NAN  # the axis's upper end on a log scale: room above the highest value


def metric_scale(values: Iterable[float], goal: str) -> Scale:
    """The scale on which models are told apart. An error (a "min" goal, never negative)
    whose values span more than a decade gets a log scale, so the winners near zero are not
    squashed onto the threshold line; with an exact 0 among them (every bit right), a
    symlog scale, linear from 0 up to the decade of the smallest positive value. Rewards
    ("max"), which may be negative, and values within a decade keep a linear scale."""
    finite = [v for v in values if math.isfinite(v)]
    positive = [v for v in finite if v > 0]
    if goal != "min" or not positive or min(finite) < 0 or max(positive) < 10 * min(positive):
        return Scale("linear")
    top = max(positive) * 10**0.15  # lines at the highest value (chance) stay off the frame
    if min(finite) > 0:
        return Scale("log", top=top)
    return Scale("symlog", 10.0 ** math.floor(math.log10(min(positive))), top)


def offsets(models: tuple[str, ...], width: float = 0.5) -> dict[str, float]:
    """Side-by-side positions of the models around each difficulty's tick."""
    n = len(models)
    return {m: (i - (n - 1) / 2) * width / max(1, n) for i, m in enumerate(models)}


def set_scale(ax: Axes, scale: Scale) -> None:
    """The metric axis on `scale`, ticks written as plain numbers."""
    if scale.name == "linear":
        return
    if scale.name == "symlog":
        ax.set_yscale("symlog", linthresh=scale.linthresh, linscale=0.5)
        ax.set_ylim(bottom=0)  # errors are never negative
    else:
        ax.set_yscale("log")
        # Ticks at 1, 2 and 5 of every decade, written as plain numbers (0.02, not 2e-2).
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(top=scale.top)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def scale_text(scale: Scale) -> str:
    if scale.name == "log":
        return "; y axis logarithmic"
    if scale.name == "symlog":
        return f"; y axis logarithmic above {scale.linthresh:g}, linear from 0 to it"
    return ""


def point_label(
    ax: Axes, text: str, at: tuple[float, float], color: str, left: bool = False
) -> None:
    """A small label just right (or left) of a point, on an opaque box above every line, so
    no error bar strikes it through."""
    ax.annotate(
        text,
        at,
        textcoords="offset points",
        xytext=(-5 if left else 5, 0),
        ha="right" if left else "left",
        va="center",
        fontsize="x-small",
        color=color,
        zorder=5,
        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.9},
        annotation_clip=True,
    )


def save(fig: Figure, folder: Path, name: str, dpi: int = 110) -> tuple[Path, Path]:
    """The figure as `name.png` and `name.svg` in `folder` (its layout is then fixed)."""
    folder.mkdir(parents=True, exist_ok=True)
    png, svg = folder / f"{name}.png", folder / f"{name}.svg"
    fig.savefig(png, dpi=dpi)
    # Keep the layout computed for the PNG: constrained layout is the slowest part of
    # drawing a grid of panels, and it would come out the same.
    fig.set_layout_engine("none")
    fig.savefig(svg)
    return png, svg
