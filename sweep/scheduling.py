"""Early stopping per cell: one ASHA per (difficulty, model), so trials compete only with
trials of their own cell. Confirmation trials always run their full budget.

A population's members (`resources.members` > 1) are decided one by one, each by its cell's
ASHA exactly as a lone trial would be (a rung's cutoff counts members and lone trials alike).
Ray Tune can stop only a whole Tune trial, so a member's stop travels as a file beside its
population's checkpoint (`sweep.store.stops_path`): the population reads it after each report
(Ray Tune's function trainables wait at `tune.report` until the scheduler has decided), stops
those members computing and reports their last results once more as done. A population none
of whose members runs any more is stopped as a whole."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from sweep.records import TrialConfig, TrialResult, member_id, member_results, trial_configs
from sweep.search import METRIC
from sweep.spec import EarlyStop
from sweep.store import read_stops, write_stops


@dataclass(frozen=True)
class _Member:
    """A population's member as ASHA sees a trial: by its id only."""

    trial_id: str


class CellScheduler(FIFOScheduler):
    def __init__(self, early_stop: EarlyStop, max_episodes: int, folder: str = ""):
        super().__init__()
        self.early_stop = early_stop
        self.max_episodes = max_episodes
        self.folder = folder  # the sweep's storage: where members' stops are written
        self.cells: dict[str, AsyncHyperBandScheduler] = {}
        # population -> the members ASHA stopped -> the episodes each had trained then
        self.stopped: dict[str, dict[int, int]] = {}

    def _asha(self, config: TrialConfig) -> AsyncHyperBandScheduler | None:
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

    def _known(self, trial: Trial | _Member, config: TrialConfig) -> AsyncHyperBandScheduler | None:
        asha = self._asha(config)
        return asha if asha is not None and trial.trial_id in asha._trial_info else None

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        configs = trial_configs(trial.config)
        if None in configs:
            asha = self._asha(configs[None])
            if asha is not None:
                asha.on_trial_add(tune_controller, trial)
            return
        for k, member in self._members(trial).items():
            asha = self._asha(configs[k])
            if asha is not None:
                asha.on_trial_add(tune_controller, member)  # type: ignore[arg-type]

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        configs = trial_configs(trial.config)
        if None not in configs:
            return self._population_result(tune_controller, trial, configs, result)
        asha = self._known(trial, configs[None])
        report = TrialResult.from_dict(result)
        if asha is None or report is None or report.diverged:
            return TrialScheduler.CONTINUE
        return str(asha.on_trial_result(tune_controller, trial, result))

    def _population_result(
        self,
        tune_controller: Any,
        trial: Trial,
        configs: dict[int | None, TrialConfig],
        result: dict[str, Any],
    ) -> str:
        """Each member's report, decided as a lone trial's; the population goes on while a
        member runs."""
        if trial.trial_id not in self.stopped:  # a resumed driver keeps the stops made before
            self.stopped[trial.trial_id] = read_stops(self.folder, trial.trial_id)
        stopped = self.stopped[trial.trial_id]
        members = self._members(trial)
        running: list[int] = []
        stops: list[int] = []
        for place, report in member_results(result).items():
            k = int(place or 0)  # (a population's results are all members')
            member = members[k]
            asha = self._known(member, configs[k])
            if report.done:
                self._end(tune_controller, asha, member, report)
            elif k not in stopped:
                running.append(k)
                decision = TrialScheduler.CONTINUE
                if asha is not None and not report.diverged:
                    decision = asha.on_trial_result(
                        tune_controller,
                        member,  # type: ignore[arg-type]
                        report.to_dict(),
                    )
                if decision == TrialScheduler.STOP:
                    stops.append(k)
                    stopped[k] = report.episodes
        if stops:
            write_stops(self.folder, trial.trial_id, stopped)
        if running and set(running) <= stopped.keys():
            return TrialScheduler.STOP  # its last report is each member's last
        return TrialScheduler.CONTINUE

    def _end(self, tune_controller: Any, asha: Any, member: _Member, report: TrialResult) -> None:
        if asha is None:
            return
        if report.diverged:
            asha.on_trial_remove(tune_controller, member)
        else:
            asha.on_trial_complete(tune_controller, member, report.to_dict())

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        configs = trial_configs(trial.config)
        if None not in configs:
            self._forget(tune_controller, trial, configs)
            return
        asha = self._known(trial, configs[None])
        report = TrialResult.from_dict(result)
        if asha is not None and report is not None and not report.diverged:
            asha.on_trial_complete(tune_controller, trial, result)
        elif asha is not None:
            asha.on_trial_remove(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        configs = trial_configs(trial.config)
        if None not in configs:
            self._forget(tune_controller, trial, configs)
            return
        asha = self._known(trial, configs[None])
        if asha is not None:
            asha.on_trial_remove(tune_controller, trial)

    def _forget(
        self, tune_controller: Any, trial: Trial, configs: dict[int | None, TrialConfig]
    ) -> None:
        """A population ended: its members still in a rung's bookkeeping leave it (their
        recorded values stay, as a lone trial's do)."""
        for k, member in self._members(trial).items():
            asha = self._known(member, configs[k])
            if asha is not None:
                asha.on_trial_remove(tune_controller, member)  # type: ignore[arg-type]

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.on_trial_remove(tune_controller, trial)

    @staticmethod
    def _members(trial: Trial) -> dict[int, _Member]:
        """A population's members, by place, as ASHA sees them."""
        places = [k for k in trial_configs(trial.config) if k is not None]
        return {k: _Member(member_id(trial.trial_id, k)) for k in places}

    def debug_string(self) -> str:
        return f"CellScheduler: ASHA in each of {len(self.cells)} cells"
