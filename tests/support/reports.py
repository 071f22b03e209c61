"""What a trial reports, and the Ray Tune trial that reports it, built by hand for tests of
the schedulers and the population's rows."""

from __future__ import annotations

from ray.tune.experiment import Trial

from sweep.records import TaskDescriptor, TrialConfig, TrialResult


def tune_trial(cell: str, phase: str = "search") -> Trial:
    """A Ray Tune `Trial` (a stub) of a patterns trial in `cell` ("difficulty/model")."""
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
