"""The metric's direction: the only comparisons writer and reader make between metric values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from sweep.store import GOALS, best, better, reached

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(finite, finite)
def test_better_is_strict_and_mirrored_between_goals(a: float, b: float) -> None:
    assert better(a, b, "min") == (a < b) and better(a, b, "max") == (a > b)
    assert not (better(a, b, "min") and better(b, a, "min"))
    assert better(a, b, "min") == better(-a, -b, "max")


@given(st.lists(finite, min_size=1), st.sampled_from(GOALS))
def test_best_is_never_beaten(values: list[float], goal: str) -> None:
    top = best([*values, math.nan], goal)
    assert top in values
    assert not any(better(v, top, goal) for v in values)


def test_reached_counts_the_threshold_itself_and_never_nan() -> None:
    assert reached(0.02, 0.02, "min") and not reached(0.021, 0.02, "min")
    assert reached(8.0, 8.0, "max") and not reached(7.9, 8.0, "max")
    for goal in GOALS:
        assert not reached(math.nan, 0.5, goal)
    assert math.isnan(best([math.nan], "max"))


def test_comparisons_work_on_columns() -> None:
    values = pd.Series([0.1, 0.5, np.nan])
    assert reached(values, 0.2, "min").tolist() == [True, False, False]
    assert reached(values, 0.2, "max").tolist() == [False, True, False]
