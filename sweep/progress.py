"""The cells view, per (difficulty, model): done / failed / running / pending trials, the
search's best value and, once the cell is confirmed, the confirmation's median and solved
count; live while a sweep runs (a Ray Tune callback) and from storage when nothing runs.

The two numbers are never the same kind: the search best is the best single evaluation any
search trial reached (chosen for being good, so optimistic); the confirmation is the cell's
chosen configuration trained again on fresh seeds, the numbers comparisons use.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from ray.tune import Callback
from ray.tune.experiment import Trial as TuneTrial
from rich.console import Console
from rich.live import Live
from rich.table import Table

from sweep.plan import cell_ids
from sweep.records import TrialConfig, TrialResult, member_results, trial_configs
from sweep.spec import SweepSpec
from sweep.store import best, current_confirmation, reached
from sweep.tasks import task_metric


@dataclass
class CellCounts:
    cell: str
    done: int = 0  # finished, however they ended
    failed: int = 0  # of those: failed or diverged
    running: int = 0
    pending: int = 0
    best: float = math.nan  # the best evaluation of the cell's search trials, per the goal
    search_done: int = 0
    search_usable: int = 0  # search trials that ended with a value for Optuna
    # The final values of the confirmation trials that neither failed nor diverged, and how
    # many of them reached the solved threshold (the final value: as the analysis counts a
    # seed solved).
    confirmed: list[float] = field(default_factory=list)
    solved: int = 0

    def settle(self, spec: SweepSpec) -> None:
        """Pending: what is left of the cell's budget; nothing once its search has ended
        with no usable trial (there is no configuration to confirm)."""
        searched = self.search_done >= spec.search.trials_per_cell
        left = 0 if searched and not self.search_usable else budget(spec)
        self.pending = max(0, left - self.done - self.running)


COLUMNS = (
    "done",
    "failed",
    "running",
    "pending",
    "search\nbest",
    "confirmed\nmedian",
    "confirmed\nsolved",
)


def render(counts: list[CellCounts], title: str, metric: str, goal: str) -> Table:
    """The cells table; its caption says what the two kinds of number are."""
    better = "lower" if goal == "min" else "higher"
    table = Table(title=f"{title}\n{metric}, {better} is better")
    widest = max((len(c.cell) for c in counts), default=4)
    table.add_column("cell", no_wrap=True, min_width=widest)  # never cut short
    for column in COLUMNS:
        table.add_column(column, justify="right")
    for c in counts:
        numbers = (c.done, c.failed, c.running, c.pending)
        median = float(np.median(c.confirmed)) if c.confirmed else math.nan
        solved = f"{c.solved}/{len(c.confirmed)}" if c.confirmed else "-"
        table.add_row(c.cell, *map(str, numbers), _value(c.best), _value(median), solved)
    table.caption = (
        "search best: the best evaluation of any search trial (optimistic); confirmed: the "
        f"final {metric} of the chosen configuration on fresh seeds, median and seeds that "
        "reached the solved threshold / seeds that neither failed nor diverged"
    )
    return table


def _value(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def budget(spec: SweepSpec) -> int:
    """Trials per cell: the search budget plus the confirmation seeds."""
    return spec.search.trials_per_cell + spec.confirm.seeds


def counts_from_storage(
    spec: SweepSpec, trials: pd.DataFrame, curves: pd.DataFrame
) -> list[CellCounts]:
    """From the tables: a trial with a row in `trials` is done; one with curve rows but no
    trial row was running when the sweep stopped. Solved: per each row's own threshold and
    goal."""
    out = []
    _, goal = task_metric(spec.task)
    bad = trials["status"].isin(("failed", "diverged"))
    search = trials["phase"] == "search"
    # a grown sweep may hold an earlier choice's confirmation too: the current one counts
    trials = trials[search | current_confirmation(trials)]
    bad, search = bad[trials.index], search[trials.index]
    for cell in cell_ids(spec):
        here = trials["cell"] == cell
        done_ids = set(trials.loc[here, "trial_id"])
        started = set(curves.loc[curves["cell"] == cell, "trial_id"])
        values = pd.concat(
            [
                trials.loc[here & search, "best_value"],
                curves.loc[(curves["cell"] == cell) & (curves["phase"] == "search"), "value"],
            ]
        )
        confirm = trials[here & ~search & ~bad & trials["final_value"].notna()]
        final = confirm["final_value"].astype(float).tolist()
        rows = zip(final, confirm["solved_threshold"], confirm["goal"], strict=True)
        counts = CellCounts(
            cell=cell,
            done=len(done_ids),
            failed=int((here & bad).sum()),
            running=len(started - done_ids),
            best=best(values.astype(float).tolist(), goal),
            search_done=int((here & search).sum()),
            search_usable=int((here & search & ~bad).sum()),
            confirmed=final,
            solved=sum(bool(reached(v, t, g)) for v, t, g in rows),
        )
        counts.settle(spec)
        out.append(counts)
    return out


def eta(counts: list[CellCounts], elapsed_s: float) -> str:
    """'elapsed 1:05, about 2:10 left (12 of 45 trials done)': the time left assumes the
    trials still to finish take as long as the finished ones did on average."""
    done = sum(c.done for c in counts)
    total = done + sum(c.running + c.pending for c in counts)
    left = f"about {_clock(elapsed_s * (total - done) / done)} left" if done else "time left: -"
    return f"elapsed {_clock(elapsed_s)}, {left} ({done} of {total} trials done)"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _count_done(
    counts: CellCounts, config: TrialConfig, last: TrialResult | None, error: bool
) -> None:
    """A trial (or a population's member) that ended, with its last report."""
    bad = error or (last is not None and last.diverged)
    counts.done += 1
    counts.failed += bad
    if config.is_search:
        counts.search_done += 1
        counts.search_usable += not bad
    elif not bad and last is not None and last.usable:
        counts.confirmed.append(last.value)
        task = config.descriptor
        counts.solved += bool(reached(last.value, task.solved_threshold, task.goal))


class LiveCells(Callback):
    """Redraws the cells table on stderr at most twice a second, with the elapsed time and
    an estimate of the time left. It is transient: when the sweep ends the command prints
    the final table from storage, once."""

    def __init__(self, spec: SweepSpec):
        self.spec = spec
        self._live: Live | None = None
        self._drawn = 0.0
        self._started = time.monotonic()
        self._best: dict[str, float] = {}  # cell -> best search evaluation so far
        # (population, member) -> the last report of a member that ended before its population
        self._ended: dict[tuple[str, int | None], TrialResult] = {}
        self._cell_ids = cell_ids(spec)
        self.metric, self.goal = task_metric(spec.task)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_live": None}

    def counts(self, trials: list[TuneTrial]) -> list[CellCounts]:
        by_cell = {cell: CellCounts(cell) for cell in self._cell_ids}
        for trial in trials:
            ended = trial.status in (TuneTrial.TERMINATED, TuneTrial.ERROR)
            reports = member_results(trial.last_result)
            for k, config in trial_configs(trial.config).items():
                counts = by_cell[config.cell]
                last = self._ended.get((trial.trial_id, k), reports.get(k))
                # a member ends at its last report, its population runs on
                early = k is not None and last is not None and last.done
                if ended or early:
                    _count_done(counts, config, last, trial.status == TuneTrial.ERROR and not early)
                elif trial.status == TuneTrial.RUNNING:
                    counts.running += 1
        for counts in by_cell.values():
            counts.best = self._best.get(counts.cell, math.nan)
            counts.settle(self.spec)
        return list(by_cell.values())

    def on_trial_result(
        self, iteration: int, trials: list[TuneTrial], trial: TuneTrial, result: dict, **info: Any
    ) -> None:
        configs = trial_configs(trial.config)
        for k, report in member_results(result).items():
            config = configs[k]
            if k is not None and report.done:  # a population's last result may not hold it
                self._ended[(trial.trial_id, k)] = report
            if config.is_search:
                seen = [self._best.get(config.cell, math.nan), report.value]
                self._best[config.cell] = best(seen, config.descriptor.goal)

    def on_step_end(self, iteration: int, trials: list[TuneTrial], **info: Any) -> None:
        if time.monotonic() - self._drawn < 0.5:
            return
        self._drawn = time.monotonic()
        counts = self.counts(trials)
        table = render(counts, f"sweep {self.spec.name}", self.metric, self.goal)
        table.caption = f"{eta(counts, time.monotonic() - self._started)}\n{table.caption}"
        if self._live is None:
            # rich redraws from its own thread: a slow terminal never holds up Tune's loop
            console = Console(stderr=True)
            self._live = Live(table, console=console, refresh_per_second=2, transient=True)
            self._live.start()
        self._live.update(table)

    def on_experiment_end(self, trials: list[TuneTrial], **info: Any) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
