"""The cells view: done / running / pending trials and best error per (difficulty, model),
live while a sweep runs (a Ray Tune callback) and from storage when nothing runs."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from ray.tune import Callback
from ray.tune.experiment import Trial as TuneTrial
from rich.console import Console
from rich.live import Live
from rich.table import Table

from sweep.plan import make_cells
from sweep.spec import SweepSpec


@dataclass
class CellCounts:
    cell: str
    done: int = 0
    running: int = 0
    pending: int = 0
    best: float = math.nan  # lowest evaluation error seen in the cell's search trials


def render(counts: list[CellCounts], title: str) -> Table:
    table = Table(title=title)
    for column in ("cell", "done", "running", "pending", "best error"):
        table.add_column(column, justify="left" if column == "cell" else "right")
    for c in counts:
        best = "-" if math.isnan(c.best) else f"{c.best:.4f}"
        table.add_row(c.cell, str(c.done), str(c.running), str(c.pending), best)
    return table


def budget(spec: SweepSpec) -> int:
    """Trials per cell: the search budget plus the confirmation seeds."""
    return spec.search.trials_per_cell + spec.confirm.seeds


def counts_from_storage(
    spec: SweepSpec, trials: pd.DataFrame, curves: pd.DataFrame
) -> list[CellCounts]:
    """From the tables: a trial with a row in `trials` is done; one with curve rows but no
    trial row was running when the sweep stopped."""
    out = []
    for cell in make_cells(spec):
        done_ids = set(trials.loc[trials["cell"] == cell.id, "trial_id"])
        started = set(curves.loc[curves["cell"] == cell.id, "trial_id"])
        errors = pd.concat(
            [
                trials.loc[
                    (trials["cell"] == cell.id) & (trials["phase"] == "search"), "best_error"
                ],
                curves.loc[(curves["cell"] == cell.id) & (curves["phase"] == "search"), "error"],
            ]
        ).dropna()
        running = len(started - done_ids)
        out.append(
            CellCounts(
                cell=cell.id,
                done=len(done_ids),
                running=running,
                pending=max(0, budget(spec) - len(done_ids) - running),
                best=float(errors.min()) if len(errors) else math.nan,
            )
        )
    return out


class LiveCells(Callback):
    """Redraws the cells table on stderr at most twice a second."""

    def __init__(self, spec: SweepSpec):
        self.spec = spec
        self._live: Live | None = None
        self._drawn = 0.0
        self._best: dict[str, float] = {}  # cell -> lowest search error reported so far
        self._cell_ids = [c.id for c in make_cells(spec)]  # built once, not at every redraw

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_live": None}

    def counts(self, trials: list[TuneTrial]) -> list[CellCounts]:
        by_cell = {cell: CellCounts(cell) for cell in self._cell_ids}
        for trial in trials:
            counts = by_cell[trial.config["cell"]]
            if trial.status in (TuneTrial.TERMINATED, TuneTrial.ERROR):
                counts.done += 1
            elif trial.status == TuneTrial.RUNNING:
                counts.running += 1
        for counts in by_cell.values():
            counts.best = self._best.get(counts.cell, math.nan)
            counts.pending = max(0, budget(self.spec) - counts.done - counts.running)
        return list(by_cell.values())

    def on_trial_result(
        self, iteration: int, trials: list[TuneTrial], trial: TuneTrial, result: dict, **info: Any
    ) -> None:
        error, cell = result.get("error"), trial.config["cell"]
        if trial.config["phase"] == "search" and error is not None and error == error:
            self._best[cell] = min(self._best.get(cell, math.inf), error)

    def on_step_end(self, iteration: int, trials: list[TuneTrial], **info: Any) -> None:
        if time.monotonic() - self._drawn < 0.5:
            return
        self._drawn = time.monotonic()
        table = render(self.counts(trials), f"sweep {self.spec.name}")
        if self._live is None:
            self._live = Live(table, console=Console(stderr=True), auto_refresh=False)
            self._live.start()
        self._live.update(table, refresh=True)

    def on_experiment_end(self, trials: list[TuneTrial], **info: Any) -> None:
        if self._live is not None:
            self._live.update(render(self.counts(trials), f"sweep {self.spec.name}"))
            self._live.stop()
            self._live = None
