"""One Optuna study per cell, multiplexed behind a single Ray Tune Searcher.

Every cell gets the same budget of search trials. Once all of a cell's search trials are
told, the searcher hands out that cell's confirmation trials: its best configuration on the
sweep's confirmation seeds. Studies live in an Optuna journal file, so they survive the
driver, and optuna-dashboard can open them.

Each study is told what happened: its direction is the task's goal ("maximize" for a reward),
every evaluation of a search trial is an intermediate value at step = training episodes (the
scheduler's time and the curves' x axis), a trial the scheduler stopped early is PRUNED
(Optuna takes its last intermediate value as its value), and the study's user attributes
name the metric, goal, task, difficulty, model and family.

A trial's end is told to its study only after the trials row it ends with is written (Ray
Tune calls the searcher before the results writer): a driver killed in between leaves the
Optuna trial RUNNING, never finished without a row. A driver that starts on a sweep tells
each such trial from its row; one without a row is run again (its Tune trial may be lost
with Ray's saved state, which lags the journal).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import TrialState
from ray.tune.search import Searcher

from sweep.members import shape_key
from sweep.plan import Cell, confirm_index, confirm_seed, search_seed, trial_config
from sweep.records import (
    TrialConfig,
    TrialResult,
    member_id,
    member_results,
    outcome,
    population_config,
    trial_configs,
)
from sweep.results import read_table
from sweep.spec import Distribution, SweepSpec
from sweep.storage import local_journal, upload_journal
from sweep.store import best

METRIC = "value"
# a task's goal -> Optuna's direction
DIRECTIONS = {"min": StudyDirection.MINIMIZE, "max": StudyDirection.MAXIMIZE}
optuna.logging.set_verbosity(optuna.logging.WARNING)  # the live view says what happens


def optuna_distribution(dist: Distribution) -> BaseDistribution:
    kind = dist.kind()
    if kind == "choice":
        return CategoricalDistribution(dist.choice or [])
    low, high = dist.values()
    if kind in ("int", "logint"):
        return IntDistribution(int(low), int(high), log=kind == "logint")
    return FloatDistribution(float(low), float(high), log=kind == "loguniform")


def _sampler(spec: SweepSpec, cell: Cell, number: int) -> optuna.samplers.BaseSampler:
    """The sampler that asks for trial `number` of a cell, seeded by that trial's seed: what
    a trial is sampled depends on the study's past trials and its number only, never on
    whether the driver restarted or the sweep grew in between (a sampler made once and
    re-made on resume would replay its random draws from the start)."""
    seed = search_seed(spec, cell, number)
    if spec.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.search.sampler == "grid":
        # The grid sampler gives trial n the n-th point of the grid as its seed shuffles it:
        # one shuffle per cell (its first trial's seed), or two trials may get one point.
        seed = search_seed(spec, cell, 0)
        grid: dict[str, list[Any]] = {}
        for name, dist in cell.space.items():
            low_high = dist.values()
            grid[name] = (
                low_high if dist.kind() == "choice" else list(range(low_high[0], low_high[1] + 1))
            )
        return optuna.samplers.GridSampler(grid, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


# the training settings every member of a population shares (`sweep.population`)
SHARED_TRAINING = ("batch_size", "episodes", "eval_every", "eval_episodes")


def population_key(config: TrialConfig) -> tuple[Any, ...]:
    """What trials must share to train in one population: the model's shape and the
    training settings that set the population's batches and evaluations."""
    shared = tuple(config.train[name] for name in SHARED_TRAINING)
    return (*shape_key(config.family, config.model_params), *shared)


def journal_storage(path: Path) -> optuna.storages.JournalStorage:
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def study_attributes(cell: Cell) -> dict[str, str]:
    """What a cell's study is about, as its user attributes (optuna-dashboard shows them)."""
    return {
        "metric": cell.task.descriptor.metric,
        "goal": cell.task.descriptor.goal,
        "direction": DIRECTIONS[cell.task.descriptor.goal].name.lower(),  # minimize | maximize
        "task": cell.task.name,
        "difficulty": cell.difficulty,
        "model": cell.model,
        "family": cell.family,
    }


class CellSearcher(Searcher):
    """Ray Tune Searcher: suggest() picks the cell with the fewest trials handed out."""

    def __init__(self, spec: SweepSpec, cells: list[Cell], folder: str):
        # A sweep has one task, so one goal; Ray Tune's modes are the goals' names.
        super().__init__(metric=METRIC, mode=cells[0].task.descriptor.goal)
        self.spec = spec
        self.folder = folder  # the sweep's storage; the journal's place follows from it
        self.cells = cells
        # Ray trial id (a population's member: its member id, `sweep.records.member_id`) ->
        # (cell id, phase, Optuna trial number or confirmation index)
        self.trials: dict[str, tuple[str, str, int]] = {}
        self.past = past_confirmations(spec, folder)
        self._studies: dict[str, optuna.Study] | None = None
        # ends to tell, once the results writer has written their rows: (id, report, error)
        self._ended: list[tuple[str, TrialResult | None, bool]] = []

    # -- state -------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_studies": None}  # storages hold file handles

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a searcher pickled before sweeps could grow has no `past`: nothing confirmed before
        self.__dict__.update({"past": {}, "_ended": [], **state})

    @property
    def studies(self) -> dict[str, optuna.Study]:
        if self._studies is None:
            storage = journal_storage(local_journal(self.folder))
            self._studies = {c.id: self._study(storage, c) for c in self.cells}
            if self._tell_from_rows(self._studies):
                upload_journal(self.folder)
        return self._studies

    def _tell_from_rows(self, studies: dict[str, optuna.Study]) -> bool:
        """Tell each search trial that is RUNNING in its study but has a trials row (its
        driver was killed between writing the row and telling) how it ended; whether any."""
        running = {
            (cell, t.number)
            for cell, study in studies.items()
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        }
        if not running:
            return False
        rows = read_table(self.folder, "trials")
        rows = rows[rows["phase"] == "search"]
        told = False
        columns = ("cell", "optuna_trial", "status", "final_value", "episodes")
        for cell, number, status, value, episodes in zip(*(rows[c] for c in columns), strict=True):
            if (cell, number) in running:
                _end(studies[cell], int(number), status, float(value), float(episodes))
                told = True
        return told

    def _study(self, storage: optuna.storages.BaseStorage, cell: Cell) -> optuna.Study:
        study = optuna.create_study(
            study_name=cell.id,
            storage=storage,
            direction=DIRECTIONS[cell.task.descriptor.goal],
            load_if_exists=True,
        )
        study = widen_choices(study, storage, cell)
        for key, value in study_attributes(cell).items():
            if study.user_attrs.get(key) != value:  # a resumed driver adds nothing
                study.set_user_attr(key, value)
        return study

    def save(self, checkpoint_path: str) -> None:
        # Tune saves this with its experiment state; the journal copy in storage must hold
        # every Optuna trial that state refers to.
        self._tell_ended()
        upload_journal(self.folder)
        Path(checkpoint_path).write_bytes(pickle.dumps(self.trials))

    def restore(self, checkpoint_path: str) -> None:
        self.trials = pickle.loads(Path(checkpoint_path).read_bytes())

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        """What each trial runs, from the trials of Ray Tune's own saved state rather than
        from this searcher's file beside it: the two are uploaded file by file, so a driver
        killed between them leaves them from different moments (a confirmation seed handed
        to a trial that Tune never knew would count as taken and never run)."""
        super().restore_from_dir(checkpoint_dir)
        saved = saved_trials(checkpoint_dir)
        if saved is None:  # (no state of Tune's beside it: the searcher's file is all there is)
            return
        self.trials = {}
        for trial_id, config in saved.items():
            for k, member in trial_configs(config).items():
                key = trial_id if k is None else member_id(trial_id, k)
                number = (
                    member.number if member.is_search else confirm_index(self.spec, member.seed)
                )
                self.trials[key] = (member.cell, member.phase, number)

    # -- Ray Tune's searcher interface -------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        """A lone trial's config; with `resources.members` K > 1, a population's: up to K
        search trials of one cell and shape, or up to K of a cell's confirmation seeds."""
        if self._tell_ended():
            upload_journal(self.folder)
        budget = self.spec.search.trials_per_cell
        size = self.spec.resources.members
        waiting = False
        for cell in sorted(self.cells, key=self._handed_out):
            numbers = self._search_numbers(cell, size)
            if numbers:
                configs = [self._search_config(cell, n) for n in numbers]
                return self._hand_out(trial_id, "search", numbers, configs)
            study = self.studies[cell.id]
            done = [t for t in study.trials if t.state.is_finished()]
            if len(done) < budget:
                waiting = True  # its confirmation waits for the last search trials
                continue
            chosen = self._best(cell)
            if chosen is None:
                continue
            # within a driver's run the best is settled before any confirmation starts: the
            # seeds handed out are the chosen configuration's, as are the past ones counted
            past = self.past.get((cell.id, chosen.number), set())
            taken = set(self._mine(cell, "confirm")) | past
            left = [k for k in range(self.spec.confirm.seeds) if k not in taken][:size]
            if left:
                configs = [
                    trial_config(
                        self.spec,
                        cell,
                        "confirm",
                        chosen.number,
                        confirm_seed(self.spec, k),
                        chosen.params,
                    )
                    for k in left
                ]
                return self._hand_out(trial_id, "confirm", left, configs)
        return None if waiting or self._running() else Searcher.FINISHED

    def _search_numbers(self, cell: Cell, size: int) -> list[int]:
        """The Optuna trials of `cell` to run next, up to `size`, all of one shape: first
        those asked but never handed out (a driver crash, or another shape than the
        population they were asked for), then new asks while the budget lasts. An asked
        trial of another shape is never dropped: it waits, asked, for the next suggest."""
        study = self.studies[cell.id]
        orphans = self._orphans(cell)
        shape = self._shape(cell, orphans[0]) if orphans else None
        numbers = [n for n in orphans if self._shape(cell, n) == shape][:size]
        for _ in range(size - len(numbers)):
            if len(study.trials) >= self.spec.search.trials_per_cell:
                break
            fixed = {n: optuna_distribution(d) for n, d in cell.space.items()}
            study.sampler = _sampler(self.spec, cell, len(study.trials))
            number = study.ask(fixed).number
            shape = self._shape(cell, number) if shape is None else shape
            if self._shape(cell, number) == shape:
                numbers.append(number)
        return numbers

    def _shape(self, cell: Cell, number: int) -> tuple[Any, ...]:
        if self.spec.resources.members == 1:  # lone trials: any trial goes
            return ()
        return population_key(self._search_config(cell, number))

    def _hand_out(
        self, trial_id: str, phase: str, numbers: list[int], configs: list[TrialConfig]
    ) -> dict[str, Any]:
        """Record what the Tune trial runs (a population: each member under its own id) and
        give its config."""
        cell = configs[0].cell
        if self.spec.resources.members == 1:
            self.trials[trial_id] = (cell, phase, numbers[0])
            return configs[0].to_dict()
        for k, number in enumerate(numbers):
            self.trials[member_id(trial_id, k)] = (cell, phase, number)
        return population_config(configs)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Each evaluation becomes an intermediate value (a population's: each member's, and
        a member that ended is told then). The storage copy of the journal is refreshed
        when the report came with a checkpoint: a resumed trial re-reports what followed
        its checkpoint, so the copy then misses nothing a resume cannot restore, at one
        upload per checkpoint rather than one per evaluation."""
        upload = self._tell_ended()
        for k, report in member_results(result).items():
            key = trial_id if k is None else member_id(trial_id, k)
            upload |= self._report(key, report) and report.checkpointed
            if k is not None and report.done:
                self._ended.append((key, report, False))
        if upload:
            upload_journal(self.folder)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Noted, told at the searcher's next call: Ray Tune calls the results writer after
        this, and a study learns of an end only once its row is written."""
        if self._tell_ended():
            upload_journal(self.folder)
        reports = member_results(result)
        if trial_id in self.trials:  # a lone trial
            self._ended.append((trial_id, reports.get(None), error))
        else:  # each member not told yet (one that ended earlier was told then)
            for k, key in self._members(trial_id).items():
                self._ended.append((key, reports.get(k), error))

    def _tell_ended(self) -> bool:
        """Tell the studies the ends noted since the searcher's last call; whether any was
        told (the journal's copy in storage then needs refreshing)."""
        ended, self._ended = self._ended, []
        told = False
        for key, report, error in ended:
            told |= self._tell(key, report, error)
        return told

    def _tell(self, key: str, report: TrialResult | None, error: bool) -> bool:
        """Tell a search trial's end (a population's member: under its own id) to its study;
        whether it was told now (a confirmation, or one told before, is not)."""
        cell_id, phase, number = self.trials[key]
        if phase != "search":
            return False
        study = self.studies[cell_id]
        if study.trials[number].state.is_finished():
            return False
        # Ray Tune gives the searcher no result the scheduler stopped a trial on: the last
        # report arrives here.
        if error or report is None:
            _end(study, number, "failed", math.nan, 0)
        else:
            status = outcome(report, self.spec.train_config().episodes, failed=False)
            _end(study, number, status, float(report.value), report.episodes)
        return True

    # -- helpers -----------------------------------------------------------------------
    def _report(self, trial_id: str, report: TrialResult) -> bool:
        """A search trial's evaluation as an intermediate value at step = episodes; whether
        one was written (a step already there, re-reported by a resumed trial, stays)."""
        cell_id, phase, number = self.trials[trial_id]
        if phase != "search" or not report.usable:
            return False
        return _intermediate(self.studies[cell_id], number, float(report.value), report.episodes)

    def _search_config(self, cell: Cell, number: int) -> TrialConfig:
        params = self.studies[cell.id].trials[number].params
        seed = search_seed(self.spec, cell, number)
        return trial_config(self.spec, cell, "search", number, seed, params)

    def _members(self, trial_id: str) -> dict[int, str]:
        """A population's members: place -> id (ids are `<population>-<place>`)."""
        prefix = f"{trial_id}-"
        return {int(k[len(prefix) :]): k for k in self.trials if k.startswith(prefix)}

    def _mine(self, cell: Cell, phase: str) -> list[int]:
        return [n for c, p, n in self.trials.values() if c == cell.id and p == phase]

    def _handed_out(self, cell: Cell) -> int:
        return sum(1 for c, _, _ in self.trials.values() if c == cell.id)

    def _orphans(self, cell: Cell) -> list[int]:
        mapped = set(self._mine(cell, "search"))
        return [
            t.number
            for t in self.studies[cell.id].trials
            if t.state == TrialState.RUNNING and t.number not in mapped
        ]

    def _running(self) -> bool:
        return any(
            phase == "search" and not self.studies[c].trials[n].state.is_finished()
            for c, phase, n in self.trials.values()
        )

    def _best(self, cell: Cell) -> optuna.trial.FrozenTrial | None:
        return chosen(self.studies[cell.id], cell.task.descriptor.goal)


def saved_trials(checkpoint_dir: str) -> dict[str, dict[str, Any]] | None:
    """Trial id -> Ray config of each trial in the newest Ray Tune experiment state in
    `checkpoint_dir` (the state Tune resumes from, read with Tune's own functions); None
    when there is none."""
    from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint
    from ray.tune.experiment import Trial
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    path = _find_newest_experiment_checkpoint(checkpoint_dir)
    if path is None:
        return None
    state = _loads_with_cloudpickle(Path(path).read_bytes())
    trials = (Trial.from_json_state(data) for data, _ in state["trial_data"])
    return {t.trial_id: t.config for t in trials}


def _end(study: optuna.Study, number: int, status: str, value: float, episodes: float) -> None:
    """Tell trial `number` how it ended (a trials row's `status`), its last evaluation `value`
    at `episodes`: completed with that value, stopped early as PRUNED (Optuna takes its last
    intermediate value), FAIL when there is nothing to learn from (failed, diverged, NaN)."""
    # A trial's sampler is made for its ask (`_sampler`); telling needs none, and the grid
    # sampler's would stop the study once its grid is spent, which Optuna allows only inside
    # `optimize` (RuntimeError).
    study.sampler = optuna.samplers.RandomSampler()
    if status not in ("completed", "stopped_early") or value != value:
        study.tell(number, state=TrialState.FAIL)
        return
    _intermediate(study, number, value, int(episodes))
    if status == "completed":
        study.tell(number, value)
    else:
        study.tell(number, state=TrialState.PRUNED)


def _intermediate(study: optuna.Study, number: int, value: float, episodes: int) -> bool:
    """Trial `number`'s evaluation as an intermediate value at step = episodes; whether one
    was written (a step already there, re-reported by a resumed trial, stays)."""
    frozen = study.get_trials(deepcopy=False)[number]
    if frozen.state.is_finished() or episodes in frozen.intermediate_values:
        return False
    # Optuna's ask-and-tell has no "report" of its own: a Trial bound to the stored one (by
    # its storage id) reports, as inside an objective function.
    optuna.Trial(study, frozen._trial_id).report(value, episodes)
    return True


def chosen(study: optuna.Study, goal: str) -> optuna.trial.FrozenTrial | None:
    """The configuration to confirm: the completed trial with the best value per the task's
    goal (the earliest of equals); if the scheduler stopped every trial that did not fail,
    the best of those."""
    for state in (TrialState.COMPLETE, TrialState.PRUNED):
        trials = study.get_trials(deepcopy=False, states=(state,))
        done = [(t, t.value) for t in trials if t.value is not None]
        if done:
            top = best([value for _, value in done], goal)
            return next(t for t, value in done if value == top)
    return None


def past_confirmations(spec: SweepSpec, folder: str) -> dict[tuple[str, int], set[int]]:
    """(cell, configuration number) -> the confirmation seeds (as indices k) with a trials
    row: what a grown sweep need not run again."""
    trials = read_table(folder, "trials")
    if trials.empty:
        return {}
    rows = trials[trials["phase"] == "confirm"]
    past: dict[tuple[str, int], set[int]] = {}
    for cell, number, seed in zip(rows["cell"], rows["optuna_trial"], rows["seed"], strict=True):
        past.setdefault((str(cell), int(number)), set()).add(confirm_index(spec, int(seed)))
    return past


def widen_choices(
    study: optuna.Study, storage: optuna.storages.BaseStorage, cell: Cell
) -> optuna.Study:
    """A grown `choice` (entries added at its end): Optuna keeps one set of choices per
    parameter of a study, so the study is written again, under its name, with every past
    trial (numbers, values, states, intermediate values and attributes kept) recorded under
    the larger set. Nothing to do when the choices are the same."""
    space = {n: optuna_distribution(d) for n, d in cell.space.items()}
    old = study.get_trials(deepcopy=False)
    stale = any(
        name in space and dist != space[name]
        for t in old
        for name, dist in t.distributions.items()
        if isinstance(dist, CategoricalDistribution)
    )
    if not stale:
        return study
    attrs = study.user_attrs
    optuna.delete_study(study_name=study.study_name, storage=storage)
    fresh = optuna.create_study(
        study_name=study.study_name, storage=storage, direction=study.direction
    )
    for key, value in attrs.items():
        fresh.set_user_attr(key, value)
    for t in old:
        fresh.add_trial(
            optuna.trial.create_trial(
                state=t.state,
                value=t.value,
                params=t.params,
                distributions={n: space.get(n, d) for n, d in t.distributions.items()},
                user_attrs=t.user_attrs,
                system_attrs=t.system_attrs,
                intermediate_values=t.intermediate_values,
            )
        )
    return fresh
