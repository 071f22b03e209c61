"""Trials and reconstruction rows built by hand, with the columns the analysis reads, for
summaries with known answers."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from analysis.tables import RECONSTRUCTIONS_COLUMNS

_ids = itertools.count()


def trial(difficulty: str, model: str, final_value: float, **values: Any) -> dict[str, Any]:
    """One trials row with the columns summaries read; a confirmation trial by default."""
    return {
        "sweep": "s",
        "trial_id": f"t{next(_ids)}",
        "phase": "confirm",
        "task": "patterns",
        "difficulty": difficulty,
        "model": model,
        "cell": f"{difficulty}/{model}",
        "seed": 0,
        "optuna_trial": 0,
        "status": "completed",
        "final_value": final_value,
        "episodes_to_solve": None,
        "episodes": 1000,
        "num_parameters": 100,
        "metric": "bit_error",
        "chance": 0.5,
        "solved_threshold": 0.02,
        "hp.lr": 1e-3,
        **values,
    }


def seeds(difficulty: str, model: str, errors: Iterable[float], **values: Any) -> list[dict]:
    return [trial(difficulty, model, e, seed=i, **values) for i, e in enumerate(errors)]


def pictures(trials: Iterable[dict[str, Any]], samples: int = 2, side: int = 2) -> pd.DataFrame:
    """Reconstruction rows of each trial: the same images per difficulty; each trial's
    output is its seed plus the sample number, everywhere (easy to tell apart)."""
    rows = []
    for t in trials:
        for sample in range(samples):
            target = np.linspace(-1, 1, side * side, dtype=np.float32) * (sample + 1) / samples
            erased = np.arange(side * side) < side * side // 2  # the top half
            rows.append(
                {k: t[k] for k in ("sweep", "trial_id", "phase", "difficulty", "model", "cell")}
                | {"seed": t["seed"], "sample": sample, "rows": side, "cols": side}
                | {"target": target, "erased": erased}
                | {"output": np.full(side * side, t["seed"] + sample, dtype=np.float32)}
            )
    return pd.DataFrame(rows, columns=[c for c in RECONSTRUCTIONS_COLUMNS if c != "schema_version"])


LOW = np.linspace(0.01, 0.10, 10)  # ten seeds, clearly better than
HIGH = np.linspace(0.40, 0.49, 10)
