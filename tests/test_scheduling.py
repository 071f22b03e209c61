"""Early stopping compares a trial only with trials of its own cell (real ASHA, real Trials)."""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from sweep.scheduling import CellScheduler
from sweep.spec import EarlyStop


def _trial(cell: str, phase: str = "search") -> Trial:
    return Trial("sweep_trainable", config={"cell": cell, "phase": phase}, stub=True)


def _scheduler() -> CellScheduler:
    return CellScheduler(EarlyStop(grace_episodes=100, reduction_factor=2), max_episodes=400)


def _report(s: CellScheduler, trial: Trial, episodes: int, error: float) -> str:
    return s.on_trial_result(None, trial, {"episodes": episodes, "error": error})


def test_a_poor_trial_is_stopped_by_a_better_one_of_its_own_cell() -> None:
    s = _scheduler()
    good, poor = _trial("easy/plastic"), _trial("easy/plastic")
    for t in (good, poor):
        s.on_trial_add(None, t)
    assert _report(s, good, 100, 0.01) == TrialScheduler.CONTINUE
    assert _report(s, poor, 100, 0.45) == TrialScheduler.STOP


def test_trials_of_other_cells_do_not_count() -> None:
    s = _scheduler()
    plastic, lstm = _trial("easy/plastic"), _trial("easy/lstm")
    for t in (plastic, lstm):
        s.on_trial_add(None, t)
    assert _report(s, plastic, 100, 0.01) == TrialScheduler.CONTINUE
    # far worse than the plastic trial, but the first of its own cell: it goes on
    assert _report(s, lstm, 100, 0.45) == TrialScheduler.CONTINUE
    assert set(s.cells) == {"easy/plastic", "easy/lstm"}


def test_confirmation_trials_are_never_stopped() -> None:
    s = _scheduler()
    good, confirm = _trial("easy/plastic"), _trial("easy/plastic", phase="confirm")
    for t in (good, confirm):
        s.on_trial_add(None, t)
    _report(s, good, 100, 0.01)
    assert _report(s, confirm, 100, 0.45) == TrialScheduler.CONTINUE
