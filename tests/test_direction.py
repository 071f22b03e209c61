"""The metric's direction through the sweep engine, and Optuna told what happened: a task
whose metric is higher-is-better (registered by a plugin) gets maximizing studies, ASHA in
"max" mode, the highest trial confirmed and shown as the search best; every evaluation is an
intermediate value and a trial ASHA stopped is PRUNED."""

from __future__ import annotations

import io
import pickle
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from rich.console import Console

from sweep.plan import make_cells, trial_config
from sweep.progress import LiveCells, counts_from_storage, render
from sweep.results import ResultsWriter
from sweep.scheduling import CellScheduler
from sweep.search import CellSearcher, journal_storage
from sweep.spec import EarlyStop, SweepSpec, parse_spec
from sweep.store import reached
from sweep.tasks import TASKS, make_task, register_task
from sweep.tasks.patterns import LEVELS, PatternTask
from tests.support.cli import sweep_here
from tests.support.driver import assert_study_is_the_rows
from tests.support.reports import evaluation
from tests.support.sweeps import asha_search, status_rows, sweep, tiny_spec, write_spec

# A researcher's task: the pattern task scored as the fraction of bits right.
RECALL = '''
from sweep.tasks import register_task
from sweep.tasks.patterns import LEVELS, PatternTask


class Recall(PatternTask):
    """The pattern task scored as the fraction of bits right: higher is better."""

    name = "recall"
    metric = "bits_right"
    goal = "max"

    def __init__(self, settings, level="custom"):
        super().__init__(settings, level)
        self.chance = 1 - self.chance
        self.solved_threshold = 1 - self.solved_threshold
        self.references = {name: 1 - value for name, value in self.references.items()}

    def score(self, outputs, episode):
        return 1 - super().score(outputs, episode)


register_task("recall", Recall, LEVELS)
'''
PLUGIN = "lab_recall.recall"


@pytest.fixture
def plugin_root(tmp_path: Path) -> Iterator[Path]:
    """A folder holding the plugin package, as beside a spec; afterwards this process forgets
    the task (other tests list the registry)."""
    (tmp_path / "lab_recall").mkdir()
    (tmp_path / "lab_recall" / "__init__.py").write_text("")
    (tmp_path / "lab_recall" / "recall.py").write_text(textwrap.dedent(RECALL))
    yield tmp_path
    TASKS.pop("recall", None)
    for name in (PLUGIN, "lab_recall"):
        sys.modules.pop(name, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def _spec(root: Path, task: str, **changes: Any) -> dict[str, Any]:
    """One cell (trivial, plastic), 3 search trials, 1 confirmation seed."""
    spec = tiny_spec(
        root,
        task=task,
        difficulties=["trivial"],
        models={"plastic": {"family": "plastic"}},
        search={
            "trials_per_cell": 3,
            "sampler": "random",
            "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}},
        },
        confirm={"seeds": 1},
    )
    if task == "recall":
        spec["plugins"] = [PLUGIN]
    spec.update(changes)
    return spec


def _parsed(root: Path, task: str) -> SweepSpec:
    return parse_spec({**_spec(root, task), "plugin_root": str(root)})


def _result(episodes: int, value: float) -> dict[str, Any]:
    """A report of a trial with a 200-episode budget, evaluated every 100 episodes."""
    return evaluation(episodes, value, loss=0.1, done=episodes >= 200).to_dict()


def _study(folder: Path) -> optuna.Study:
    """The cell's study as the journal holds it now."""
    storage = journal_storage(folder / "optuna" / "journal.log")
    return optuna.load_study(study_name="trivial/plastic", storage=storage)


def _trial(config: dict[str, Any]) -> Trial:
    return Trial("sweep_trainable", config=config, stub=True)


def _suggested(searcher: CellSearcher, trial_id: str) -> dict[str, Any]:
    config = searcher.suggest(trial_id)
    assert isinstance(config, dict), config
    return config


# -- the registry ---------------------------------------------------------------------------
def test_a_plugin_registers_a_task_and_bad_registrations_are_one_line(plugin_root: Path) -> None:
    spec = _parsed(plugin_root, "recall")  # the spec's plugin registered it
    task = make_task("recall", "trivial")
    assert (spec.task, task.metric, task.goal, task.solved_threshold) == (
        "recall",
        "bits_right",
        "max",
        pytest.approx(1 - 1 / 8),  # bits right: one wrong bit per 8-bit pattern
    )

    class Sideways(PatternTask):
        goal = "sideways"

    with pytest.raises(ValueError, match=r"\.goal is 'sideways'; valid: min, max$"):
        register_task("sideways", Sideways, LEVELS)

    class Nameless(PatternTask):
        metric = None  # type: ignore[assignment]

    with pytest.raises(ValueError, match=r"Nameless\.metric must name the metric$"):
        register_task("nameless", Nameless, LEVELS)
    with pytest.raises(ValueError, match="task 'patterns' is already registered by "):
        register_task("patterns", Sideways, LEVELS)
    with pytest.raises(ValueError, match="must be a Python identifier"):
        register_task("two words", PatternTask, LEVELS)
    with pytest.raises(ValueError, match=r"unknown task 'recal'; valid: .*recall.*'recall'\?"):
        make_task("recal", "trivial")
    assert not {"sideways", "nameless", "two words"} & set(TASKS)


# -- the searcher: real Optuna studies in a journal -----------------------------------------
@pytest.mark.parametrize("task", ["patterns", "recall"])
def test_the_searcher_tells_optuna_everything(task: str, plugin_root: Path) -> None:
    """Three search trials: `a` runs its course, `b` is stopped by the scheduler after its
    first evaluation (Ray Tune then hands the searcher only its last result, at completion),
    `c` runs its course and is the best. A lower-is-better task gets the same numbers as a
    higher-is-better one, mirrored."""
    spec = _parsed(plugin_root, task)
    goal = "max" if task == "recall" else "min"
    value = (lambda v: 1 - v) if goal == "max" else (lambda v: v)
    folder = plugin_root / "results" / "demo"
    searcher = CellSearcher(spec, make_cells(spec), str(folder))
    assert searcher.mode == goal
    numbers = {t: int(_suggested(searcher, t)["number"]) for t in "abc"}
    assert searcher.suggest("early") is None  # its confirmation waits for the search

    searcher.on_trial_result("a", _result(100, value(0.4)))
    searcher.on_trial_result("a", _result(100, value(0.2)))  # re-reported after a resume
    searcher.on_trial_result("a", _result(200, value(0.3)))
    searcher.on_trial_complete("a", _result(200, value(0.3)))
    searcher.on_trial_complete("b", _result(100, value(0.45)))
    searcher.on_trial_result("c", _result(100, value(0.2)))
    searcher.on_trial_result("c", _result(200, value(0.1)))
    searcher.on_trial_complete("c", _result(200, value(0.1)))
    # an end is told at the searcher's next call, once the results writer wrote its row
    assert _study(folder).trials[numbers["c"]].state == TrialState.RUNNING
    confirm = _suggested(searcher, "confirm")

    study = _study(folder)
    expected = StudyDirection.MAXIMIZE if goal == "max" else StudyDirection.MINIMIZE
    assert study.direction == expected
    assert study.user_attrs == {
        "metric": "bits_right" if goal == "max" else "bit_error",
        "goal": goal,
        "direction": "maximize" if goal == "max" else "minimize",
        "task": task,
        "difficulty": "trivial",
        "model": "plastic",
        "family": "plastic",
    }
    a, b, c = (study.trials[numbers[t]] for t in "abc")
    assert (a.state, a.value) == (TrialState.COMPLETE, pytest.approx(value(0.3)))
    assert a.intermediate_values == {100: pytest.approx(value(0.4)), 200: pytest.approx(value(0.3))}
    assert (b.state, b.value) == (TrialState.PRUNED, pytest.approx(value(0.45)))
    assert b.intermediate_values == {100: pytest.approx(value(0.45))}
    assert c.intermediate_values == {100: pytest.approx(value(0.2)), 200: pytest.approx(value(0.1))}
    assert c.state == TrialState.COMPLETE
    assert confirm["phase"] == "confirm"
    assert confirm["number"] == numbers["c"] and confirm["hp"] == c.params


def test_a_driver_killed_after_a_row_before_its_tell_leaves_a_study_that_tells_it_from_the_row(
    plugin_root: Path,
) -> None:
    """Ray Tune calls the searcher before the results writer: a study learns of an end only
    after the row is written. A driver killed in between leaves the trial RUNNING beside its
    row; the next driver (from Ray's saved state, older than both) tells it from the row."""
    spec = _parsed(plugin_root, "patterns")
    folder = plugin_root / "results" / "demo"
    searcher = CellSearcher(spec, make_cells(spec), str(folder))
    ids = [Trial.generate_id() for _ in range(3)]
    trials = [
        Trial("sweep_trainable", config=_suggested(searcher, i), trial_id=i, stub=True) for i in ids
    ]
    saved = pickle.dumps(searcher)  # Ray's saved state, from before the trials ended
    writer = ResultsWriter(spec, str(folder))
    for trial, (episodes, value) in zip(trials, [(200, 0.3), (100, 0.45), (200, 0.1)], strict=True):
        result = _result(episodes, value)  # a last result: Tune gives it on completion only
        trial.run_metadata.last_result = result
        searcher.on_trial_complete(trial.trial_id, result)
        writer.on_trial_complete(0, trials, trial)
    # killed here: the last trial's row is written, its end not told
    numbers = [int(t.config["number"]) for t in trials]
    assert [_study(folder).trials[n].state for n in numbers] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.RUNNING,
    ]
    restarted = pickle.loads(saved)
    last = restarted.studies["trivial/plastic"].trials[numbers[2]]
    assert (last.state, last.value) == (TrialState.COMPLETE, pytest.approx(0.1))
    assert last.intermediate_values == {200: pytest.approx(0.1)}  # as a told end has
    assert _study(folder).trials[numbers[2]].state == TrialState.COMPLETE  # in the journal
    assert _suggested(restarted, "confirm")["number"] == numbers[2]


def test_a_cell_whose_completed_trials_all_failed_confirms_its_best_stopped_one(
    plugin_root: Path,
) -> None:
    spec = _parsed(plugin_root, "recall")
    searcher = CellSearcher(spec, make_cells(spec), str(plugin_root / "results" / "demo"))
    numbers = {t: int(_suggested(searcher, t)["number"]) for t in "abc"}
    searcher.on_trial_complete("a", _result(100, 0.6))  # stopped
    searcher.on_trial_complete("b", _result(100, 0.7))  # stopped, the higher
    searcher.on_trial_complete("c", None, error=True)  # the one that went on, failed
    assert _suggested(searcher, "confirm")["number"] == numbers["b"]


def test_asha_stops_the_lower_trial_of_a_higher_is_better_cell(plugin_root: Path) -> None:
    spec = _parsed(plugin_root, "recall")
    cell = make_cells(spec)[0]
    scheduler = CellScheduler(EarlyStop(grace_episodes=100, reduction_factor=2), max_episodes=200)
    good, poor = (_trial(trial_config(spec, cell, "search", n, n, {}).to_dict()) for n in (0, 1))
    for t in (good, poor):
        scheduler.on_trial_add(None, t)
    assert scheduler.on_trial_result(None, good, _result(100, 0.9)) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, poor, _result(100, 0.6)) == TrialScheduler.STOP


# -- the cells view ---------------------------------------------------------------------------
def test_the_cells_view_follows_the_goal_live_and_from_storage(plugin_root: Path) -> None:
    """Search best: the highest evaluation; confirmed: median and seeds at or over the
    threshold (0.875 for `trivial`: one wrong bit per 8-bit pattern)."""
    spec = _parsed(plugin_root, "recall")
    cell = make_cells(spec)[0]
    live = LiveCells(spec)
    trials: list[Trial] = []
    for number, (phase, values) in enumerate(
        [("search", [0.6, 0.9]), ("search", [0.7]), ("confirm", [0.99]), ("confirm", [0.85])]
    ):
        trial = _trial(trial_config(spec, cell, phase, 0, number, {}).to_dict())
        for step, v in enumerate(values, 1):
            live.on_trial_result(0, trials, trial, _result(100 * step, v))
        trial.set_status(Trial.TERMINATED)
        trial.run_metadata.last_result = _result(200, values[-1])
        trials.append(trial)
    [counts] = live.counts(trials)
    assert (counts.best, counts.confirmed, counts.solved) == (0.9, [0.99, 0.85], 1)

    rows = pd.DataFrame(
        {
            "trial_id": ["s0", "s1", "c0", "c1", "c2"],
            "cell": ["trivial/plastic"] * 5,
            "phase": ["search", "search", "confirm", "confirm", "confirm"],
            "status": ["completed", "stopped_early", "completed", "completed", "diverged"],
            "best_value": [0.9, 0.7, 0.99, 0.85, 0.5],
            "final_value": [0.85, 0.7, 0.99, 0.85, 0.5],
            "solved_threshold": [0.875] * 5,
            "goal": ["max"] * 5,
        }
    )
    curves = pd.DataFrame(
        {
            "trial_id": ["s0", "s0", "s2"],
            "cell": ["trivial/plastic"] * 3,
            "phase": ["search"] * 3,
            "value": [0.6, 0.9, 0.93],  # s2 still runs: its best is the cell's best
        }
    )
    [stored] = counts_from_storage(spec, rows, curves)
    assert (stored.best, stored.confirmed, stored.solved) == (0.93, [0.99, 0.85], 1)
    assert (stored.done, stored.failed, stored.running) == (5, 1, 1)
    screen = Console(file=io.StringIO(), width=200)
    screen.print(render([stored], "sweep demo", "bits_right", "max"))
    text = screen.file.getvalue()  # type: ignore[attr-defined]
    assert status_rows(text)["trivial/plastic"][4:] == ["0.9300", "0.9200", "1/2"]
    assert "bits_right, higher is better" in text


# -- end to end: real Ray, real Optuna, a plugin's task, ASHA ----------------------------------
@pytest.mark.slow
def test_a_higher_is_better_sweep_end_to_end(plugin_root: Path) -> None:
    """Poor learning rates leave the network at chance (half the bits right), good ones
    reach all of them: with ASHA in each cell, some trials are stopped early."""
    spec = _spec(
        plugin_root,
        "recall",
        name="recall",
        train={"episodes": 600, "batch_size": 8, "eval_every": 100, "eval_episodes": 16},
        confirm={"seeds": 2},
        **asha_search(6, 3.0e-2, 100),
    )
    done = sweep("run", str(write_spec(plugin_root, spec)))
    assert done.returncode == 0, done.stderr[-3000:]
    folder = plugin_root / "results" / "recall"
    trials = pd.read_parquet(folder / "trials")
    curves = pd.read_parquet(folder / "curves")
    assert (trials["goal"] == "max").all() and (trials["metric"] == "bits_right").all()
    search = trials[trials["phase"] == "search"].set_index("optuna_trial")
    confirm = trials[trials["phase"] == "confirm"]

    storage = journal_storage(folder / "optuna" / "journal.log")
    study = optuna.load_study(study_name="trivial/plastic", storage=storage)
    assert study.direction == StudyDirection.MAXIMIZE
    assert study.user_attrs["goal"] == "max" and study.user_attrs["metric"] == "bits_right"
    stopped = search.index[search["status"] == "stopped_early"]
    completed = search.index[search["status"] == "completed"]
    assert len(stopped) >= 1 and len(completed) >= 1, search["status"].tolist()
    assert_study_is_the_rows(study.trials, search.reset_index(), curves)
    # ASHA kept the higher ones: a stopped trial was no better where it stopped than the
    # best survivor
    assert search.loc[stopped, "final_value"].max() <= search.loc[completed, "best_value"].max()

    # confirmation re-ran the highest completed trial (the earliest of equals)
    values = {t.number: t.value for t in study.trials if t.state == TrialState.COMPLETE}
    top = max(v for v in values.values() if v is not None)
    assert set(confirm["optuna_trial"]) == {min(n for n, v in values.items() if v == top)}

    status = sweep_here("status", str(folder))
    assert status.returncode == 0, status.stderr
    shown = status_rows(status.stdout)["trivial/plastic"]
    best = curves.loc[curves["phase"] == "search", "value"].max()
    assert float(shown[4]) == pytest.approx(best, abs=5e-4)
    assert float(shown[5]) == pytest.approx(confirm["final_value"].median(), abs=5e-4)
    solved = reached(confirm["final_value"], confirm["solved_threshold"], "max").sum()
    assert shown[6] == f"{solved}/2"
    assert "bits_right, higher is better" in " ".join(status.stdout.split())
