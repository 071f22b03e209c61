"""Populations in the sweep (`resources.members`): real sweeps on embedded Ray.

A member trains as it would alone, so with a sampler whose draws depend on the trial's number
only (random, grid) and no early stopping, a sweep with `members: 4` writes, seed for seed,
the trials and curves of the same sweep with `members: 1`; only ids and timings differ. Each
sweep costs a Ray start: the module runs three (and one resume).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest

from sweep.plan import make_cells, trial_config
from sweep.progress import counts_from_storage
from sweep.results import read_table
from sweep.runner import read_spec
from sweep.search import journal_storage
from sweep.storage import local_journal
from sweep.trainable import build_trial
from tests.support.driver import Driver, kill_when_rows, raw_rows
from tests.support.sweeps import sweep, tiny_spec, write_spec

pytestmark = pytest.mark.slow

# what a member's rows say of its training: the same whatever population it trained in
KEY = ["phase", "cell", "seed"]
OUTCOME = [
    "optuna_trial",
    "status",
    "final_value",
    "best_value",
    "episodes_to_solve",
    "episodes",
    "num_parameters",
]
CURVE = ["step", "episodes", "loss", "value"]
CELLS = ("tiny/plastic",)


def population_spec(tmp_path: Path, members: int, **changes: Any) -> dict[str, Any]:
    """One cell (a plastic model) x 4 random search trials + 2 confirmation seeds; the
    space is `tiny_spec`'s, whose `rule` is a shape setting, so its asks fall into two
    shapes."""
    spec = tiny_spec(
        tmp_path,
        name=f"pop{members}",
        difficulties=["tiny"],
        models={"plastic": {"family": "plastic"}},
        confirm={"seeds": 2},
        resources={"cpu": 1, "gpu": 0, "members": members},
    )
    spec["search"].update(trials_per_cell=4, sampler="random", seed=3)
    return {**spec, **changes}


def ran(tmp_path: Path, spec: dict[str, Any]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    done = sweep("run", str(write_spec(tmp_path, spec)))
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp_path / "results" / spec["name"]


def assert_same(folder: Path, reference: Path, table: str, columns: list[str]) -> None:
    """Seed for seed, the rows of `table` agree on `columns` and every config column."""
    pd.testing.assert_frame_equal(
        by_seed(folder, table, columns), by_seed(reference, table, columns)
    )


def by_seed(folder: Path, table: str, columns: list[str]) -> pd.DataFrame:
    rows = read_table(folder, table)
    keep = [
        *KEY,
        *columns,
        *sorted(c for c in map(str, rows.columns) if c.startswith(("hp.", "task."))),
    ]
    keep = list(dict.fromkeys(c for c in keep if c in rows))
    order = [*KEY, "step"] if "step" in rows else KEY
    return rows[keep].sort_values(order).reset_index(drop=True)


def test_members_write_the_rows_of_lone_trials_and_resume_to_them(tmp_path: Path) -> None:
    """`members: 1`, then the same sweep with `members: 4`, its driver killed once members
    have ended and resumed: seed for seed the same rows, every trial once. (One sweep with
    members serves both checks: the part before the kill runs as an uninterrupted sweep.)"""
    alone = ran(tmp_path / "alone", population_spec(tmp_path / "alone", 1))
    assert read_table(alone, "trials")["population"].isna().all()

    killed = tmp_path / "killed"
    killed.mkdir()
    spec = population_spec(killed, 4, fault_tolerance={"checkpoint_every_s": 0})
    folder = killed / "results" / spec["name"]
    with Driver("run", str(write_spec(killed, spec)), logs=killed) as driver:
        before = kill_when_rows(driver, folder, "trials", 2)
    assert before["population"].notna().all()
    done = sweep("resume", str(folder))
    assert done.returncode == 0, done.stderr[-3000:]
    check_members(folder)
    assert set(before["trial_id"]) <= set(read_table(folder, "trials")["trial_id"])
    assert_same(folder, alone, "trials", OUTCOME)
    assert_same(folder, alone, "curves", CURVE)
    check_status(folder)
    # a member's row written before the kill was not written again by another run
    raw = raw_rows(folder, "trials")
    assert raw.groupby("trial_id")["final_value"].nunique().max() == 1


def check_members(folder: Path) -> None:
    """Every trial ran as a member, with its own row and curve; each cell's budget ran."""
    trials = read_table(folder, "trials")
    assert trials["population"].notna().all()
    ids = trials["population"] + "-" + trials["member"].astype(str)
    assert (trials["trial_id"] == ids).all()
    assert trials["trial_id"].is_unique
    # members of one population share a cell and a shape; populations were formed
    assert trials.groupby("population")["cell"].nunique().max() == 1
    assert trials.groupby("population").size().max() > 1
    assert trials.groupby("population")["hp.rule"].nunique(dropna=False).max() == 1
    counts = trials.groupby(["cell", "phase"]).size().to_dict()
    assert counts == {(c, p): n for c in CELLS for p, n in (("search", 4), ("confirm", 2))}
    curves = read_table(folder, "curves")
    assert set(curves["trial_id"]) == set(trials["trial_id"])


def check_status(folder: Path) -> None:
    """`sweep status`'s counts (read in-process: the command prints these): every member
    done, none running or pending."""
    spec = read_spec(str(folder))
    trials, curves = read_table(folder, "trials"), read_table(folder, "curves")
    found = counts_from_storage(spec, trials, curves)
    assert {c.cell: (c.done, c.failed, c.running, c.pending) for c in found} == {
        cell: (6, 0, 0, 0) for cell in CELLS
    }


def test_grid_members_write_the_rows_of_lone_trials(tmp_path: Path) -> None:
    """With the grid sampler: each member's row is its lone trial's, trained here in this
    process from the configuration the searcher hands out (`members: 1` runs that trial as
    is), rather than by a second sweep."""
    spec = population_spec(
        tmp_path,
        3,
        name="grid",
        models={"plastic": {"family": "plastic"}},
        search={
            "trials_per_cell": 4,
            "sampler": "grid",
            "seed": 1,
            "space": {"rule": {"choice": ["hebb", "oja"]}, "batch_size": {"choice": [4, 8]}},
        },
        confirm={"seeds": 0},
    )
    folder = ran(tmp_path, spec)
    trials = read_table(folder, "trials")
    assert trials["population"].notna().all() and len(trials) == 4
    # rule and batch size are shape: one of each per population
    assert (trials.groupby("population")[["hp.rule", "hp.batch_size"]].nunique() == 1).all().all()
    resolved = read_spec(str(folder))
    (cell,) = make_cells(resolved)
    study = optuna.load_study(
        study_name=cell.id, storage=journal_storage(local_journal(str(folder)))
    )
    for row in trials.to_dict("records"):
        number, seed, solved = row["optuna_trial"], row["seed"], row["episodes_to_solve"]
        params = study.trials[number].params
        config = trial_config(resolved, cell, "search", number, seed, params)
        *_, last = build_trial(config).reports()
        assert (row["status"], row["final_value"], row["best_value"]) == (
            "completed",
            last.final_value,
            last.best_value,
        )
        assert (None if pd.isna(solved) else solved) == last.episodes_to_solve


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        (
            {"resources": {"cpu": 1, "workers": 2, "members": 4}},
            "resources.members: 4: a population trains in one process",
        ),
        ({"resources": {"members": 0}}, "resources.members: "),
    ],
)
def test_refused_populations_are_one_line_and_write_nothing(
    tmp_path: Path, changes: dict[str, Any], line: str
) -> None:
    spec = population_spec(tmp_path, 4, **changes)
    done = sweep("run", str(write_spec(tmp_path, spec)))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sweep: error: {line}"), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()
