"""Analysis speed: load, summarize and draw every figure of a synthetic sweep of 1,000,000
curve rows. Target: under 10 s in all on 2 cores.

The synthetic sweep folder has what a real one has: spec.yaml, trials and curves part files
with the exact columns of `sweep.results.TRIALS_SCHEMA` / `CURVES_SCHEMA` (imported, so they
cannot drift), one extra curves part that re-reports steps (as a resumed trial does; readers
drop the duplicates), and an Optuna journal with one study per cell.

    .venv/bin/python benchmarks/analysis_benchmark.py [--rows N] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from machine import cpu_model  # benchmarks/machine.py, beside this script
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.storages.journal import JournalFileBackend

from analysis import load
from analysis.plots import figures, save
from analysis.summary import summarize
from sweep.results import CURVES_SCHEMA, TRIALS_SCHEMA

DIFFICULTIES = ["trivial", "tiny", "small", "paper-simplified", "medium"]
MODELS = {"plastic": 0.01, "rnn": 0.2, "lstm": 0.12, "gru": 0.1}  # model -> typical final error
SEARCH, CONFIRM = 40, 10  # trials per cell: 20 cells x 50 trials
PARTS = 10  # curves part files (plus one of re-reported steps)


def machine() -> str:
    """CPU model and core count, for the record."""
    return cpu_model()


def _trial_rows(rng: np.random.Generator, steps: int) -> list[dict[str, Any]]:
    rows = []
    now = datetime.now(UTC)
    for d, difficulty in enumerate(DIFFICULTIES):
        for model, base in MODELS.items():
            cell = f"{difficulty}/{model}"
            plastic = model == "plastic"
            for k in range(SEARCH + CONFIRM):
                phase = "search" if k < SEARCH else "confirm"
                final = float(np.clip(base * (1 + 0.6 * d) + rng.normal(0, 0.01), 0, 0.5))
                solved = final <= 0.02
                rows.append(
                    {
                        "sweep": "bench",
                        "trial_id": f"{d}{model[:2]}{k:05d}",
                        "phase": phase,
                        "task": "patterns",
                        "difficulty": difficulty,
                        "model": model,
                        "family": model,
                        "cell": cell,
                        "seed": k,
                        "optuna_trial": k if phase == "search" else 0,
                        "hp.lr": float(10 ** rng.uniform(-4, -2)),
                        "hp.eta": float(10 ** rng.uniform(-3, -0.3)) if plastic else None,
                        "hp.episodes": steps * 10,
                        "task.solved_threshold": 0.02,
                        "metric": "bit_error",
                        "chance": 0.5,
                        "solved_threshold": 0.02,
                        "git_commit": "0" * 40,
                        "schema_version": 1,
                        "started_at": now,
                        "finished_at": now,
                        "node": "node-a",
                        "device": "cpu",
                        "status": "diverged" if rng.random() < 0.01 else "completed",
                        "final_value": final,
                        "best_value": final,
                        "episodes_to_solve": int(rng.integers(1, steps)) * 10 if solved else None,
                        "episodes": steps * 10,
                        "num_parameters": 5203 * (1 + d),
                        "train_seconds": 60.0,
                        "episodes_per_second": steps / 6,
                    }
                )
    return rows


def _curves(trials: pa.Table, steps: int, rng: np.random.Generator) -> pa.Table:
    """`steps` reports per trial: error decaying from chance to the trial's final error."""
    n = trials.num_rows

    def repeat(column: str) -> np.ndarray:
        return np.repeat(trials[column].to_numpy(zero_copy_only=False), steps)

    step = np.tile(np.arange(1, steps + 1), n)
    final = repeat("final_value")
    error = final + (0.5 - final) * np.exp(-step / (steps / 5)) + rng.normal(0, 0.005, n * steps)
    columns = {c: repeat(c) for c in ("sweep", "trial_id", "phase", "difficulty", "model", "cell")}
    columns |= {
        "seed": repeat("seed"),
        "step": step,
        "episodes": step * 10,
        "wall_s": step * 0.06,
        "loss": error * 20,
        "value": error,
        "episodes_per_second": np.full(n * steps, 160.0),
        "node": np.full(n * steps, "node-a"),
        "schema_version": np.ones(n * steps, dtype=np.int32),
    }
    return pa.table(columns, schema=CURVES_SCHEMA)


def _journal(folder: Path, rng: np.random.Generator) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "journal.log")))
    for difficulty in DIFFICULTIES:
        for model in MODELS:
            study = optuna.create_study(study_name=f"{difficulty}/{model}", storage=storage)
            space: dict[str, optuna.distributions.BaseDistribution] = {
                "lr": FloatDistribution(1e-4, 1e-2, log=True)
            }
            if model == "plastic":
                space |= {
                    "eta": FloatDistribution(1e-3, 0.5, log=True),
                    "rule": CategoricalDistribution(["hebb", "oja"]),
                }
            trials = []
            for _ in range(SEARCH):
                lr = float(10 ** rng.uniform(-4, -2))  # the error depends on lr only
                drawn = {"lr": lr, "eta": float(10 ** rng.uniform(-3, -0.3)), "rule": "hebb"}
                params = {p: drawn[p] for p in space}
                value = abs(np.log10(lr) + 3) * 0.1 + rng.normal(0, 0.01)
                trial = optuna.trial.create_trial(
                    params=params, distributions=space, value=float(value)
                )
                trials.append(trial)
            study.add_trials(trials)


def make_sweep(root: Path, rows: int, seed: int = 0) -> Path:
    """A synthetic sweep folder with `rows` curve rows (after de-duplication)."""
    rng = np.random.default_rng(seed)
    folder = root / "bench"
    steps = rows // (len(DIFFICULTIES) * len(MODELS) * (SEARCH + CONFIRM))
    spec = {
        "name": "bench",
        "task": "patterns",
        "difficulties": DIFFICULTIES,
        "models": {m: {"family": m} for m in MODELS},
        "search": {"space": {"lr": {}, "eta": {}, "rule": {}}},
    }
    (folder / "optuna").mkdir(parents=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    trials = pa.Table.from_pylist(_trial_rows(rng, steps), schema=TRIALS_SCHEMA)
    (folder / "trials").mkdir()
    for i, part in enumerate(np.array_split(np.arange(trials.num_rows), 4)):
        pq.write_table(trials.take(part), folder / "trials" / f"part-{i:020d}-trials.parquet")
    curves = _curves(trials, steps, rng)
    (folder / "curves").mkdir()
    for i, part in enumerate(np.array_split(np.arange(curves.num_rows), PARTS)):
        pq.write_table(curves.take(part), folder / "curves" / f"part-{i:020d}-curves.parquet")
    again = curves.take(rng.choice(curves.num_rows, curves.num_rows // 100, replace=False))
    pq.write_table(again, folder / "curves" / f"part-{PARTS:020d}-resumed.parquet")
    _journal(folder / "optuna", rng)
    return folder


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run_once(folder: Path, out: Path) -> dict[str, float]:
    """Seconds to load, to summarize, and to draw and write every figure (PNG and SVG)."""
    load_s, results = _timed(lambda: load(folder))
    summary_s, summary = _timed(lambda: summarize(results))

    def draw() -> None:
        for name, fig in figures(summary).items():
            save(fig, out, name)

    figures_s, _ = _timed(draw)
    assert len(results.curves) == len(results.curves.drop_duplicates(["trial_id", "step"]))
    return {
        "load_s": load_s,
        "summaries_s": summary_s,
        "figures_s": figures_s,
        "total_s": load_s + summary_s + figures_s,
        "curve_rows": float(len(results.curves)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="curve rows")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the fastest is reported")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_sweep(Path(tmp), args.rows)
        runs = [run_once(folder, Path(tmp) / "figures") for _ in range(args.repeat)]
    best = min(runs, key=lambda r: r["total_s"])
    print(f"analysis benchmark: {int(best['curve_rows']):,} curve rows, {machine()}")
    print(f"{'stage':<12}{'seconds (fastest of ' + str(args.repeat) + ')':>28}")
    for stage in ("load_s", "summaries_s", "figures_s", "total_s"):
        print(f"{stage[:-2]:<12}{best[stage]:>28.2f}")
    if args.json:
        record = {"machine": machine(), "date": datetime.now(UTC).isoformat(), "best": best}
        args.json.write_text(json.dumps({**record, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
