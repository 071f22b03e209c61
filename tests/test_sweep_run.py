"""Real sweeps: real Ray (embedded, and a two-node cluster), real Optuna, real Parquet."""

from __future__ import annotations

import itertools
import json
import pickle
import platform
import re
import subprocess
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml

from sweep.models import hidden_for_parameters, num_parameters
from sweep.results import CURVES_SCHEMA, TRIALS_SCHEMA
from sweep.search import journal_storage
from sweep.store import SCHEMA_VERSION, VERSIONED
from tests.support.cli import sweep_here
from tests.support.driver import (
    Driver,
    assert_not_run_again,
    assert_study_is_the_rows,
    kill_when_rows,
)
from tests.support.sweeps import (
    KILLED_EVALUATIONS,
    KILLED_TRIALS,
    LocalCluster,
    asha_search,
    killed_spec,
    one_cell_spec,
    status_rows,
    sweep,
    tiny_spec,
    write_spec,
)

pytestmark = pytest.mark.slow


def _studies(folder: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = journal_storage(folder / "optuna" / "journal.log")
    return {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).trials
        for s in optuna.get_all_study_summaries(storage)
    }


@pytest.fixture
def tiny(tiny_sweep: tuple[Path, subprocess.CompletedProcess[str]]) -> tuple[Path, Any]:
    return tiny_sweep


def test_tiny_sweep_rows_and_columns(tiny: tuple[Path, Any]) -> None:
    folder, done = tiny
    assert done.returncode == 0, done.stderr[-3000:]
    trials = pd.read_parquet(folder / "trials")  # plain pandas reads the tables
    curves = pd.read_parquet(folder / "curves")
    # 2 difficulties x 3 models x (2 search + 2 confirm); 2 evaluations per trial
    assert len(trials) == 24 and trials["trial_id"].is_unique
    assert len(curves) == 48
    assert list(trials.columns) == TRIALS_SCHEMA.names
    assert list(curves.columns) == CURVES_SCHEMA.names
    assert (trials.groupby(["cell", "phase"]).size() == 2).all()
    assert set(trials["status"]) == {"completed"}
    assert sorted(curves.groupby("trial_id")["step"].apply(list).map(tuple).unique()) == [(1, 2)]
    provenance = ["git_commit", "node", "device", "started_at", "finished_at", "seed", "platform"]
    for column in provenance + [f"version.{p}" for p in VERSIONED]:
        assert trials[column].notna().all(), column
    assert (trials["version.torch"] == version("torch")).all()
    assert (trials["version.python"] == platform.python_version()).all()
    assert (trials["schema_version"] == SCHEMA_VERSION).all() and (trials["sweep"] == "tiny").all()
    assert (trials["goal"] == "min").all()
    assert (trials["references"].map(json.loads) == {"copy the cue": 0.25}).all()
    assert (trials["episodes"] == 200).all()
    assert (trials["finished_at"] >= trials["started_at"]).all()
    assert (folder / "spec.yaml").exists()
    assert not list(folder.rglob(".*.tmp"))  # no temporary part left behind


def test_confirmation_reruns_each_cells_best_on_shared_fresh_seeds(tiny: tuple[Path, Any]) -> None:
    folder, _ = tiny
    trials = pd.read_parquet(folder / "trials")
    search, confirm = trials[trials["phase"] == "search"], trials[trials["phase"] == "confirm"]
    assert not set(search["seed"]) & set(confirm["seed"])
    assert confirm.groupby("cell")["seed"].apply(frozenset).nunique() == 1  # paired seeds
    studies = _studies(folder)
    for cell, rows in confirm.groupby("cell"):
        best = min(
            (t for t in studies[str(cell)]),
            key=lambda t: float("inf") if t.value is None else t.value,
        )
        assert set(rows["optuna_trial"]) == {best.number}
        assert rows["hp.lr"].tolist() == pytest.approx([best.params["lr"]] * 2)
        winner = search[(search["cell"] == cell) & (search["optuna_trial"] == best.number)]
        assert winner["final_value"].item() == pytest.approx(best.value)


def test_one_study_per_cell_with_the_same_budget(tiny: tuple[Path, Any]) -> None:
    folder, _ = tiny
    studies = _studies(folder)
    assert sorted(studies) == sorted(
        f"{d}/{m}" for d in ("trivial", "tiny") for m in ("plastic", "rnn", "lstm")
    )
    storage = journal_storage(folder / "optuna" / "journal.log")
    for summary in optuna.get_all_study_summaries(storage):  # a lower-is-better task
        assert summary.direction == optuna.study.StudyDirection.MINIMIZE
        assert summary.user_attrs["metric"] == "bit_error" and summary.user_attrs["goal"] == "min"
    for cell, trials in studies.items():
        assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
        expected = {"lr", "eta", "rule"} if cell.endswith("plastic") else {"lr"}
        assert all(set(t.params) == expected for t in trials), cell  # only what it has


def test_parameter_matched_rnn(tiny: tuple[Path, Any]) -> None:
    folder, _ = tiny
    trials = pd.read_parquet(folder / "trials")
    for difficulty, bits in (("trivial", 8), ("tiny", 16)):
        rnn = trials[(trials["difficulty"] == difficulty) & (trials["model"] == "rnn")]
        target = num_parameters("plastic", bits + 1, bits, {})
        assert set(rnn["hp.hidden"]) == {hidden_for_parameters("rnn", target, bits + 1, bits)}


def test_status_from_storage_and_no_second_run_into_the_same_folder(
    tiny: tuple[Path, Any],
) -> None:
    folder, _ = tiny
    done = sweep_here("status", str(folder))
    assert done.returncode == 0, done.stderr
    rows = status_rows(done.stdout)
    assert len(rows) == 6
    trials = pd.read_parquet(folder / "trials")
    for cell, row in rows.items():
        assert row[:4] == ["4", "0", "0", "0"], cell  # done, failed, running, pending
        search = trials[(trials["cell"] == cell) & (trials["phase"] == "search")]
        confirm = trials[(trials["cell"] == cell) & (trials["phase"] == "confirm")]
        assert float(row[4]) == pytest.approx(search["best_value"].min(), abs=5e-4)
        assert float(row[5]) == pytest.approx(confirm["final_value"].median(), abs=5e-4)
        solved = (confirm["final_value"] <= confirm["solved_threshold"]).sum()
        assert row[6] == f"{solved}/2", cell
    # the same spec again (a requeued job): nothing to run, the cells printed, exit 0
    spec_file = folder.parent.parent / "tiny.yaml"
    before = sorted(p.name for p in folder.rglob("*") if p.is_file())
    again = sweep_here("run", str(spec_file))
    assert again.returncode == 0, again.stderr
    assert "nothing left to run" in again.stdout and status_rows(again.stdout) == rows
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == before
    # another spec under the same name: one line per changed key, exit 2, nothing written
    changed = yaml.safe_load(spec_file.read_text())
    changed["train"]["episodes"] = 400
    changed["search"]["space"]["lr"] = {"loguniform": [1.0e-3, 1.0e-2]}
    other = folder.parent.parent / "changed" / "tiny.yaml"
    other.parent.mkdir()
    other.write_text(yaml.safe_dump(changed))
    refused = sweep_here("run", str(other))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("sweep: error: ") and "search.space.lr.loguniform: " in lines[0]
    assert "train.episodes: 200 -> 400" in lines[1] and "new `name`" in lines[1]
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == before


def test_run_again_after_the_driver_is_killed_continues_it(tmp_path: Path) -> None:
    spec = killed_spec(tmp_path)
    folder, tap = tmp_path / "results" / "killed", tmp_path / "raw"
    with Driver("run", str(write_spec(tmp_path, spec)), logs=tmp_path, tap=tap) as driver:
        before = kill_when_rows(driver, folder, "trials", 3)
    assert 3 <= len(before) < KILLED_TRIALS
    # A driver killed while uploading Ray Tune's state file by file can leave the searcher's
    # file newer than Tune's: here it says every cell's first confirmation seed went to a
    # trial that Tune never knew. The searcher goes by Tune's trials, so the seeds still run.
    [saved] = sorted((folder / "tune").glob("searcher-state-*.pkl"))[-1:]
    cells = [f"{d}/{m}" for d in spec["difficulties"] for m in spec["models"]]
    lost = {f"lost{i}": (cell, "confirm", 0) for i, cell in enumerate(cells)}
    saved.write_bytes(pickle.dumps(pickle.loads(saved.read_bytes()) | lost))

    # the same command again, as a requeued cluster job runs it: the sweep continues
    done = sweep("run", str(tmp_path / "killed.yaml"), tap=tap)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "continuing the sweep there (same spec)" in done.stdout
    trials = pd.read_parquet(folder / "trials")
    assert len(trials) == KILLED_TRIALS
    assert set(trials["status"]) == {"completed"}
    assert_not_run_again(before, tap, trials)  # counted before compaction
    curves = pd.read_parquet(folder / "curves")
    assert (
        curves.groupby("trial_id")["step"].apply(sorted) == [list(range(1, 7))] * KILLED_TRIALS
    ).all()
    for cell, study in _studies(folder).items():
        assert len(study) == 3, cell
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study), cell
        # every evaluation, those reported before the kill and after the resume, once
        for t in study:
            assert sorted(t.intermediate_values) == KILLED_EVALUATIONS, (cell, t.number)


@pytest.fixture
def two_nodes() -> Iterator[LocalCluster]:
    """A head and a second node on this machine, 1 CPU each."""
    cluster = LocalCluster()
    try:
        cluster.start_head()
        cluster.start(f"--address={cluster.address}")
        cluster.wait_for(alive=2)
        # `ray start --head` records the head's address for a plain ray.init(), seconds after
        # the head listens
        deadline = time.monotonic() + 60
        while not cluster.address_recorded() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert cluster.address_recorded()
        yield cluster
    finally:
        cluster.stop()
    assert not cluster.address_recorded(), "a dead head's address left for ray.init() to join"


@pytest.mark.xdist_group("cluster")  # Ray heads on this machine: one at a time
def test_trials_run_on_both_nodes_of_a_cluster(two_nodes: LocalCluster, tmp_path: Path) -> None:
    """3 cells x (1 search trial + 1 confirmation seed), two at a time, each trial several
    seconds: long enough that the second node's trial actor is up before the head's first
    trial ends, on a loaded machine too (a short trial can leave every trial to the head's
    reused actor: 2,000 episodes did, once, under the whole suite)."""
    spec = tiny_spec(
        tmp_path,
        name="cluster",
        difficulties=["trivial"],
        train={"episodes": 4000, "batch_size": 8, "eval_every": 2000, "eval_episodes": 16},
        search={**tiny_spec(tmp_path)["search"], "trials_per_cell": 1},
        confirm={"seeds": 1},
    )
    done = sweep(
        "run",
        str(write_spec(tmp_path, spec)),
        "--address",
        two_nodes.address,
        env=two_nodes.env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "results" / "cluster" / "trials")
    assert len(trials) == 3 * 2
    assert trials["node"].nunique() == 2


def test_fractional_gpus_pack_two_trials_on_one_gpu(tmp_path: Path) -> None:
    """Logical GPUs declared on a CPU host: gpu 0.5 runs two trials on GPU 0 at once."""
    spec = one_cell_spec(
        tmp_path,
        "packed",
        train={"episodes": 1600, "batch_size": 8, "eval_every": 400, "eval_episodes": 16},
        search={"trials_per_cell": 4, "sampler": "random", "space": {}},
        resources={"cpu": 1, "gpu": 0.5},
        max_concurrent=None,  # the default: as many as the resources allow
    )
    done = sweep("run", str(write_spec(tmp_path, spec)), "--num-gpus", "1", "--num-cpus", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "results" / "packed" / "trials")
    assert len(trials) == 4 and set(trials["gpu_ids"]) == {"0"}
    spans = sorted(zip(trials["started_at"], trials["finished_at"], strict=True))
    overlaps = sum(a_end > b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    assert overlaps >= 1


def test_storage_that_cannot_be_written_is_an_error_before_any_trial(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    spec = tiny_spec(tmp_path, storage=str(tmp_path / "a-file" / "results"))
    done = sweep("run", str(write_spec(tmp_path, spec)), timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("sweep: error: ") and "a-file" in done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_a_trial_no_node_can_hold_is_an_error_not_a_hang(tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path, resources={"cpu": 64, "gpu": 0})
    done = sweep("run", str(write_spec(tmp_path, spec)), "--num-cpus", "2", timeout=120)
    assert done.returncode == 2
    assert "a trial asks for 64 CPU / 0 GPU but no node has that much" in done.stderr
    assert not (tmp_path / "results").exists()


def test_early_stopping_stops_poor_trials_and_says_so(tmp_path: Path) -> None:
    spec = one_cell_spec(
        tmp_path,
        "asha",
        train={"episodes": 1600, "batch_size": 16, "eval_every": 200, "eval_episodes": 32},
        **asha_search(8, 1.0e-2, 200),
    )
    done = sweep("run", str(write_spec(tmp_path, spec)))
    assert done.returncode == 0, done.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "results" / "asha" / "trials")
    stopped = trials[trials["status"] == "stopped_early"]
    completed = trials[trials["status"] == "completed"]
    assert len(stopped) >= 1 and len(completed) >= 1 and len(trials) == 8
    assert (stopped["episodes"] < 1600).all() and (completed["episodes"] == 1600).all()
    assert stopped["final_value"].notna().all() and stopped["best_value"].notna().all()
    # stopped trials were worse at the rung where they stopped than the best survivor
    assert stopped["final_value"].min() >= completed["best_value"].min()
    # Optuna knows: stopped trials are PRUNED with their evaluations as intermediate values
    curves = pd.read_parquet(tmp_path / "results" / "asha" / "curves")
    [study] = _studies(tmp_path / "results" / "asha").values()
    assert_study_is_the_rows(study, trials, curves)


def test_a_run_reads_clean(tiny: tuple[Path, Any]) -> None:
    """No notice meant for cluster users, the cells table once, then the time it took and
    the command to run next."""
    folder, done = tiny
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Token authentication" not in done.stderr and "RAY_AUTH_MODE" not in done.stderr
    assert (done.stdout + done.stderr).count("sweep tiny") == 1, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    report = f"python -m analysis report {folder.resolve()}"
    assert re.fullmatch(rf"finished in \d+ min \d+ s; next: {re.escape(report)}", last), last
