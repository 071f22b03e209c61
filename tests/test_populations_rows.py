"""The results writer on a population's reports (no Ray run: a stub Tune trial, as Tune
hands it to the callback): each member its own rows; a member that diverges is `diverged`
alone, written when it ends, and not written again when its population ends or fails; and
`members` in a growing sweep."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from ray.tune.experiment import Trial
from ray.tune.utils import flatten_dict

from sweep.growth import changes
from sweep.plan import make_cells, trial_config
from sweep.progress import LiveCells
from sweep.records import TrialResult, member_results, population_config, population_result
from sweep.results import ResultsWriter, read_table
from sweep.spec import SweepSpec, parse_spec
from tests.support.driver import raw_rows
from tests.support.reports import evaluation
from tests.support.sweeps import tiny_spec


def report(step: int, value: float, done: bool = False, diverged: bool = False) -> TrialResult:
    loss = float("nan") if diverged else 0.1
    result = evaluation(100 * step, value, loss=loss, done=done, diverged=diverged)
    final = value if done else None
    return replace(
        result, wall_s=float(step), num_parameters=7, final_value=final, checkpointed=done
    )


@pytest.fixture
def population(tmp_path: Path) -> tuple[ResultsWriter, Trial, Path, SweepSpec]:
    raw = tiny_spec(tmp_path, difficulties=["trivial"], resources={"members": 3})
    raw["models"] = {"rnn": {"family": "rnn", "hidden": 4}}
    raw["search"] = {"trials_per_cell": 3, "seed": 0, "space": {}}
    spec = parse_spec(raw)
    cell = make_cells(spec)[0]
    members = [trial_config(spec, cell, "search", n, 10 + n, {}) for n in range(3)]
    trial = Trial("sweep_trainable", config=population_config(members), stub=True)
    folder = tmp_path / "results" / "tiny"
    return ResultsWriter(spec, str(folder)), trial, folder, spec


def _ended(writer: ResultsWriter, trial: Trial, folder: Path, last: dict, end: str) -> pd.DataFrame:
    """The population's last report, then its end as Tune tells it (`on_trial_complete` or
    `on_trial_error`): the trials table, by member."""
    writer.on_trial_result(0, [], trial, last)
    trial.run_metadata.last_result = last
    getattr(writer, end)(0, [], trial)
    return read_table(folder, "trials").sort_values("member")


def test_a_diverged_member_is_written_alone_and_once(population) -> None:
    writer, trial, folder, _ = population
    first = population_result({0: report(1, 0.4), 1: report(1, 0.3), 2: report(1, 0.5)}, "min")
    writer.on_trial_result(0, [], trial, first)
    diverged = population_result({1: report(2, 0.3, done=True, diverged=True)}, "min")
    writer.on_trial_result(0, [], trial, diverged)
    rows = read_table(folder, "trials")  # written when it ended, its population running
    assert rows[["trial_id", "member", "status"]].values.tolist() == [
        [f"{trial.trial_id}-1", 1, "diverged"]
    ]
    last = population_result({0: report(3, 0.2, done=True), 2: report(3, 0.1, done=True)}, "min")
    rows = _ended(writer, trial, folder, last, "on_trial_complete")
    assert rows["status"].tolist() == ["completed", "diverged", "completed"]
    assert rows["final_value"].tolist() == [0.2, 0.3, 0.1]
    assert (rows["population"] == trial.trial_id).all()
    assert rows["seed"].tolist() == [10, 11, 12] and rows["optuna_trial"].tolist() == [0, 1, 2]
    curves = read_table(folder, "curves")
    assert curves.groupby("member").size().to_dict() == {0: 2, 1: 2, 2: 2}
    assert raw_rows(folder, "trials")["trial_id"].is_unique  # each written once


def test_members_that_had_not_ended_fail_with_their_population(population) -> None:
    """After a driver restart (the writer remembers nothing: Tune pickles it empty), a
    population that fails writes `failed` rows for its members that had not ended, and
    leaves the row of one that had."""
    writer, trial, folder, _ = population
    ended = population_result({0: report(1, 0.4, done=True, diverged=True)}, "min")
    writer.on_trial_result(0, [], trial, ended)
    restarted = pickle.loads(pickle.dumps(writer))
    running = population_result({1: report(2, 0.3), 2: report(2, 0.5)}, "min")
    rows = _ended(restarted, trial, folder, running, "on_trial_error")
    assert rows["status"].tolist() == ["diverged", "failed", "failed"]
    assert rows["final_value"].tolist() == [0.4, 0.3, 0.5]
    assert raw_rows(folder, "trials")["trial_id"].is_unique


def test_searchers_read_members_from_flattened_results() -> None:
    """Ray Tune hands searchers results flattened (`members/<k>/<field>`)."""
    result = population_result({0: report(1, 0.4), 2: report(1, 0.2, done=True)}, "min")
    assert result["value"] == 0.2
    for given in (result, flatten_dict(result)):
        found = member_results(given)
        assert set(found) == {0, 2} and found[2].done and found[0].value == 0.4
    lone = report(1, 0.4).to_dict()
    assert member_results(flatten_dict(lone)) == {None: report(1, 0.4)}


def test_members_is_free_to_change_when_a_sweep_grows(tmp_path: Path) -> None:
    """A member trains as it would alone: `members` changes how a sweep runs, not what its
    trials mean."""
    old = parse_spec(tiny_spec(tmp_path))
    new = parse_spec(tiny_spec(tmp_path, resources={"cpu": 1, "members": 4}))
    assert changes(old, new) == ([], [])


def test_the_live_view_counts_members(population) -> None:
    """A running population's member that ended counts as done (diverged: failed) while the
    others run."""
    _, trial, _, spec = population
    live = LiveCells(spec)
    trial.set_status(Trial.RUNNING)
    ended = population_result(
        {0: report(1, 0.4), 1: report(1, 0.3, done=True, diverged=True)}, "min"
    )
    live.on_trial_result(0, [trial], trial, ended)
    trial.run_metadata.last_result = population_result(
        {0: report(2, 0.2), 2: report(2, 0.1)}, "min"
    )
    (counts,) = live.counts([trial])
    assert (counts.done, counts.failed, counts.running, counts.best) == (1, 1, 2, 0.3)
