"""The driver's per-result cost: what our Ray Tune callbacks spend on each report, on real
Tune `Trial` objects and real Parquet part files (Ray warns when a callback takes > 0.5 s).

    .venv/bin/python benchmarks/callbacks.py [--trials 63] [--reports 8]

Measured: ResultsWriter.on_trial_result per report (the curve row; a flush of the part file
when the report carries a checkpoint), on_trial_complete (the trial row and a flush), one
redraw of the live cells table (what LiveCells.on_step_end does at most twice a second), and
the searcher's on_trial_result (the report as an intermediate value in the cell's Optuna
study, a real journal file) and on_trial_complete (the tell).
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from machine import cpu_model  # benchmarks/machine.py, beside this script
from ray.tune.experiment import Trial
from rich.console import Console

from sweep.plan import make_cells
from sweep.progress import LiveCells, render
from sweep.records import TrialResult
from sweep.results import ResultsWriter
from sweep.search import CellSearcher
from sweep.spec import parse_spec


def timed(calls: list[Callable[[], Any]]) -> list[float]:
    seconds = []
    for call in calls:
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=63, help="as many as examples/quick.yaml")
    parser.add_argument("--reports", type=int, default=8, help="reports per trial")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as storage:
        spec = parse_spec(
            {
                "name": "callbacks",
                "storage": storage,
                "difficulties": ["tiny", "small", "paper-simplified"],
                "models": {
                    "plastic": {"family": "plastic"},
                    "rnn": {"family": "rnn", "match_parameters": "plastic"},
                    "lstm": {"family": "lstm", "hidden": 64},
                },
                "search": {"trials_per_cell": 7},
            }
        )
        cells = make_cells(spec)
        searcher = CellSearcher(spec, cells, f"{storage}/callbacks")
        trials = []
        for i in range(args.trials):
            trial_id = f"t{i:05d}"  # the searcher hands out each cell's trials in turn
            config = searcher.suggest(trial_id)
            assert isinstance(config, dict)
            trial = Trial("sweep_trainable", config=config, trial_id=trial_id, stub=True)
            trial.set_status(Trial.RUNNING)
            trials.append(trial)
        writer = ResultsWriter(spec, f"{storage}/callbacks")
        live = LiveCells(spec)
        reports: list[Callable[[], Any]] = []
        told: list[Callable[[], Any]] = []
        for step in range(1, args.reports + 1):
            for trial in trials:
                report = TrialResult(
                    step=step,
                    episodes=1000 * step,
                    loss=0.1,
                    value=0.1,
                    wall_s=step,
                    episodes_per_second=1000.0,
                    best_value=0.1,
                    episodes_to_solve=None,
                    num_parameters=1,
                    checkpointed=step % 4 == 0,
                    done=step == args.reports,
                )
                trial.run_metadata.last_result = report.to_dict()
                reports.append(partial(writer.on_trial_result, 0, trials, trial, report.to_dict()))
                told.append(partial(searcher.on_trial_result, trial.trial_id, report.to_dict()))
        per_result = timed(reports)
        completes = timed([partial(writer.on_trial_complete, 0, trials, t) for t in trials])
        searcher_results = timed(told)
        tells = timed(
            [partial(searcher.on_trial_complete, t.trial_id, t.last_result) for t in trials]
        )
        screen = Console(file=io.StringIO(), force_terminal=True, width=100)
        table = partial(render, title="sweep callbacks", metric=live.metric, goal=live.goal)
        draws = timed([lambda: screen.print(table(live.counts(trials)))] * 20)
    print(f"{cpu_model()}; {args.trials} trials x {args.reports} reports")
    for name, values in (
        ("on_trial_result", per_result),
        ("on_trial_complete", completes),
        ("LiveCells redraw", draws),
        ("searcher on_trial_result", searcher_results),
        ("searcher on_trial_complete", tells),
    ):
        print(
            f"{name:26} median {statistics.median(values) * 1e3:7.2f} ms, "
            f"max {max(values) * 1e3:7.2f} ms over {len(values)} calls"
        )


if __name__ == "__main__":
    main()
