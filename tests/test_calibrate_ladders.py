"""The ladder calibration's monotonicity check (benchmarks/calibrate_ladders.py), on small
hand-built tables, and its summary of real outcomes."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def cal() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))  # the script imports machine.py beside it
    try:
        return importlib.import_module("calibrate_ladders")
    finally:
        sys.path.remove(str(BENCHMARKS))


LEVELS = ["easy", "mid", "hard"]


def table(cal: ModuleType, cells: dict[str, tuple[float, float, int]], seeds: int = 5) -> dict:
    """level -> (median x threshold, IQR, seeds solved) for one family, "f"."""
    return {(level, "f"): cal.Cell(m, iqr, s, seeds) for level, (m, iqr, s) in cells.items()}


# One family's ladder (level -> (median x threshold, IQR, seeds solved)) and what the check
# says of it.
LADDERS = {
    "a monotone ladder passes": (
        {"easy": (0.2, 0.1, 5), "mid": (0.9, 0.3, 3), "hard": (6.0, 1.0, 0)},
        [],
    ),
    "a harder level solved by more seeds is a violation": (
        {"easy": (1.5, 0.2, 0), "mid": (1.4, 0.3, 3), "hard": (6.0, 1.0, 0)},
        ["f: mid solved by 3/5 seeds, more than easier easy (0/5)"],
    ),
    "one seed more is noise": (
        {"easy": (1.5, 0.2, 1), "mid": (1.6, 0.3, 2), "hard": (6.0, 1.0, 0)},
        [],
    ),
    "a lower median beyond the spread is a violation": (
        {"easy": (1.5, 0.2, 0), "mid": (3.0, 0.4, 0), "hard": (1.2, 0.6, 0)},
        ["f: hard median 1.2 x threshold, below easier mid (3) by more than 0.6"],
    ),
    "a lower median within the spread is noise": (
        {"easy": (2.0, 1.5, 0), "mid": (1.0, 0.2, 0), "hard": (3.0, 0, 0)},
        [],
    ),
}


@pytest.mark.parametrize(("cells", "expected"), LADDERS.values(), ids=list(LADDERS))
def test_one_family_ladder(
    cal: ModuleType, cells: dict[str, tuple[float, float, int]], expected: list[str]
) -> None:
    assert cal.violations(table(cal, cells), LEVELS, ["f"]) == expected


def test_a_lower_median_within_the_floor_is_noise(cal: ModuleType) -> None:
    within_floor = table(cal, {"easy": (0.4, 0, 4), "mid": (0.0, 0, 4), "hard": (3.0, 0, 0)})
    assert cal.violations(within_floor, LEVELS, ["f"]) == []
    assert cal.violations(within_floor, LEVELS, ["f"], floor=0.1) != []


def test_only_neighbouring_levels_a_family_ran_are_compared(cal: ModuleType) -> None:
    t = {
        **table(cal, {"easy": (0.2, 0.1, 5), "hard": (5.0, 0.1, 0)}),
        ("easy", "g"): cal.Cell(9.0, 0.1, 0, 5),
        ("mid", "g"): cal.Cell(1.0, 0.1, 5, 5),
    }
    assert cal.violations(t, LEVELS, ["f", "g"]) == [
        "g: mid solved by 5/5 seeds, more than easier easy (0/5)",
        "g: mid median 1 x threshold, below easier easy (9) by more than 0.5",
    ]


def test_cells_summarise_real_outcomes_in_threshold_units(cal: ModuleType) -> None:
    """Three seeds of a real (short) run each: the table is in units of the threshold."""
    runs = [cal.Run("patterns", "trivial", "gru", seed, 32, 16, 32) for seed in range(3)]
    outcomes = [cal.train_one(run) for run in runs]
    cells = cal.cells(outcomes)
    cell = cells[("trivial", "gru")]
    units = sorted(o.final_error / o.threshold for o in outcomes)
    assert outcomes[0].threshold == pytest.approx(1 / 8)
    assert cell.median == pytest.approx(units[1]) and cell.seeds == 3
    assert cell.iqr == pytest.approx((units[1] + units[2]) / 2 - (units[0] + units[1]) / 2)
    assert cell.solved == sum(o.solved for o in outcomes)
    # solved as the analysis counts a seed: its final error at or under the threshold
    assert [o.solved for o in outcomes] == [o.final_error <= o.threshold for o in outcomes]
    assert "| `trivial` | " in cal.markdown(cells, ["trivial"], ["gru"])
