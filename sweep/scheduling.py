"""Early stopping per cell: one ASHA per (difficulty, model), so trials compete only with
trials of their own cell. Confirmation trials always run their full budget."""

from __future__ import annotations

from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from sweep.records import TrialConfig, TrialResult
from sweep.search import METRIC
from sweep.spec import EarlyStop


class CellScheduler(FIFOScheduler):
    def __init__(self, early_stop: EarlyStop, max_episodes: int):
        super().__init__()
        self.early_stop = early_stop
        self.max_episodes = max_episodes
        self.cells: dict[str, AsyncHyperBandScheduler] = {}

    def _asha(self, trial: Trial) -> AsyncHyperBandScheduler | None:
        config = TrialConfig.from_dict(trial.config)
        if not config.is_search:
            return None
        cell = config.cell
        if cell not in self.cells:
            self.cells[cell] = AsyncHyperBandScheduler(
                time_attr="episodes",
                metric=METRIC,
                mode=config.descriptor.goal,  # Ray Tune's modes are the goals: "min" or "max"
                max_t=self.max_episodes,
                grace_period=min(self.early_stop.grace_episodes, self.max_episodes),
                reduction_factor=self.early_stop.reduction_factor,
            )
        return self.cells[cell]

    def _known(self, trial: Trial) -> AsyncHyperBandScheduler | None:
        asha = self._asha(trial)
        return asha if asha is not None and trial.trial_id in asha._trial_info else None

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        asha = self._asha(trial)
        if asha is not None:
            asha.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        asha = self._known(trial)
        report = TrialResult.from_dict(result)
        if asha is None or report is None or report.diverged:
            return TrialScheduler.CONTINUE
        return str(asha.on_trial_result(tune_controller, trial, result))

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        asha = self._known(trial)
        report = TrialResult.from_dict(result)
        if asha is not None and report is not None and not report.diverged:
            asha.on_trial_complete(tune_controller, trial, result)
        elif asha is not None:
            asha.on_trial_remove(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        asha = self._known(trial)
        if asha is not None:
            asha.on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return f"CellScheduler: ASHA in each of {len(self.cells)} cells"
