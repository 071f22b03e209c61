"""Early stopping compares a trial only with trials of its own cell (real ASHA, real Trials)."""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from sweep.records import TaskDescriptor, TrialConfig, TrialResult
from sweep.scheduling import CellScheduler
from sweep.spec import EarlyStop


def _trial(cell: str, phase: str = "search") -> Trial:
    difficulty, model = cell.split("/")
    config = TrialConfig(
        cell=cell,
        difficulty=difficulty,
        model=model,
        family=model,
        phase=phase,
        number=0,
        seed=0,
        task="patterns",
        level=difficulty,
        overrides={},
        task_settings={},
        descriptor=TaskDescriptor("bit_error", "min", 0.5, 0.02, {}),
        hp={},
        model_params={},
        train={"episodes": 400},
    )
    return Trial("sweep_trainable", config=config.to_dict(), stub=True)


def _scheduler(*trials: Trial) -> CellScheduler:
    """ASHA per cell over 400 episodes (rungs at 100 and 200), `trials` added."""
    s = CellScheduler(EarlyStop(grace_episodes=100, reduction_factor=2), max_episodes=400)
    for t in trials:
        s.on_trial_add(None, t)
    return s


def evaluation(
    episodes: int,
    value: float,
    loss: float | None = None,
    done: bool = False,
    diverged: bool = False,
) -> TrialResult:
    """A trial's report of an evaluation every 100 episodes: the metric `value`, the best so
    far (the loss: `value` unless given)."""
    return TrialResult(
        step=episodes // 100,
        episodes=episodes,
        loss=value if loss is None else loss,
        value=value,
        wall_s=1.0,
        episodes_per_second=100.0,
        best_value=value,
        episodes_to_solve=None,
        num_parameters=1,
        done=done,
        diverged=diverged,
    )


def _report(s: CellScheduler, trial: Trial, episodes: int, error: float) -> str:
    return s.on_trial_result(None, trial, evaluation(episodes, error).to_dict())


def test_a_poor_trial_is_stopped_by_a_better_one_of_its_own_cell() -> None:
    good, poor = _trial("easy/plastic"), _trial("easy/plastic")
    s = _scheduler(good, poor)
    assert _report(s, good, 100, 0.01) == TrialScheduler.CONTINUE
    assert _report(s, poor, 100, 0.45) == TrialScheduler.STOP


def test_trials_of_other_cells_do_not_count() -> None:
    plastic, lstm = _trial("easy/plastic"), _trial("easy/lstm")
    s = _scheduler(plastic, lstm)
    assert _report(s, plastic, 100, 0.01) == TrialScheduler.CONTINUE
    # far worse than the plastic trial, but the first of its own cell: it goes on
    assert _report(s, lstm, 100, 0.45) == TrialScheduler.CONTINUE
    assert set(s.cells) == {"easy/plastic", "easy/lstm"}


def test_confirmation_trials_are_never_stopped() -> None:
    good, confirm = _trial("easy/plastic"), _trial("easy/plastic", phase="confirm")
    s = _scheduler(good, confirm)
    _report(s, good, 100, 0.01)
    assert _report(s, confirm, 100, 0.45) == TrialScheduler.CONTINUE
