"""Early stopping per member: ASHA decides for each member of a population as it would for
a lone trial (real ASHA, real Trials), a stopped member stops computing and is PRUNED, and
every study still ends with exactly its budget (a real sweep on embedded Ray)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from sweep.records import TrialConfig, TrialResult, population_config, population_result
from sweep.results import read_table
from sweep.scheduling import CellScheduler
from sweep.search import journal_storage
from sweep.spec import EarlyStop
from sweep.storage import local_journal
from sweep.store import read_stops, write_stops
from sweep.trainable import stops_due
from tests.support.reports import evaluation as _result
from tests.support.reports import tune_trial as _trial
from tests.support.sweeps import sweep, tiny_spec, write_spec

RUNG = 100  # the first rung: grace_episodes
VALUES = [0.20, 0.30, 0.05, 0.40, 0.10, 0.25]  # bit errors at the first rung, in report order


def _scheduler(folder: Path) -> CellScheduler:
    return CellScheduler(EarlyStop(grace_episodes=RUNG, reduction_factor=2), 400, str(folder))


def _population(cell: str, size: int) -> Trial:
    configs = [TrialConfig.from_dict(_trial(cell).config) for _ in range(size)]
    return Trial("sweep_trainable", config=population_config(configs), stub=True)


def _report(s: CellScheduler, population: Trial, results: dict[int, TrialResult]) -> str:
    return s.on_trial_result(None, population, population_result(results, "min"))


def test_members_are_decided_as_lone_trials_would_be(tmp_path: Path) -> None:
    lone = _scheduler(tmp_path / "lone")
    decided = []
    for value in VALUES:
        trial = _trial("easy/plastic")
        lone.on_trial_add(None, trial)
        decision = lone.on_trial_result(None, trial, _result(RUNG, value).to_dict())
        decided.append(decision)
    expected = {k for k, d in enumerate(decided) if d == TrialScheduler.STOP}
    assert expected and len(expected) < len(VALUES)  # the case decides both ways

    s = _scheduler(tmp_path)
    population = _population("easy/plastic", len(VALUES))
    s.on_trial_add(None, population)
    results = {k: _result(RUNG, v) for k, v in enumerate(VALUES)}
    assert _report(s, population, results) == TrialScheduler.CONTINUE  # others run on
    assert read_stops(str(tmp_path), population.trial_id) == dict.fromkeys(expected, RUNG)
    # the stopped members' last report (done) ends them; the others reach the next rung
    ended = {k: _result(RUNG, VALUES[k], done=True) for k in expected}
    assert _report(s, population, ended) == TrialScheduler.CONTINUE
    going = {k: _result(2 * RUNG, 0.01) for k in range(len(VALUES)) if k not in expected}
    assert _report(s, population, going) == TrialScheduler.CONTINUE
    assert read_stops(str(tmp_path), population.trial_id) == dict.fromkeys(expected, RUNG)


def test_a_population_whose_members_are_all_stopped_stops(tmp_path: Path) -> None:
    s = _scheduler(tmp_path)
    good = _trial("easy/plastic")
    s.on_trial_add(None, good)
    s.on_trial_result(None, good, _result(RUNG, 0.01).to_dict())
    population = _population("easy/plastic", 2)
    s.on_trial_add(None, population)
    both = {0: _result(RUNG, 0.4), 1: _result(RUNG, 0.45)}
    assert _report(s, population, both) == TrialScheduler.STOP
    assert read_stops(str(tmp_path), population.trial_id) == {0: RUNG, 1: RUNG}
    s.on_trial_complete(None, population, population_result(both, "min"))
    assert s.cells["easy/plastic"]._trial_info.keys() == {good.trial_id}


def test_ended_and_diverged_members_leave_and_confirmations_are_never_stopped(
    tmp_path: Path,
) -> None:
    s = _scheduler(tmp_path)
    population = _population("easy/plastic", 3)
    s.on_trial_add(None, population)
    first = {0: _result(RUNG, 0.01), 1: _result(RUNG, float("nan"), diverged=True, done=True)}
    assert _report(s, population, first) == TrialScheduler.CONTINUE
    info = s.cells["easy/plastic"]._trial_info
    assert f"{population.trial_id}-1" not in info and f"{population.trial_id}-0" in info
    configs = [TrialConfig.from_dict(_trial("easy/plastic", "confirm").config) for _ in range(2)]
    confirm = Trial("sweep_trainable", config=population_config(configs), stub=True)
    s.on_trial_add(None, confirm)
    worse = {0: _result(RUNG, 0.45), 1: _result(RUNG, 0.49)}
    assert _report(s, confirm, worse) == TrialScheduler.CONTINUE
    assert read_stops(str(tmp_path), confirm.trial_id) == {}


def test_a_resumed_driver_keeps_the_stops_made_before_it(tmp_path: Path) -> None:
    """A driver killed and started again has a fresh scheduler: it adds its stops to the ones
    on disk instead of writing over them."""
    population = _population("easy/plastic", 3)
    write_stops(str(tmp_path), population.trial_id, {0: RUNG})
    s = _scheduler(tmp_path)
    good = _trial("easy/plastic")
    s.on_trial_add(None, good)
    s.on_trial_result(None, good, _result(RUNG, 0.01).to_dict())
    s.on_trial_add(None, population)
    results = {0: _result(RUNG, 0.5), 1: _result(RUNG, 0.45), 2: _result(RUNG, 0.001)}
    assert _report(s, population, results) == TrialScheduler.CONTINUE
    assert read_stops(str(tmp_path), population.trial_id) == {0: RUNG, 1: RUNG}


def test_a_restored_member_trains_up_to_its_stop_before_stopping() -> None:
    """A population restored from a checkpoint older than a member's stop trains that member
    again up to the episodes it had when stopped, as the run that was killed did."""
    stops = {0: 2 * RUNG, 1: RUNG}
    assert stops_due(stops, {0, 1, 2}, {k: _result(RUNG, 0.3) for k in range(3)}) == [1]
    assert stops_due(stops, {0, 2}, {k: _result(2 * RUNG, 0.3) for k in range(3)}) == [0]
    assert stops_due(stops, {2}, {2: _result(3 * RUNG, 0.3)}) == []


@pytest.mark.slow
def test_a_sweep_with_asha_and_populations_spends_exactly_its_budget(tmp_path: Path) -> None:
    """TPE and ASHA, 8 search trials as two populations of 4, then 2 confirmation seeds as
    one: the study ends with 8 trials, each COMPLETE or PRUNED; a PRUNED member's row is
    `stopped_early` and its curve ends where it was stopped."""
    spec = tiny_spec(
        tmp_path,
        name="asha",
        difficulties=["tiny"],
        models={"plastic": {"family": "plastic"}},
        train={"episodes": 400, "batch_size": 8, "eval_every": 100, "eval_episodes": 16},
        search={
            "trials_per_cell": 8,
            "sampler": "tpe",
            "seed": 0,
            "space": {"lr": {"loguniform": [1.0e-4, 3.0e-2]}},
        },
        early_stop={"scheduler": "asha", "grace_episodes": RUNG, "reduction_factor": 2},
        resources={"cpu": 1, "gpu": 0, "members": 4},
        max_concurrent=1,
    )
    done = sweep("run", str(write_spec(tmp_path, spec)))
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "results" / "asha"
    study = optuna.load_study(
        study_name="tiny/plastic", storage=journal_storage(local_journal(str(folder)))
    )
    states = [t.state for t in study.trials]
    assert len(states) == 8
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states

    trials = read_table(str(folder), "trials")
    search = trials[trials["phase"] == "search"].set_index("optuna_trial")
    assert sorted(search.index) == list(range(8))
    assert set(search["population"].dropna()) and search["member"].notna().all()
    curves = read_table(str(folder), "curves")
    for t in study.trials:
        row = search.loc[t.number]
        last = curves[curves["trial_id"] == row["trial_id"]]["episodes"].max()
        if t.state == TrialState.PRUNED:
            assert row["status"] == "stopped_early" and row["episodes"] < 400
            assert last == row["episodes"]  # no evaluation after its stop
        else:
            assert row["status"] == "completed" and row["episodes"] == 400 == last
    confirm = trials[trials["phase"] == "confirm"]
    assert len(confirm) == 2 and (confirm["status"] == "completed").all()
