"""Reading sweep folders: part files written by the sweep's own writer, read by analysis."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import analysis
from analysis import NoSweepError, UnreadablePartWarning, load
from analysis.tables import (
    CURVES_COLUMNS,
    RECONSTRUCTIONS_COLUMNS,
    TRIALS_COLUMNS,
    last_per_key,
)
from sweep.results import (
    RECONSTRUCTIONS_SCHEMA,
    SCHEMAS,
    write_part,
)
from tests.support.folders import sweep_folder

ROOT = Path(__file__).resolve().parents[1]


def trial_row(trial_id: str, **values: Any) -> dict[str, Any]:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return {
        "sweep": "s",
        "trial_id": trial_id,
        "phase": "confirm",
        "task": "patterns",
        "difficulty": "tiny",
        "model": "plastic",
        "cell": "tiny/plastic",
        "seed": 1,
        "status": "completed",
        "final_value": 0.1,
        "started_at": now,
        "finished_at": now,
        "schema_version": 1,
        **values,
    }


def curve_row(trial_id: str, step: int, error: float, **values: Any) -> dict[str, Any]:
    return {
        "sweep": "s",
        "trial_id": trial_id,
        "phase": "confirm",
        "difficulty": "tiny",
        "model": "plastic",
        "cell": "tiny/plastic",
        "step": step,
        "episodes": 100 * step,
        "value": error,
        **values,
    }


def make_sweep(root: Path, name: str = "s", difficulties: tuple[str, ...] = ("tiny",)) -> Path:
    return sweep_folder(root, name, {"difficulties": list(difficulties)})


def test_columns_load_with_their_documented_dtypes(tmp_path: Path) -> None:
    folder = make_sweep(tmp_path)
    write_part(folder, "trials", [trial_row("a")])
    write_part(folder, "curves", [curve_row("a", 1, 0.3)])
    results = load(folder)
    for table, documented in (("trials", TRIALS_COLUMNS), ("curves", CURVES_COLUMNS)):
        frame = getattr(results, table)
        assert list(frame.columns) == SCHEMAS[table].names
        for column, dtype in documented.items():
            assert str(frame[column].dtype) == dtype, (table, column)
    row = results.trials.iloc[0]
    assert row["episodes_to_solve"] is pd.NA  # never solved: missing, the column stays Int64
    assert row["started_at"] == pd.Timestamp("2026-01-02 03:04:05", tz="UTC")
    assert results.trials["hp.learn_eta"].dtype == "boolean"


def picture_row(trial_id: str, sample: int, output: float) -> dict[str, Any]:
    return {
        **{k: v for k, v in curve_row(trial_id, 1, 0.0).items() if k in RECONSTRUCTIONS_COLUMNS},
        "seed": 1,
        "sample": sample,
        "rows": 2,
        "cols": 3,
        "target": [0.5, -0.5, 1.0, -1.0, 0.0, 0.25],
        "output": [output] * 6,
        "erased": [True] * 3 + [False] * 3,
        "schema_version": 1,
    }


def test_reconstructions_load_as_arrays_last_row_per_key(tmp_path: Path) -> None:
    folder = make_sweep(tmp_path)
    write_part(folder, "trials", [trial_row("a")])
    write_part(folder, "reconstructions", [picture_row("a", 0, 0.1), picture_row("a", 1, 0.2)])
    write_part(folder, "reconstructions", [picture_row("a", 1, 0.3)])  # re-reported, restored
    pictures = load(folder).reconstructions
    assert list(pictures.columns) == RECONSTRUCTIONS_SCHEMA.names
    for column, dtype in RECONSTRUCTIONS_COLUMNS.items():
        assert str(pictures[column].dtype) == dtype, column
    assert pictures["sample"].tolist() == [0, 1]
    last = pictures.iloc[1]
    assert last["output"].dtype == np.float32 and last["output"][0] == pytest.approx(0.3)
    assert last["erased"].dtype == bool and last["erased"].tolist() == [True] * 3 + [False] * 3
    assert load(make_sweep(tmp_path / "patterns")).reconstructions.empty  # none recorded


def test_last_row_per_key_wins_in_part_file_order(tmp_path: Path) -> None:
    folder = make_sweep(tmp_path)
    write_part(folder, "trials", [trial_row("a", final_value=0.5), trial_row("b")])
    write_part(folder, "trials", [trial_row("a", final_value=0.2)])  # a retried trial
    write_part(folder, "curves", [curve_row("a", 1, 0.4), curve_row("a", 2, 0.3)])
    write_part(folder, "curves", [curve_row("a", 2, 0.25), curve_row("a", 3, 0.2)])  # resumed
    (folder / "curves" / ".part-9-x.parquet.tmp").write_bytes(b"a write in progress")
    results = load(folder)
    trials = results.trials.set_index("trial_id")
    assert len(trials) == 2 and trials.loc["a", "final_value"] == 0.2
    curves = results.curves.set_index("step")
    assert curves["value"].to_dict() == {1: 0.4, 2: 0.25, 3: 0.2}
    assert results.sweeps[0].skipped == ()


def test_a_truncated_part_is_named_in_a_warning_and_skipped(tmp_path: Path) -> None:
    folder = make_sweep(tmp_path)
    good = Path(write_part(folder, "trials", [trial_row("a"), trial_row("b")]))
    data = good.read_bytes()
    bad = folder / "trials" / "part-99999999999999999999-cut.parquet"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.warns(UnreadablePartWarning, match="part-99999999999999999999-cut.parquet"):
        results = load(folder)
    assert sorted(results.trials["trial_id"]) == ["a", "b"]
    assert [Path(p).name for p in results.sweeps[0].skipped] == [bad.name]


def test_a_running_sweep_loads_with_every_documented_column(tmp_path: Path) -> None:
    folder = make_sweep(tmp_path)  # a sweep that has only reported curves so far
    write_part(folder, "curves", [curve_row("a", 1, 0.4)])
    results = load(folder)
    assert results.trials.empty and len(results.curves) == 1
    assert set(TRIALS_COLUMNS) <= set(results.trials.columns)
    assert str(results.trials["final_value"].dtype) == "float64"
    just_started = load(make_sweep(tmp_path / "other"))
    assert just_started.trials.empty and just_started.curves.empty


def test_several_sweeps_load_together_with_their_sweep_column(tmp_path: Path) -> None:
    a = make_sweep(tmp_path, "a", ("tiny", "small"))
    b = make_sweep(tmp_path, "b", ("trivial", "tiny"))
    write_part(a, "trials", [trial_row("x", sweep="a")])
    write_part(b, "trials", [trial_row("x", sweep="b", difficulty="trivial")])  # same trial id
    (tmp_path / "notes").mkdir()  # not a sweep: ignored
    for results in (load(tmp_path), load([a, b]), load([str(b), str(a)])):
        assert sorted(results.trials["sweep"]) == ["a", "b"]
        assert sorted(s.name for s in results.sweeps) == ["a", "b"]
    assert load(tmp_path).difficulties == ("tiny", "small", "trivial")
    assert load(tmp_path).select("b").trials["difficulty"].tolist() == ["trivial"]


def test_two_sweeps_of_one_name_are_an_error(tmp_path: Path) -> None:
    make_sweep(tmp_path / "one", "s")
    make_sweep(tmp_path / "two", "s")
    with pytest.raises(ValueError, match="two folders hold a sweep named 's'"):
        load([tmp_path / "one", tmp_path / "two"])


def test_no_sweep_here(tmp_path: Path) -> None:
    with pytest.raises(NoSweepError, match="no sweep here"):
        load(tmp_path)
    with pytest.raises(NoSweepError, match="no such folder"):
        load(tmp_path / "missing")


def test_a_filesystem_uri_loads_like_a_folder(tmp_path: Path) -> None:
    folder = make_sweep(tmp_path)
    write_part(folder, "trials", [trial_row("a", final_value=0.3)])
    results = load(f"file://{folder}")
    assert results.trials["final_value"].tolist() == [0.3]
    assert results.sweeps[0].journal is None  # Optuna's journal needs a local file
    assert results.sweeps[0].difficulties == ("tiny",)


def test_analysis_imports_neither_ray_nor_torch() -> None:
    """Of the sweep package, analysis reads only the store's contract (pyarrow alone): the
    store, the row records it derives the tables from, and the older schemas' upgrade."""
    code = (
        "import sys, analysis, analysis.plots, analysis.report, analysis.__main__; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'torch'}), "
        "sorted(m for m in sys.modules if m.split('.')[0] == 'sweep'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    contract = ["sweep", "sweep.columns", "sweep.records", "sweep.rows", "sweep.store"]
    assert done.stdout.strip() == f"[] {[*contract, 'sweep.upgrade']}"
    assert analysis.load is load


def test_last_per_key_agrees_with_pandas_keep_last() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    data = pa.table(
        {
            "sweep": rng.choice(["a", "b"], n),
            "trial_id": rng.choice([f"t{i}" for i in range(40)], n),
            "step": rng.integers(0, 30, n),
            "value": np.arange(n),
        }
    )
    keys = ["sweep", "trial_id", "step"]
    expected = data.to_pandas().drop_duplicates(keys, keep="last")
    found = last_per_key(data, keys).to_pandas()
    assert found["value"].tolist() == expected["value"].tolist()
