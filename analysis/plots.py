"""Comparison figures of one sweep.

Each figure is a pure info function (Summary -> a frozen dataclass of the numbers drawn;
tested) and a thin drawing function (info -> matplotlib Figure), the split Optuna's
visualization uses. Figures are `matplotlib.figure.Figure` objects, never pyplot: no global
state and no GUI backend, so PNGs render with Agg and SVGs with matplotlib's SVG writer
wherever this runs. Every figure names its axes and units, the aggregation and the seeds.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.typing import LineStyleType

from analysis.summary import IMPORTANCE_TRIALS, SOLVED_IN, Summary, TaskInfo

NAN = math.nan
CONFIRMATION = "confirmation seeds"


# -- shared pieces --------------------------------------------------------------------------
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


def _colors(models: Iterable[str]) -> dict[str, str]:
    """One colour per model, the same in every figure of a report."""
    return {m: f"C{i % 10}" for i, m in enumerate(models)}


def _present(summary: Summary) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The difficulties and models with confirmation results (finished, or curves of
    running trials), in ladder and spec order."""
    ran = pd.concat(
        [summary.cells[["difficulty", "model"]], summary.curves[["difficulty", "model"]]]
    )
    difficulties = tuple(d for d in summary.difficulties if d in set(ran["difficulty"]))
    models = tuple(m for m in summary.models if m in set(ran["model"]))
    return difficulties, models


def _floats(values: pd.Series) -> tuple[float, ...]:
    return tuple(float(v) for v in values.to_numpy(dtype=float, na_value=NAN))


def _by_difficulty(
    frame: pd.DataFrame, difficulties: tuple[str, ...], column: str
) -> tuple[float, ...]:
    """A column aligned to `difficulties`, NaN where a difficulty has no row."""
    series = frame.set_index("difficulty")[column]
    return _floats(series.reindex(list(difficulties)).astype(float))


def _counts(rows: tuple[tuple[float, ...], ...]) -> tuple[tuple[int, ...], ...]:
    """Counts from a float table (NaN where nothing ran: 0)."""
    return tuple(tuple(0 if math.isnan(v) else int(v) for v in row) for row in rows)


def _thresholds(summary: Summary, difficulties: tuple[str, ...]) -> tuple[float, ...]:
    per_level = summary.cells.groupby("difficulty")["solved_threshold"].median()
    return tuple(float(per_level.get(d, NAN)) for d in difficulties)


def _levels(summary: Summary, difficulties: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    """Chance and the task's reference levels (`Summary.levels`), each per difficulty (NaN
    where a difficulty has none), in the task's order, chance first."""
    frame = summary.levels
    table = frame.pivot_table(index="difficulty", columns="name", values="value", sort=False)
    names = list(dict.fromkeys(frame["name"]))
    return {
        str(name): _floats(table[name].reindex(list(difficulties)).astype(float)) for name in names
    }


def _uniform(values: tuple[float, ...]) -> float | None:
    """The value when every difficulty has the same one, else None."""
    finite = {v for v in values if not math.isnan(v)}
    return finite.pop() if len(finite) == 1 and not any(math.isnan(v) for v in values) else None


def _solved_label(goal: str, threshold: float | None) -> str:
    value = "threshold" if threshold is None else f"{threshold:g}"
    return f"solved ({'≥' if goal == 'max' else '≤'} {value})"


@dataclass(frozen=True)
class LineStyle:
    color: str
    ls: LineStyleType
    lw: float

    def line(self) -> Line2D:
        """A legend handle."""
        return Line2D([], [], color=self.color, ls=self.ls, lw=self.lw)


_CHANCE = LineStyle("0.4", "--", 1.0)
_SOLVED = LineStyle("C2", ":", 1.5)
# Reference levels the task declares: dark grey, each its own dash pattern.
_REFERENCE_DASHES: tuple[LineStyleType, ...] = (
    (0, (6, 2, 1, 2)),
    (0, (2, 2)),
    (0, (8, 3)),
    (0, (1, 1)),
)


def _level_styles(names: Iterable[str]) -> dict[str, LineStyle]:
    """The line of each level: chance's, and a dash pattern per reference level."""
    references = [n for n in names if n != "chance"]
    styles = {"chance": _CHANCE}
    for i, name in enumerate(references):
        styles[name] = LineStyle("0.25", _REFERENCE_DASHES[i % len(_REFERENCE_DASHES)], 1.2)
    return styles


def _hline(ax: Axes, values: tuple[float, ...], label: str, style: LineStyle) -> None:
    """One level line: across the axes when every difficulty has the same value, else a
    segment over each difficulty's slot; labelled once in the legend."""
    same = _uniform(values)
    if same is not None:
        ax.axhline(same, label=label, color=style.color, ls=style.ls, lw=style.lw)
        return
    for i, value in enumerate(values):
        if not math.isnan(value):
            ax.hlines(
                value, i - 0.4, i + 0.4, label=label, color=style.color, ls=style.ls, lw=style.lw
            )
            label = "_nolegend_"


def _level_label(name: str, values: tuple[float, ...]) -> str:
    same = _uniform(values)
    return f"{name} ({same:g})" if same is not None else name


def _level_lines(
    ax: Axes, task: TaskInfo, levels: Mapping[str, tuple[float, ...]], thresholds: tuple[float, ...]
) -> None:
    """Chance, the task's reference levels and the solved threshold of each difficulty
    (they may differ), each labelled with its value when it is the same at every level."""
    styles = _level_styles(levels)
    for name, values in levels.items():
        _hline(ax, values, _level_label(name, values), styles[name])
    _hline(ax, thresholds, _solved_label(task.goal, _uniform(thresholds)), _SOLVED)


def _legend(ax: Axes) -> None:
    """Outside the axes, where it hides no data."""
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _title(fig: Figure, *paragraphs: str) -> None:
    """The figure's title, each paragraph wrapped to the figure's width."""
    width = int(fig.get_figwidth() * 13)
    lines = (textwrap.fill(p, width, break_on_hyphens=False) for p in paragraphs)
    fig.suptitle("\n".join(lines), fontsize="medium")


# -- learning curves ------------------------------------------------------------------------
@dataclass(frozen=True)
class Band:
    """A cell's learning curve: per evaluation step, median and quartiles across seeds."""

    episodes: tuple[float, ...]
    median: tuple[float, ...]
    q25: tuple[float, ...]
    q75: tuple[float, ...]
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
    difficulties, models = _present(summary)
    bands = {
        (str(d), str(m)): Band(
            episodes=_floats(rows["episodes"]),
            median=_floats(rows["median"]),
            q25=_floats(rows["q25"]),
            q75=_floats(rows["q75"]),
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
        _thresholds(summary, difficulties),
        _levels(summary, difficulties),
    )


def draw_learning_curves(info: LearningCurvesInfo) -> Figure:
    rows, cols = max(1, len(info.difficulties)), max(1, len(info.models))
    fig = _figure(2.6 * cols + 2.4, 1.9 * rows + 1.0)
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    colors = _colors(info.models)
    for r, difficulty in enumerate(info.difficulties):
        for c, model in enumerate(info.models):
            ax = axes[r][c]
            band = info.bands.get((difficulty, model))
            if band is not None:
                ax.fill_between(band.episodes, band.q25, band.q75, color=colors[model], alpha=0.3)
                ax.plot(band.episodes, band.median, color=colors[model], lw=1.5)
            else:
                ax.text(0.5, 0.5, "no curves", transform=ax.transAxes, ha="center", color="0.5")
            _level_lines(
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
    styles = _level_styles(info.levels)
    handles = [styles[name].line() for name in info.levels]
    handles.append(_SOLVED.line())
    labels = [_level_label(name, values) for name, values in info.levels.items()]
    labels.append(_solved_label(info.task.goal, _uniform(info.thresholds)))
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize="small")
    fig.supylabel(error_label(info.task, "evaluation"))
    counts = [b.seeds for b in info.bands.values()]
    _title(
        fig,
        f"{info.sweep}: learning curves, median (line) and IQR (band: 25th–75th percentile) "
        f"over {seeds_text(counts)}",
        "rows: difficulty (easiest first); lines: each level's chance, reference levels and "
        "solved threshold",
    )
    return fig


# -- final error vs difficulty --------------------------------------------------------------
@dataclass(frozen=True)
class ErrorSeries:
    """One model's final metric at each difficulty (NaN where it has no seeds): the
    headline's statistic, the median and IQR across seeds."""

    median: tuple[float, ...]
    q25: tuple[float, ...]
    q75: tuple[float, ...]
    seeds: tuple[int, ...]
    points: tuple[tuple[int, float], ...]  # (difficulty index, final value) of every seed


@dataclass(frozen=True)
class Scale:
    """The metric axis: "linear", "log", or "symlog" (logarithmic above `linthresh`, linear
    below it down to 0, so that an exact 0 still shows)."""

    name: str
    linthresh: float = NAN
    top: float = NAN  # the axis's upper end on a log scale: room above the highest value


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


def final_error_info(summary: Summary) -> FinalErrorInfo:
    difficulties, models = _present(summary)
    rank = {d: i for i, d in enumerate(difficulties)}
    series = {}
    for model in models:
        cells = summary.cells[summary.cells["model"] == model]
        seeds = summary.seeds[summary.seeds["model"] == model]
        series[model] = ErrorSeries(
            median=_by_difficulty(cells, difficulties, "median"),
            q25=_by_difficulty(cells, difficulties, "q25"),
            q75=_by_difficulty(cells, difficulties, "q75"),
            seeds=_counts((_by_difficulty(cells, difficulties, "seeds"),))[0],
            points=tuple(
                (rank[d], float(e))
                for d, e in zip(seeds["difficulty"], seeds["final_error"], strict=True)
                if d in rank
            ),
        )
    wins = summary.headline[summary.headline["significant"].astype(bool)]
    winner = dict(zip(wins["difficulty"], wins["winner"], strict=True))
    thresholds, levels = _thresholds(summary, difficulties), _levels(summary, difficulties)
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


def _offsets(models: tuple[str, ...], width: float = 0.5) -> dict[str, float]:
    """Side-by-side positions of the models around each difficulty's tick."""
    n = len(models)
    return {m: (i - (n - 1) / 2) * width / max(1, n) for i, m in enumerate(models)}


def _set_scale(ax: Axes, scale: Scale) -> None:
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


def _scale_text(scale: Scale) -> str:
    if scale.name == "log":
        return "; y axis logarithmic"
    if scale.name == "symlog":
        return f"; y axis logarithmic above {scale.linthresh:g}, linear from 0 to it"
    return ""


def draw_final_error(info: FinalErrorInfo) -> Figure:
    fig = _figure(max(6.5, 1.3 * len(info.difficulties) + 3.5), 4.8)
    ax = fig.subplots()
    colors, shift = _colors(info.models), _offsets(info.models)
    for model, s in info.series.items():
        x = np.arange(len(info.difficulties)) + shift[model]
        median = np.array(s.median)
        low = np.nan_to_num(median - np.array(s.q25))
        high = np.nan_to_num(np.array(s.q75) - median)
        ax.errorbar(
            x, median, yerr=[low, high], fmt="o-", color=colors[model], capsize=3, label=model
        )
        if s.points:
            px = np.array([i for i, _ in s.points], dtype=float) + shift[model]
            ax.scatter(px, [e for _, e in s.points], s=9, color=colors[model], alpha=0.45, lw=0)
    _level_lines(ax, info.task, info.levels, info.thresholds)
    _set_scale(ax, info.scale)
    # A significant win is named under its difficulty, where no error bar can cross it.
    ticks = [
        d if winner is None else f"{d}\n* {winner}"
        for d, winner in zip(info.difficulties, info.significant, strict=True)
    ]
    ax.set_xticks(range(len(info.difficulties)), ticks)
    ax.set_xlabel("difficulty (easiest first)")
    ax.set_ylabel(error_label(info.task))
    _legend(ax)
    counts = [n for s in info.series.values() for n in s.seeds if n]
    ax.set_xlim(-0.5, len(info.difficulties) - 0.5)
    best = "highest" if info.task.goal == "max" else "lowest"
    _title(
        fig,
        f"{info.sweep}: final {info.task.metric}, median and IQR (25th–75th percentile; dots: "
        f"single seeds) over {seeds_text(counts)}",
        f"* model under a difficulty: {best} median, Holm-adjusted rank-sum p < 0.05 against "
        f"the runner-up{_scale_text(info.scale)}",
    )
    return fig


def _label(ax: Axes, text: str, at: tuple[float, float], color: str, left: bool = False) -> None:
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


# -- episodes to solve ----------------------------------------------------------------------
@dataclass(frozen=True)
class SolveSeries:
    """One model's episodes to solve per difficulty, over the seeds that solved it."""

    median: tuple[float, ...]
    q25: tuple[float, ...]
    q75: tuple[float, ...]
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
    difficulties, models = _present(summary)
    series = {}
    for model in models:
        cells = summary.cells[summary.cells["model"] == model]
        counts = _counts(tuple(_by_difficulty(cells, difficulties, c) for c in ("solved", "seeds")))
        series[model] = SolveSeries(
            median=_by_difficulty(cells, difficulties, "solve_median"),
            q25=_by_difficulty(cells, difficulties, "solve_q25"),
            q75=_by_difficulty(cells, difficulties, "solve_q75"),
            solved=counts[0],
            seeds=counts[1],
        )
    budget = float(summary.cells["episodes"].max()) if len(summary.cells) else NAN
    return EpisodesToSolveInfo(summary.sweep, difficulties, models, series, budget)


def draw_episodes_to_solve(info: EpisodesToSolveInfo) -> Figure:
    fig = _figure(max(6.0, 1.3 * len(info.difficulties) + 3), 4.6)
    ax = fig.subplots()
    colors, shift = _colors(info.models), _offsets(info.models)
    for model, s in info.series.items():
        x = np.arange(len(info.difficulties)) + shift[model]
        median = np.array(s.median)
        yerr = [np.nan_to_num(median - s.q25), np.nan_to_num(np.array(s.q75) - median)]
        ax.errorbar(x, median, yerr=yerr, fmt="o-", color=colors[model], capsize=3, label=model)
        for xi, yi, k, n in zip(x, median, s.solved, s.seeds, strict=True):
            if n:
                y = info.budget if math.isnan(yi) else yi
                _label(ax, f"{k}/{n}", (xi, y), colors[model])
    if not math.isnan(info.budget):
        ax.axhline(info.budget, color="0.4", ls="--", lw=1, label="training budget")
    ax.set_xticks(range(len(info.difficulties)), info.difficulties)
    ax.set_xlabel("difficulty (easiest first)")
    ax.set_ylabel("training episodes to reach the solved threshold")
    ax.set_ylim(0, None if math.isnan(info.budget) else info.budget * 1.08)
    _legend(ax)
    counts = [n for s in info.series.values() for n in s.seeds if n]
    ax.set_xlim(-0.5, len(info.difficulties) - 0.5)
    _title(
        fig,
        f"{info.sweep}: episodes to solve, median and IQR (25th–75th percentile) over the "
        f"seeds that solved, of {seeds_text(counts)}",
        "labels: seeds solved / seeds (at the budget line when none solved)",
    )
    return fig


# -- frontier -------------------------------------------------------------------------------
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
    difficulties, models = _present(summary)
    by_model = {m: summary.cells[summary.cells["model"] == m] for m in models}

    def column(name: str) -> tuple[tuple[float, ...], ...]:
        return tuple(_by_difficulty(by_model[m], difficulties, name) for m in models)

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
        solved=_counts(column("solved")),
        seeds=_counts(column("seeds")),
        median=column("median"),
        frontier={
            m: rank.get(str(reached[m])) if pd.notna(reached.get(m)) else None for m in models
        },
        islands={m: tuple(rank[d] for d in islands.get(m, ()) if d in rank) for m in models},
        at_least=SOLVED_IN,
    )


def draw_frontier(info: FrontierInfo) -> Figure:
    fig = _figure(max(5.5, 1.6 * len(info.difficulties) + 2.8), 1.0 * len(info.models) + 2.4)
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
    _title(
        fig,
        f"{info.sweep}: difficulty frontier over {seeds_text(counts)}",
        f"cells: seeds solved / seeds and median final {info.task.metric}; red box: the "
        f"frontier, the hardest level solved in ≥ {info.at_least:.0%} of the seeds with every "
        "easier level; dashed orange: an island, solved beyond a level the model fails",
    )
    return fig


# -- hyperparameter importance --------------------------------------------------------------
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
    fig = _figure(max(6.0, 1.2 * len(info.params) + 4.5), 0.45 * len(info.cells) + 2.6)
    ax = fig.subplots()
    title = (
        f"{info.sweep}: hyperparameter importance per cell (PED-ANOVA on the cell's Optuna "
        "study, sums to 1 per cell)"
    )
    if not info.cells:
        ax.text(0.5, 0.5, "no Optuna studies found", ha="center", va="center")
        ax.set_axis_off()
        _title(fig, title)
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
    _title(fig, title, *notes)
    return fig


# -- parameter count vs error ---------------------------------------------------------------
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
    _, models = _present(summary)
    cells = summary.cells[summary.cells["seeds"] > 0]
    points = {
        m: tuple(
            zip(
                (str(d) for d in cells.loc[cells["model"] == m, "difficulty"]),
                *(_floats(cells.loc[cells["model"] == m, c]) for c in _POINT),
                strict=True,
            )
        )
        for m in models
    }
    seeds = tuple(int(n) for n in cells["seeds"])
    # Points of every difficulty share the axes: only levels the same at each can be drawn.
    per_level = _levels(summary, _present(summary)[0]).items()
    levels = {name: v for name, values in per_level if (v := _uniform(values)) is not None}
    drawn = [v for c in ("median", "q25", "q75") for v in _floats(cells[c])]
    scale = metric_scale([*drawn, *levels.values()], summary.task.goal)
    return ParametersInfo(summary.sweep, summary.task, models, points, seeds, scale, levels)


def draw_parameters(info: ParametersInfo) -> Figure:
    fig = _figure(7.5, 4.8)
    ax = fig.subplots()
    colors = _colors(info.models)
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
    styles = _level_styles(info.levels)
    for name, value in info.levels.items():
        style = styles[name]
        ax.axhline(value, label=f"{name} ({value:g})", color=style.color, ls=style.ls, lw=style.lw)
    ax.set_xscale("log")
    ax.margins(x=0.08)
    _set_scale(ax, info.scale)
    # Labels after the limits are final: points in the right third are labelled on their
    # left, so no label runs off the axes.
    ax.autoscale_view()
    to_axes = ax.transData + ax.transAxes.inverted()
    for model, cells in info.points.items():
        for difficulty, x, y, _, _ in cells:
            left = bool(to_axes.transform((x, y))[0] > 0.67)
            _label(ax, difficulty, (x, y), colors[model], left=left)
    ax.set_xlabel("trainable parameters (count, log scale)")
    ax.set_ylabel(error_label(info.task))
    _legend(ax)
    _title(
        fig,
        f"{info.sweep}: parameter count vs final {info.task.metric}, median and IQR "
        f"(25th–75th percentile) over {seeds_text(info.seeds)}",
        f"one point per cell, labelled with its difficulty{_scale_text(info.scale)}",
    )
    return fig


# -- reconstructions ------------------------------------------------------------------------
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
    fig = _figure(1.45 * len(columns) + 0.9, 1.55 * rows + 1.2)
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
    _title(
        fig,
        f"{info.sweep}: reconstructions of held-out images never seen in training",
        f"rows: difficulty and episode (the same images for every model); per model, {which}; "
        f"under each output: its {info.task.metric} and the trial's seed; red: the erased part",
    )
    return fig


# -- all of them ----------------------------------------------------------------------------
FIGURES: dict[str, tuple[Callable[[Summary], object], Callable[..., Figure]]] = {
    "learning_curves": (learning_curves_info, draw_learning_curves),
    "final_error": (final_error_info, draw_final_error),
    "episodes_to_solve": (episodes_to_solve_info, draw_episodes_to_solve),
    "frontier": (frontier_info, draw_frontier),
    "importance": (importance_info, draw_importance),
    "parameters": (parameters_info, draw_parameters),
    "reconstructions": (reconstruction_info, draw_reconstructions),
}


def figures(summary: Summary) -> dict[str, Figure]:
    """Every figure of one sweep's summary, by name; `reconstructions` only when the sweep
    recorded some (picture tasks)."""
    return {
        name: draw(info(summary))
        for name, (info, draw) in FIGURES.items()
        if name != "reconstructions" or not summary.reconstructions.empty
    }


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
