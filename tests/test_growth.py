"""Growing a sweep: what a spec may add (sweep.growth), and a real sweep grown in place."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml

from analysis import load
from analysis.report import write_report
from analysis.summary import cell_summary
from sweep.growth import cell_order, changes
from sweep.plan import cell_ids
from sweep.search import chosen, journal_storage
from sweep.spec import SEEDS_PER_CELL, parse_spec
from sweep.store import current_confirmation
from tests.support.sweeps import status_rows, sweep, tiny_spec, write_spec


def _small(tmp_path: Path) -> dict[str, Any]:
    spec = tiny_spec(tmp_path, name="grows", difficulties=["trivial"])
    spec["models"] = {"plastic": {"family": "plastic"}}
    spec["search"]["sampler"] = "random"  # what is sampled does not depend on timing
    spec["confirm"] = {"seeds": 1}
    return spec


def _grown(spec: dict[str, Any]) -> dict[str, Any]:
    grown = copy.deepcopy(spec)
    grown["difficulties"] = ["trivial", "tiny"]
    grown["models"]["rnn"] = {"family": "rnn", "match_parameters": "plastic"}
    grown["search"]["trials_per_cell"] = 3
    grown["search"]["space"]["rule"]["choice"] = ["hebb", "oja", "additive"]
    grown["confirm"] = {"seeds": 2}
    return grown


# -- what may change -------------------------------------------------------------------------
def test_additions_grow_and_how_it_runs_may_change(tmp_path: Path) -> None:
    spec = _small(tmp_path)
    grown = _grown(spec)
    grown["max_concurrent"] = 1
    grown["resources"]["cpu"] = 0.5
    refused, added = changes(parse_spec(spec), parse_spec(grown))
    assert refused == []
    assert added == [
        "difficulties: added tiny",
        "models: added rnn",
        "search.space.rule.choice: added ['additive']",
        "search.trials_per_cell: 2 -> 3",
        "confirm.seeds: 1 -> 2",
    ]
    assert changes(parse_spec(spec), parse_spec(spec)) == ([], [])


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (lambda s: s["train"].update(episodes=400), "train.episodes: 200 -> 400"),
        (
            lambda s: s["search"]["space"]["lr"].update(loguniform=[1e-3, 1e-2]),
            "search.space.lr.loguniform: [0.0001, 0.01] -> [0.001, 0.01]",
        ),
        (lambda s: s["search"]["space"].pop("eta"), "search.space.eta: removed"),
        (
            lambda s: s["search"]["space"].update(clip={"uniform": [0.5, 2.0]}),
            "search.space.clip: added",
        ),
        (
            lambda s: s["search"]["space"]["rule"].update(choice=["oja", "hebb"]),
            "search.space.rule.choice: ['hebb', 'oja'] -> ['oja', 'hebb']",
        ),
        (
            lambda s: s["models"]["plastic"].update(hidden=9),
            "models.plastic.hidden: (not set) -> 9",
        ),
        (lambda s: s.update(models={"p": {"family": "plastic"}}), "models: plastic removed"),
        (lambda s: s.update(difficulties=["tiny"]), "difficulties: trivial removed"),
        (
            lambda s: s.update(difficulties=[{"trivial": {"level": "tiny"}}]),
            "difficulties.trivial: {'level': 'trivial'} -> {'level': 'tiny'}",
        ),
        (lambda s: s["search"].update(trials_per_cell=1), "search.trials_per_cell: 2 -> 1"),
        (lambda s: s["search"].update(seed=3), "search.seed: 0 -> 3"),
        (lambda s: s["resources"].update(workers=2), "resources.workers: 1 -> 2"),
        (lambda s: s.update(early_stop={"scheduler": "asha"}), "early_stop"),
    ],
)
def test_changes_that_alter_finished_trials_are_refused(
    tmp_path: Path, edit: Any, line: str
) -> None:
    spec = _small(tmp_path)
    other = copy.deepcopy(spec)
    edit(other)
    refused, _ = changes(parse_spec(spec), parse_spec(other))
    assert any(r.startswith(line) for r in refused), refused


def test_cells_keep_their_index_as_a_sweep_grows(tmp_path: Path) -> None:
    spec = parse_spec(_small(tmp_path))
    grown = parse_spec(_grown(_small(tmp_path)))
    order = cell_order([spec, grown])
    assert order[0] == cell_ids(spec)[0] == "trivial/plastic"
    assert sorted(order) == sorted(cell_ids(grown)) and len(order) == 4


def test_the_current_confirmation_is_the_configuration_confirmed_last() -> None:
    t = pd.Timestamp("2026-01-01", tz="UTC")
    trials = pd.DataFrame(
        {
            "cell": ["a/x"] * 5 + ["b/x"] * 2,
            "phase": ["search", "confirm", "confirm", "confirm", "confirm", "search", "confirm"],
            "optuna_trial": [0, 1, 1, 3, 3, 0, 0],
            "started_at": [t + pd.Timedelta(seconds=s) for s in (0, 1, 2, 9, 10, 0, 1)],
        }
    )
    assert current_confirmation(trials).tolist() == [False, False, False, True, True, False, True]


# -- a real sweep, grown ---------------------------------------------------------------------
def _studies(folder: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = journal_storage(folder / "optuna" / "journal.log")
    return {
        name: optuna.load_study(study_name=name, storage=storage).trials
        for name in optuna.get_all_study_names(storage)
    }


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_sweep_grows_by_running_only_the_new_work(tmp_path: Path) -> None:
    spec = _small(tmp_path)
    first = sweep("run", str(write_spec(tmp_path, spec)))
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "results" / "grows"
    before = pd.read_parquet(folder / "trials").set_index("trial_id")
    studies_before = _studies(folder)
    assert len(before) == 2 + 1

    grown = _grown(spec)
    path = write_spec(tmp_path, grown)
    done = sweep("run", str(path))
    assert done.returncode == 0, done.stderr
    assert "growing the sweep there; difficulties: added tiny; models: added rnn" in done.stdout
    assert "search.trials_per_cell: 2 -> 3; confirm.seeds: 1 -> 2" in done.stdout

    after = pd.read_parquet(folder / "trials").set_index("trial_id")
    # the finished trials are the same rows, not run again
    kept = after.loc[before.index]
    assert (kept["started_at"] == before["started_at"]).all()
    assert (kept["final_value"] == before["final_value"]).all()
    new = after.drop(before.index)
    studies = _studies(folder)
    assert sorted(studies) == sorted(cell_ids(parse_spec(grown)))
    for cell, trials in studies.items():
        assert [t.number for t in trials] == [0, 1, 2], cell
        assert all(t.state.is_finished() for t in trials)
        if cell in studies_before:  # continued: past trials kept, two more asked
            assert [t.params for t in trials[:2]] == [t.params for t in studies_before[cell]]
            searched = new[(new["cell"] == cell) & (new["phase"] == "search")]
            assert searched["optuna_trial"].tolist() == [2], cell
    # every search seed distinct across the whole sweep: old cells keep their index
    search = after[after["phase"] == "search"]
    assert search["seed"].is_unique
    assert sorted(search.loc[search["cell"] == "trivial/plastic", "seed"]) == [0, 1, 2]
    assert set(search["seed"] // SEEDS_PER_CELL) == {0, 1, 2, 3}
    # the grown choice: the studies record the larger set, old values kept
    rule = studies["trivial/plastic"][0].distributions["rule"]
    assert isinstance(rule, optuna.distributions.CategoricalDistribution)
    assert list(rule.choices) == ["hebb", "oja", "additive"]
    # each cell's current best confirmed on both seeds; an earlier best's rows stay
    flat = after.reset_index()
    current = flat[current_confirmation(flat)]
    storage = journal_storage(folder / "optuna" / "journal.log")
    for cell in studies:
        best = chosen(optuna.load_study(study_name=cell, storage=storage), "min")
        assert best is not None
        mine = current[current["cell"] == cell]
        assert set(mine["optuna_trial"]) == {best.number}, cell
        assert mine["seed"].nunique() == 2, cell
    summary = cell_summary(after.reset_index())
    assert summary["seeds"].tolist() == [2] * 4
    assert (folder / "history" / "0" / "spec.yaml").exists()
    assert yaml.safe_load((folder / "history" / "1" / "spec-as-written.yaml").read_text()) == grown
    assert (folder / "tune-1").is_dir()
    # the report says which confirmation it uses and shows every generation's spec
    page = write_report(load(folder), tmp_path / "report", only=["final_value"]).read_text()
    assert "This sweep grew 1 time(s)" in page and "configuration confirmed last" in page
    assert "generation 0: as first run" in page and "generation 1: growth 1" in page
    assert len(load(folder).sweeps[0].history) == 2

    # run again: nothing left to run; the status counts the current confirmation only
    snapshot = _files(folder)
    again = sweep("run", str(path), timeout=120)
    assert again.returncode == 0, again.stderr
    assert "nothing left to run" in again.stdout
    assert all(row[:4] == ["5", "0", "0", "0"] for row in status_rows(again.stdout).values())
    # a change that is not growth: one line per key, exit 2, nothing written
    changed = copy.deepcopy(grown)
    changed["train"]["episodes"] = 400
    changed["search"]["trials_per_cell"] = 2
    (tmp_path / "other").mkdir()
    refused = sweep("run", str(write_spec(tmp_path / "other", changed)), timeout=120)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert "search.trials_per_cell: 3 -> 2 (it may only grow)" in lines[0]
    assert "train.episodes: 200 -> 400" in lines[1] and "new `name`" in lines[1]
    assert _files(folder) == snapshot
