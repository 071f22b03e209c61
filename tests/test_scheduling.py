"""Early stopping compares a trial only with trials of its own cell (real ASHA, real Trials)."""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from sweep.scheduling import CellScheduler
from sweep.spec import EarlyStop
from tests.support.reports import evaluation, tune_trial


def _scheduler(*trials: Trial) -> CellScheduler:
    """ASHA per cell over 400 episodes (rungs at 100 and 200), `trials` added."""
    s = CellScheduler(EarlyStop(grace_episodes=100, reduction_factor=2), max_episodes=400)
    for t in trials:
        s.on_trial_add(None, t)
    return s


def _report(s: CellScheduler, trial: Trial, episodes: int, error: float) -> str:
    return s.on_trial_result(None, trial, evaluation(episodes, error).to_dict())


def test_a_poor_trial_is_stopped_by_a_better_one_of_its_own_cell() -> None:
    good, poor = tune_trial("easy/plastic"), tune_trial("easy/plastic")
    s = _scheduler(good, poor)
    assert _report(s, good, 100, 0.01) == TrialScheduler.CONTINUE
    assert _report(s, poor, 100, 0.45) == TrialScheduler.STOP


def test_trials_of_other_cells_do_not_count() -> None:
    plastic, lstm = tune_trial("easy/plastic"), tune_trial("easy/lstm")
    s = _scheduler(plastic, lstm)
    assert _report(s, plastic, 100, 0.01) == TrialScheduler.CONTINUE
    # far worse than the plastic trial, but the first of its own cell: it goes on
    assert _report(s, lstm, 100, 0.45) == TrialScheduler.CONTINUE
    assert set(s.cells) == {"easy/plastic", "easy/lstm"}


def test_confirmation_trials_are_never_stopped() -> None:
    good, confirm = tune_trial("easy/plastic"), tune_trial("easy/plastic", phase="confirm")
    s = _scheduler(good, confirm)
    _report(s, good, 100, 0.01)
    assert _report(s, confirm, 100, 0.45) == TrialScheduler.CONTINUE
