"""The live view's time estimate."""

from __future__ import annotations

from sweep.progress import CellCounts, eta


def test_eta_extrapolates_from_the_finished_trials() -> None:
    counts = [CellCounts("a/x", done=2, running=1, pending=1), CellCounts("a/y", done=2)]
    # 4 of 6 trials done in 2 minutes: the other 2 take about a minute
    assert eta(counts, 120.0) == "elapsed 2:00, about 1:00 left (4 of 6 trials done)"


def test_eta_waits_for_the_first_trial_and_shows_hours() -> None:
    counts = [CellCounts("a/x", running=2, pending=4)]
    assert eta(counts, 3725.0) == "elapsed 1:02:05, time left: - (0 of 6 trials done)"
