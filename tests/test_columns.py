"""The records are the schema: each table's Arrow schema, its rows and the README's column
table come from the row records' fields; a learner's settings appear only in the rows of
its tasks; sweeps written with schema 1 and 2 (stored folders, written by the code of their
time) load with today's column names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ray.tune.experiment import Trial

import analysis
from sweep import columns
from sweep.learners.a2c import A2CSettings
from sweep.plan import make_cells, trial_config
from sweep.records import TaskDescriptor, TrialConfig, TrialResult
from sweep.results import TRIALS_SCHEMA, ResultsWriter, config_columns, read_table
from sweep.rows import ROWS, SCHEMA_VERSION
from sweep.spec import parse_spec
from sweep.store import CURVES_SCHEMA, RECONSTRUCTIONS_SCHEMA, TRIALS_FIXED
from sweep.upgrade import RENAMED
from tests.support.sweeps import tiny_spec

README = Path(__file__).resolve().parents[1] / "README.md"
STORED = Path(__file__).resolve().parent / "data" / "sweeps"


def test_the_readme_column_table_is_the_schema() -> None:
    """Regenerate with `python -m sweep.columns README.md`."""
    assert columns.readme_table(README.read_text()) == columns.markdown(ROWS)


def test_the_readme_table_lists_every_column_of_every_schema() -> None:
    table = columns.readme_table(README.read_text())
    listed = {line.split("`")[1] for line in table.splitlines()[2:]}
    schemas = (TRIALS_SCHEMA, CURVES_SCHEMA, RECONSTRUCTIONS_SCHEMA)
    for name in {n for schema in schemas for n in schema.names}:
        prefix = name.split(".")[0] + ".*"
        assert name in listed or prefix in listed, name
    assert all(c.doc for record in ROWS.values() for c in columns.columns_of(record))


def test_schemas_carry_their_version() -> None:
    for schema in (TRIALS_SCHEMA, CURVES_SCHEMA, RECONSTRUCTIONS_SCHEMA):
        assert schema.metadata == {b"schema_version": str(SCHEMA_VERSION).encode()}
    assert max(RENAMED) == SCHEMA_VERSION


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The trials row the writer builds for a finished trial of a supervised and of a
    reward task (their configs resolved by the plan, as the searcher hands them out)."""
    root = tmp_path_factory.mktemp("rows")
    found = {}
    for task, level in (("patterns", "trivial"), ("cue_reward", "tiny")):
        raw = tiny_spec(root, task=task, difficulties=[level])
        raw["models"] = {"rnn": {"family": "rnn", "hidden": 4}}
        raw["search"] = {"trials_per_cell": 1, "seed": 0, "space": {}}
        spec = parse_spec(raw)
        config = trial_config(spec, make_cells(spec)[0], "search", 0, 1, {})
        trial = Trial("sweep_trainable", config=config.to_dict(), stub=True)
        last = TrialResult(
            step=2,
            episodes=200,
            loss=0.1,
            value=0.3,
            wall_s=2.0,
            episodes_per_second=100.0,
            best_value=0.25,
            episodes_to_solve=None,
            num_parameters=7,
            done=True,
            final_value=0.3,
            started_at="2026-01-01T00:00:00+00:00",
        )
        trial.run_metadata.last_result = last.to_dict()
        found[task] = ResultsWriter(spec, str(root / task))._trial_row(trial, failed=False)
    return found


def test_a_trials_row_has_the_schema_columns(rows: dict[str, dict]) -> None:
    for row in rows.values():
        fixed = {k for k in row if not k.startswith(("hp.", "task."))}
        assert fixed == set(TRIALS_FIXED)
        assert set(row) <= set(TRIALS_SCHEMA.names)
        assert (row["final_value"], row["best_value"], row["train_seconds"]) == (0.3, 0.25, 2.0)
        assert row["schema_version"] == SCHEMA_VERSION and row["version.python"]
        assert row["started_at"].year == 2026


def test_a_learner_s_settings_appear_only_in_its_rows(rows: dict[str, dict]) -> None:
    a2c = ("hp.gamma", "hp.entropy_coef", "hp.value_coef", "hp.entropy")
    assert not any(k in rows["patterns"] for k in a2c)
    assert rows["cue_reward"]["hp.entropy"] == "simpson"  # the task's reference
    assert rows["cue_reward"]["goal"] == "max" and rows["patterns"]["goal"] == "min"
    assert set(a2c) <= set(config_columns())


@pytest.mark.parametrize("version", [1, 2])
def test_a_stored_older_sweep_loads_with_today_s_names(version: int, tmp_path: Path) -> None:
    """tests/data/sweeps/schema<N>: a real sweep (patterns, 1 search trial, 1 confirmation
    seed) written by the code of schema N; its part files are read unchanged."""
    folder = STORED / f"schema{version}"
    raw = {
        t: pq.read_table(next((folder / t).glob("part-*.parquet"))).to_pandas()
        for t in ("trials", "curves")
    }
    assert {"final_error", "best_error"} <= set(raw["trials"]) and "error" in raw["curves"]
    results = analysis.load(folder)
    trials, curves = results.trials, results.curves
    assert "final_error" not in trials and "best_error" not in trials
    assert trials["final_value"].tolist() == raw["trials"]["final_error"].tolist()
    assert trials["best_value"].tolist() == raw["trials"]["best_error"].tolist()
    assert curves["value"].tolist() == raw["curves"]["error"].tolist()
    assert set(trials["goal"]) == {"min"}
    assert set(trials["schema_version"]) == {version}  # what wrote each row
    # the writer's own reader (compaction, `sweep status`) reads it the same way
    copy = tmp_path / "sweep"
    shutil.copytree(folder, copy)
    written = read_table(copy, "trials")
    assert written["final_value"].tolist() == raw["trials"]["final_error"].tolist()
    assert read_table(copy, "curves")["value"].tolist() == raw["curves"]["error"].tolist()


def test_a_trial_config_of_schema_2_still_builds_its_trial() -> None:
    """A resumed older sweep: Tune's saved config holds the descriptor's fields flat and a
    reward task's A2C settings in `train`."""
    from sweep.trainable import build_trial

    old = {
        "cell": "tiny/rnn",
        "difficulty": "tiny",
        "model": "rnn",
        "family": "rnn",
        "phase": "search",
        "number": 0,
        "seed": 3,
        "task": "cue_reward",
        "level": "tiny",
        "overrides": {"steps": 6},
        "task_settings": {},
        "metric": "reward",
        "goal": "max",
        "chance": 0.1,
        "solved_threshold": 2.0,
        "references": {"oracle": 3.0},
        "hp": {},
        "model_params": {"hidden": 4},
        "train": {"episodes": 8, "batch_size": 4, "gamma": 0.7, "entropy": "simpson"},
    }
    config = TrialConfig.from_dict(old)
    assert config.descriptor == TaskDescriptor("reward", "max", 0.1, 2.0, {"oracle": 3.0})
    trial = build_trial(config)
    assert trial.learner.settings == A2CSettings(gamma=0.7, entropy="simpson")
    assert trial.train.episodes == 8 and trial.train.seed == 3
