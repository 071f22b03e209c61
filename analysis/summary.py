"""Summaries per cell (difficulty, model) across seeds, and the comparisons between models.

Pure functions of the trials / curves frames (`analysis.load`), so they are tested on
hand-built frames. Comparisons use the confirmation trials (phase "confirm"): each cell's
best configuration re-run on the same fresh seeds, the fair comparison. Search trials are
chosen for being good on one seed and would flatter every model. Diverged and failed trials
are counted per cell and left out of every statistic: a diverged trial's error is that of
its last finite evaluation, not a result of its training.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import optuna
import pandas as pd
from optuna.importance import PedAnovaImportanceEvaluator
from optuna.trial import TrialState

from analysis.stats import bootstrap_mean_ci, holm, quartiles, rank_sum, smallest_rank_sum_p
from analysis.tables import Results
from sweep.store import GOALS, current_confirmation, reached

CELL = ["sweep", "difficulty", "model"]
SEARCH, CONFIRM = "search", "confirm"
LEFT_OUT = ("diverged", "failed")
ALPHA = 0.05
SOLVED_IN = 0.5  # a model "solves" a level when at least this fraction of its seeds does
# PED-ANOVA compares the top 10% of a study's trials with the rest; Optuna's documentation
# asks for at least 5 trials in that top 10% for a stable answer.
IMPORTANCE_TRIALS = 50


@dataclass(frozen=True)
class TaskInfo:
    """What a task's metric means on a figure: its name, unit and direction."""

    metric: str  # its name as a reader says it ("bit error", "reward")
    unit: str
    goal: str = "min"  # "min": lower is better; "max": higher is better (sweep.store.GOALS)
    chance: float | None = None  # the metric of a network that learned nothing, when the
    # same at every level (else None: `Summary.levels` holds each level's)

    @property
    def direction(self) -> str:
        return "higher is better" if self.goal == "max" else "lower is better"


# Names and units of the metrics the tasks record (the trials' `metric` column); a metric
# not listed here is shown by its own name.
METRICS = {
    "bit_error": ("bit error", "fraction of wrong-sign bits"),
    "erased_mse": ("erased-part MSE", "mean squared error on the erased pixels"),
    "reward": ("reward", "per episode"),
}


def goal_of(rows: pd.DataFrame) -> str:
    """The direction of the metric these rows hold: "max" (higher is better) or "min".
    Rows written before sweeps recorded a goal (schema 1) are "min": every task then was.
    Raises ValueError for rows that mix goals (they cannot be ranked together)."""
    column = rows["goal"] if "goal" in rows else pd.Series(dtype="str")
    goals = sorted(set(column.dropna().astype(str)))
    if len(goals) > 1 or not set(goals) <= set(GOALS):
        raise ValueError(f"rows hold metric goals {goals}; expected one of {list(GOALS)}")
    return goals[0] if goals else "min"


def _sign(goal: str) -> float:
    """Multiplies a metric into a ranking key where smaller is better."""
    return -1.0 if goal == "max" else 1.0


def _rank_key(rows: pd.DataFrame, column: str) -> pd.Series:
    """`column` as a key where smaller is better, row by row per the rows' own goal."""
    goals = rows["goal"].fillna("min") if "goal" in rows else pd.Series("min", index=rows.index)
    signs = goals.map(lambda g: _sign(str(g))).astype(float)
    return rows[column].astype("float64") * signs


def task_info(trials: pd.DataFrame) -> TaskInfo:
    """Labels for the metric of these trials' rows (named in their `metric` column), its
    goal, and its chance level when every level has the same one."""
    metrics = trials["metric"].dropna() if "metric" in trials else pd.Series(dtype="str")
    metric = str(metrics.iloc[0]) if len(metrics) else "error"
    name, unit = METRICS.get(metric, (metric.replace("_", " "), "the task's metric"))
    chances = set(trials["chance"].dropna().astype(float)) if "chance" in trials else set()
    chance = chances.pop() if len(chances) == 1 else None
    return TaskInfo(name, unit, goal_of(trials), chance)


def levels(trials: pd.DataFrame) -> pd.DataFrame:
    """The reference levels of each difficulty, which figures draw beside the models: one
    row per (sweep, difficulty, name) with its `value`; "chance" first, then those the task
    declares (trials' `references`, a JSON object of name -> value; the pattern task's
    "copy the cue"), in the task's order; the median over the difficulty's rows."""
    rows = []
    for (sweep, difficulty), level in trials.groupby(["sweep", "difficulty"], sort=False):
        values: dict[str, list[float]] = {}
        if "chance" in level:
            values["chance"] = [float(v) for v in level["chance"].dropna()]
        texts = level["references"].dropna() if "references" in level else pd.Series()
        for text in dict.fromkeys(texts):
            for name, value in json.loads(str(text)).items():
                values.setdefault(str(name), []).append(float(value))
        rows += [
            {"sweep": sweep, "difficulty": difficulty, "name": name, "value": float(np.median(v))}
            for name, v in values.items()
            if v
        ]
    return pd.DataFrame(rows, columns=["sweep", "difficulty", "name", "value"])


def usable(trials: pd.DataFrame, phase: str = CONFIRM) -> pd.DataFrame:
    """The trials of `phase` that statistics use: neither diverged nor failed, with a final
    error."""
    return trials[_usable(trials, phase)]


def _usable(trials: pd.DataFrame, phase: str) -> pd.Series:
    return (
        (current_confirmation(trials) if phase == CONFIRM else trials["phase"] == phase)
        & ~trials["status"].isin(LEFT_OUT)
        & trials["final_value"].notna()
    )


def _floats(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=float, na_value=math.nan)


def _median(series: pd.Series) -> float:
    """NaN, quietly, when every value is missing."""
    return float(series.astype("float64").median())


def cell_summary(trials: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per cell with confirmation trials, in order of first appearance:

    seeds, diverged, failed: confirmation trials used / left out;
    median, q25, q75: the final value of the task's metric across seeds, its median and
    inter-quartile range (IQR: the 25th to 75th percentile); mean, ci_low, ci_high: its mean
    with a 95% percentile-bootstrap interval (9,999 resamples from `seed`);
    solved, solve_rate: seeds whose final value reached the solved threshold (what the
    trained network does, not a lucky evaluation on the way: a seed that touched the
    threshold and fell back is not solved); solve_median, solve_q25, solve_q75: episodes to
    solve (the first evaluation at the threshold), over the seeds that solved;
    num_parameters, solved_threshold, episodes (training budget): the cell's median;
    goal: the metric's direction ("min" or "max").
    """
    # a grown sweep may hold an earlier choice's confirmation too: the current one counts
    confirm = trials[current_confirmation(trials)]
    ok = _usable(confirm, CONFIRM).to_numpy()
    rows = []
    for key, at in confirm.groupby(CELL, sort=False).indices.items():
        cell, used = confirm.iloc[at], confirm.iloc[at[ok[at]]]
        errors = _floats(used["final_value"])
        goal = goal_of(cell)
        solved = reached(errors, _floats(used["solved_threshold"]), goal)
        solve = _floats(used["episodes_to_solve"][solved].dropna())
        q, s = quartiles(errors), quartiles(solve)
        ci = bootstrap_mean_ci(errors, seed=seed)
        rows.append(
            {
                **dict(zip(CELL, cast(tuple[str, str, str], key), strict=True)),
                "seeds": len(used),
                "diverged": int((cell["status"] == "diverged").sum()),
                "failed": int((cell["status"] == "failed").sum()),
                "median": q.median,
                "q25": q.q25,
                "q75": q.q75,
                "mean": float(errors.mean()) if errors.size else math.nan,
                "ci_low": ci[0],
                "ci_high": ci[1],
                "solved": int(solved.sum()),
                "solve_rate": int(solved.sum()) / len(used) if len(used) else math.nan,
                "solve_median": s.median,
                "solve_q25": s.q25,
                "solve_q75": s.q75,
                "num_parameters": _median(cell["num_parameters"]),
                "solved_threshold": _median(cell["solved_threshold"]),
                "episodes": _median(cell["episodes"]),
                "goal": goal,
            }
        )
    return pd.DataFrame(rows, columns=[*CELL, *_SUMMARY_COLUMNS])


_SUMMARY_COLUMNS = [
    "seeds",
    "diverged",
    "failed",
    "median",
    "q25",
    "q75",
    "mean",
    "ci_low",
    "ci_high",
    "solved",
    "solve_rate",
    "solve_median",
    "solve_q25",
    "solve_q75",
    "num_parameters",
    "solved_threshold",
    "episodes",
    "goal",
]


def comparisons(trials: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Every pair of models at each difficulty of each sweep: a two-sided rank-sum test of
    their confirmation final values of the metric (two-sided: the same whichever way the
    metric points); p_holm is Holm-adjusted over the pairs at that
    difficulty (the family a reader scans when asking "who wins here?"), and `significant`
    is p_holm < alpha. `best_p` is the smallest p the two group sizes allow."""
    good = usable(trials)
    rows = []
    for (sweep, difficulty), level in good.groupby(["sweep", "difficulty"], sort=False):
        errors = {m: _floats(g["final_value"]) for m, g in level.groupby("model", sort=False)}
        for a, b in itertools.combinations(errors, 2):
            test = rank_sum(errors[a], errors[b])
            rows.append(
                {
                    "sweep": sweep,
                    "difficulty": difficulty,
                    "model_a": a,
                    "model_b": b,
                    "n_a": errors[a].size,
                    "n_b": errors[b].size,
                    "median_a": float(np.median(errors[a])),
                    "median_b": float(np.median(errors[b])),
                    "u": test.u,
                    "p": test.p,
                    "best_p": smallest_rank_sum_p(errors[a].size, errors[b].size),
                }
            )
    columns = ["sweep", "difficulty", "model_a", "model_b", "n_a", "n_b", "median_a", "median_b"]
    out = pd.DataFrame(rows, columns=[*columns, "u", "p", "best_p"])
    out["p_holm"] = math.nan
    for _, family in out.groupby(["sweep", "difficulty"], sort=False):
        out.loc[family.index, "p_holm"] = holm(family["p"].to_numpy(dtype=float))
    out["significant"] = out["p_holm"] < alpha
    return out


def headline(summary: pd.DataFrame, tests: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Who wins at each difficulty: the model with the best median final value of the
    metric (lowest for a "min" goal, highest for "max"; then the best mean), its median and
    IQR, the runner-up, by how much (`margin`: how much better the winner's median is than
    the runner-up's, so never negative, whichever way the metric points) and whether that
    difference is significant (Holm-adjusted rank-sum p < alpha; `best_p`: the smallest p
    the seed counts allow). Takes `cell_summary` and `comparisons` output."""
    rows = []
    present = summary[summary["seeds"] > 0]
    for (sweep, difficulty), level in present.groupby(["sweep", "difficulty"], sort=False):
        goal = goal_of(level)
        sign = _sign(goal)
        keys = level.assign(_median=sign * level["median"], _mean=sign * level["mean"])
        ranked = keys.sort_values(["_median", "_mean"], kind="stable")
        first = ranked.iloc[0]
        row = {
            "sweep": sweep,
            "difficulty": difficulty,
            "goal": goal,
            "winner": first["model"],
            "median": first["median"],
            "q25": first["q25"],
            "q75": first["q75"],
            "seeds": int(first["seeds"]),
            "runner_up": None,
            "runner_up_median": math.nan,
            "margin": math.nan,
            "p_holm": math.nan,
            "best_p": math.nan,
            "significant": False,
            "verdict": "only model",
        }
        if len(ranked) > 1:
            second = ranked.iloc[1]
            pair = tests[
                (tests["sweep"] == sweep)
                & (tests["difficulty"] == difficulty)
                & tests["model_a"].isin([first["model"], second["model"]])
                & tests["model_b"].isin([first["model"], second["model"]])
            ].iloc[0]
            row.update(
                runner_up=second["model"],
                runner_up_median=second["median"],
                margin=sign * (second["median"] - first["median"]),
                p_holm=pair["p_holm"],
                best_p=pair["best_p"],
                significant=bool(pair["p_holm"] < alpha),
            )
            row["verdict"] = _verdict(first["median"] == second["median"], row["significant"])
        rows.append(row)
    return pd.DataFrame(rows, columns=list(_HEADLINE_COLUMNS))


_HEADLINE_COLUMNS = (
    "sweep",
    "difficulty",
    "goal",
    "winner",
    "median",
    "q25",
    "q75",
    "seeds",
    "runner_up",
    "runner_up_median",
    "margin",
    "p_holm",
    "best_p",
    "significant",
    "verdict",
)


def _verdict(tie: bool, significant: bool) -> str:
    if tie:
        return "tie (equal medians)"
    return "significant" if significant else "not significant"


def order_of(difficulties: Sequence[str], present: pd.Series) -> list[str]:
    """`difficulties` (easiest first), then any others found in `present`."""
    return list(dict.fromkeys([*difficulties, *present.dropna().astype(str)]))


def frontier(
    summary: pd.DataFrame, difficulties: Sequence[str], at_least: float = SOLVED_IN
) -> pd.DataFrame:
    """For each model of each sweep, its frontier: the hardest difficulty such that it and
    every easier difficulty of the sweep (`difficulties` run easiest first) is solved in at
    least `at_least` of the model's confirmation seeds; missing when the easiest is not. A
    level where the model has no seeds counts as not solved: the frontier cannot skip what
    it has not seen. `stops_at`: the easiest level not solved (missing when none);
    `islands`: the levels beyond `stops_at` the model solves all the same, which the
    frontier does not count and a reader must see (a ladder not monotone for this model,
    or luck). `levels_solved` counts every level it solves. Takes `cell_summary` output."""
    rows = []
    for sweep, cells in summary.groupby("sweep", sort=False):
        ran = set(cells["difficulty"])
        order = [d for d in order_of(difficulties, cells["difficulty"]) if d in ran]
        for model, own in cells.groupby("model", sort=False):
            rate = own.set_index("difficulty")["solve_rate"].astype(float)
            solved = [bool(rate.get(d, math.nan) >= at_least) for d in order]
            reach = solved.index(False) if False in solved else len(order)
            rows.append(
                {
                    "sweep": sweep,
                    "model": model,
                    "frontier": order[reach - 1] if reach else None,
                    "frontier_rank": reach - 1 if reach else math.nan,
                    "stops_at": order[reach] if reach < len(order) else None,
                    "islands": tuple(
                        d for d, s in zip(order[reach:], solved[reach:], strict=True) if s
                    ),
                    "levels_solved": sum(solved),
                    "levels_run": len(own),
                }
            )
    columns = [
        "sweep",
        "model",
        "frontier",
        "frontier_rank",
        "stops_at",
        "islands",
        "levels_solved",
        "levels_run",
    ]
    return pd.DataFrame(rows, columns=columns)


def frontier_text(row: Mapping[Any, Any]) -> str:
    """One model's frontier (a `frontier` row) as a reader reads it: "plastic: frontier
    small; also solves large (island beyond medium, which it does not solve)"."""
    reach = row["frontier"]
    text = f"{row['model']}: frontier {'none' if pd.isna(reach) else reach}"
    islands = [str(d) for d in row["islands"]]
    if islands:
        kind = "islands" if len(islands) > 1 else "island"
        text += (
            f"; also solves {', '.join(islands)} ({kind} beyond {row['stops_at']}, which it "
            "does not solve)"
        )
    return text


def best_configs(trials: pd.DataFrame) -> pd.DataFrame:
    """Each cell's best search trial: the best final value of the metric (the value its
    Optuna study was told; lowest for a "min" goal, highest for "max"), ties to the earlier
    Optuna trial; with its `hp.*` settings."""
    search = usable(trials, SEARCH)
    keyed = search.assign(_key=_rank_key(search, "final_value"))
    order = keyed.sort_values(["_key", "optuna_trial"], kind="stable")
    best = order.drop_duplicates(CELL, keep="first")
    hp = [c for c in trials.columns if c.startswith("hp.")]
    columns = [*CELL, "trial_id", "optuna_trial", "final_value", "episodes_to_solve", *hp]
    return best[columns].reset_index(drop=True)


def searched(trials: pd.DataFrame) -> list[str]:
    """The hp.* columns that vary across search trials of some cell: what was tuned."""
    search = trials[trials["phase"] == SEARCH]
    hp = [c for c in trials.columns if c.startswith("hp.")]
    varies = search.groupby(CELL, sort=False)[hp].nunique(dropna=True).max()
    return [c for c in hp if varies.get(c, 0) > 1]


# param_importance's columns: a cell's searched parameter, its importance, how many completed
# trials it rests on, whether that is enough to mean anything, and why not
IMPORTANCE_COLUMNS = (
    "sweep",
    "difficulty",
    "model",
    "param",
    "importance",
    "completed",
    "meaningful",
    "note",
)


def param_importance(studies: Mapping[tuple[str, str], optuna.Study]) -> pd.DataFrame:
    """Hyperparameter importance per cell from its Optuna study (PED-ANOVA, normalized to
    sum to 1 per cell; Optuna's default evaluator, and the one that needs no scikit-learn).
    Keys are (sweep, "<difficulty>/<model>"). A cell with fewer than two completed trials
    gets NaN importances (nothing to compare); a cell that searched one parameter gets 1.0
    for it, by definition. `note` says which, or holds Optuna's warnings (a flat objective
    gives every parameter the same importance); `meaningful` is False for both, and for a
    cell with fewer than `IMPORTANCE_TRIALS` completed trials, whose note says so. Cells
    that searched nothing have no rows."""
    rows = []
    for (sweep, cell), study in studies.items():
        difficulty, model = cell.rsplit("/", 1)
        trials = study.get_trials(deepcopy=False)
        completed = [t for t in trials if t.state == TrialState.COMPLETE]
        params = list(dict.fromkeys(p for t in trials for p in t.params))
        if len(completed) < 2:
            values, note = dict.fromkeys(params, math.nan), "fewer than 2 completed trials"
        elif len(params) == 1:
            values, note = {params[0]: 1.0}, "the only parameter searched"
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                values = optuna.importance.get_param_importances(
                    study, evaluator=PedAnovaImportanceEvaluator()
                )
            note = " ".join(dict.fromkeys(str(w.message) for w in caught))
            if len(completed) < IMPORTANCE_TRIALS:
                note = (
                    f"only {len(completed)} completed trials: too few to mean anything "
                    f"(PED-ANOVA wants at least {IMPORTANCE_TRIALS}). {note}"
                ).strip()
        for param in params:
            rows.append(
                {
                    "sweep": sweep,
                    "difficulty": difficulty,
                    "model": model,
                    "param": param,
                    "importance": values.get(param, math.nan),
                    "completed": len(completed),
                    "meaningful": len(params) > 1 and len(completed) >= IMPORTANCE_TRIALS,
                    "note": note,
                }
            )
    return pd.DataFrame(rows, columns=list(IMPORTANCE_COLUMNS))


def curve_summary(curves: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Learning curves across confirmation seeds: per cell and evaluation step, the median
    episodes trained and the median and quartiles of the evaluated metric, with the number
    of seeds that reached the step. Trials known to have diverged or failed are left out;
    confirmation trials still running are in (their steps so far)."""
    bad = trials.loc[trials["status"].isin(LEFT_OUT), "trial_id"]
    earlier = trials.loc[(trials["phase"] == CONFIRM) & ~current_confirmation(trials), "trial_id"]
    rows = curves[(curves["phase"] == CONFIRM) & ~curves["trial_id"].isin([*bad, *earlier])]
    rows = rows[[*CELL, "step", "episodes", "value"]].astype({"episodes": float, "value": float})
    rows = rows.dropna()
    grouped = rows.groupby([*CELL, "step"], sort=True)
    value = grouped["value"]
    out = pd.DataFrame(
        {
            "episodes": grouped["episodes"].median(),
            "median": value.median(),
            "q25": value.quantile(0.25),
            "q75": value.quantile(0.75),
            "seeds": value.count(),
        }
    )
    return out.reset_index()


def typical_reconstructions(trials: pd.DataFrame, reconstructions: pd.DataFrame) -> pd.DataFrame:
    """The reconstructions a figure shows: per cell, those of its typical confirmation
    trial, the one whose final value of the metric is the median across seeds (the better
    middle one for an even count; ties to the lower seed), so the pictures show neither the
    best nor the worst seed. A cell with no usable confirmation trial that recorded pictures
    shows its best search trial. Reconstruction rows with the chosen trial's `final_value`
    added, one row per (cell, sample); empty when the sweep recorded none (tasks that are not
    pictures)."""
    recorded = trials[trials["trial_id"].isin(reconstructions["trial_id"])]
    chosen = []
    for phase in (CONFIRM, SEARCH):
        rows = usable(recorded, phase)
        ranked = rows.assign(_key=_rank_key(rows, "final_value")).sort_values(
            ["_key", "seed"], kind="stable"
        )
        for _, cell in ranked.groupby(CELL, sort=False):
            chosen.append(cell.iloc[(len(cell) - 1) // 2 if phase == CONFIRM else 0])
    picked = pd.DataFrame(chosen, columns=[*trials.columns, "_key"])
    picked = picked.drop_duplicates(CELL, keep="first")
    out = reconstructions.merge(
        picked[["sweep", "trial_id", "final_value"]], on=["sweep", "trial_id"]
    )
    return out.sort_values([*CELL, "sample"], kind="stable").reset_index(drop=True)


def ordered(
    frame: pd.DataFrame, difficulties: Sequence[str], models: Sequence[str]
) -> pd.DataFrame:
    """Rows sorted by sweep, then difficulty easiest first, then model in spec order, as a
    reader scans a ladder; names missing from the orders go last."""
    keys = [
        (column, {name: i for i, name in enumerate(order)})
        for column, order in (("difficulty", difficulties), ("model", models))
        if column in frame.columns
    ]
    ranks = {col: frame[col].map(rank).fillna(len(rank)) for col, rank in keys}
    by = (["sweep"] if "sweep" in frame.columns else []) + [f"_{c}" for c in ranks]
    ranked = frame.assign(**{f"_{c}": r for c, r in ranks.items()})
    return ranked.sort_values(by, kind="stable").drop(columns=[f"_{c}" for c in ranks])


@dataclass(frozen=True, eq=False)  # frames do not compare to one bool
class Summary:
    """Every table the report shows, for one or more sweeps, rows in ladder order."""

    difficulties: tuple[str, ...]  # easiest first
    models: tuple[str, ...]
    task: TaskInfo
    levels: pd.DataFrame  # levels: chance and the task's reference levels per difficulty
    cells: pd.DataFrame  # cell_summary
    seeds: pd.DataFrame  # the confirmation trials the statistics use, one row per seed
    tests: pd.DataFrame  # comparisons
    headline: pd.DataFrame
    frontier: pd.DataFrame
    best: pd.DataFrame  # best_configs
    importance: pd.DataFrame  # param_importance
    curves: pd.DataFrame  # curve_summary
    searched: tuple[str, ...]  # the hp.* columns tuned by the search
    reconstructions: pd.DataFrame  # typical_reconstructions (picture tasks; else empty)

    @property
    def sweep(self) -> str:
        """The one sweep summarized; figures are drawn per sweep."""
        names = list(dict.fromkeys(self.cells["sweep"]))
        if len(names) != 1:
            raise ValueError(f"a figure shows one sweep; this summary holds {names or 'none'}")
        return str(names[0])


def summarize(results: Results, seed: int = 0, alpha: float = ALPHA) -> Summary:
    """All summaries of loaded results; reads the Optuna journals for importance."""
    trials = results.trials
    difficulties = tuple(order_of(results.difficulties, trials["difficulty"]))
    models = results.models

    def order(frame: pd.DataFrame) -> pd.DataFrame:
        return ordered(frame, difficulties, models).reset_index(drop=True)

    cells = order(cell_summary(trials, seed=seed))
    tests = order(comparisons(trials, alpha=alpha))
    space = [f"hp.{p}" for s in results.sweeps for p in s.searched]
    hp = [c for c in dict.fromkeys(space) if c in trials.columns] or searched(trials)
    return Summary(
        difficulties=difficulties,
        models=models,
        task=task_info(_first_sweep(trials)),
        levels=order(levels(trials)),
        cells=cells,
        seeds=order(usable(trials)[[*CELL, "seed", "final_value", "episodes_to_solve"]]),
        tests=tests,
        headline=order(headline(cells, tests, alpha=alpha)),
        frontier=order(frontier(cells, difficulties)),
        best=order(best_configs(trials)),
        importance=order(param_importance(results.studies())),
        curves=order(curve_summary(results.curves, trials)),
        searched=tuple(hp),
        reconstructions=order(typical_reconstructions(trials, results.reconstructions)),
    )


def _first_sweep(trials: pd.DataFrame) -> pd.DataFrame:
    """The rows of the first sweep: a summary's `task` describes one sweep's metric (several
    sweeps may measure different ones; their tables follow each row's own goal)."""
    if trials.empty:
        return trials
    return trials[trials["sweep"] == trials["sweep"].iloc[0]]


def seed_limit(headline: pd.DataFrame, alpha: float = ALPHA) -> str | None:
    """A warning when the seed counts make significance impossible, so that "not
    significant" is not read as "no difference"; None when they do not."""
    limits = headline.loc[headline["best_p"] >= alpha, "best_p"].dropna()
    if limits.empty:
        return None
    return (
        f"With these seed counts a rank-sum test cannot give p below {limits.min():.2g}, so "
        f"no difference can be significant at {alpha} however large it is: run more "
        "confirmation seeds (confirm.seeds; the reference used 10)."
    )
