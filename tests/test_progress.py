"""The cells view: its time estimate and the table it draws."""

from __future__ import annotations

import io
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from sweep.cli import cli
from sweep.progress import CellCounts, eta, render
from sweep.results import write_part
from sweep.spec import parse_spec
from sweep.store import SPEC_FILE
from tests.support.sweeps import status_rows


def test_eta_extrapolates_from_the_finished_trials() -> None:
    counts = [CellCounts("a/x", done=2, running=1, pending=1), CellCounts("a/y", done=2)]
    # 4 of 6 trials done in 2 minutes: the other 2 take about a minute
    assert eta(counts, 120.0) == "elapsed 2:00, about 1:00 left (4 of 6 trials done)"


def test_eta_waits_for_the_first_trial_and_shows_hours() -> None:
    counts = [CellCounts("a/x", running=2, pending=4)]
    assert eta(counts, 3725.0) == "elapsed 1:02:05, time left: - (0 of 6 trials done)"


def _draw(counts: list[CellCounts], goal: str = "min") -> str:
    screen = Console(file=io.StringIO(), width=200)
    screen.print(render(counts, "sweep demo", "bit_error", goal))
    return str(screen.file.getvalue())  # type: ignore[attr-defined]


def test_the_table_labels_search_best_and_confirmation_apart() -> None:
    confirmed = CellCounts("tiny/plastic", done=5, best=0.0125, confirmed=[0.03, 0.01, 0.02])
    confirmed.solved = 2
    searching = CellCounts("tiny/lstm", done=1, running=1, pending=3, best=0.375)
    text = _draw([confirmed, searching])
    rows = status_rows(text)
    # done, failed, running, pending, search best, confirmed median, confirmed solved
    assert rows["tiny/plastic"] == ["5", "0", "0", "0", "0.0125", "0.0200", "2/3"]
    assert rows["tiny/lstm"] == ["1", "0", "1", "3", "0.3750", "-", "-"]
    header = " ".join(line for line in text.splitlines() if "┃" in line)
    for label in ("search", "best", "confirmed", "median", "solved"):
        assert label in header
    flat = " ".join(text.split())
    assert "bit_error, lower is better" in flat
    assert "search best: the best evaluation of any search trial (optimistic)" in flat
    assert "higher is better" in " ".join(_draw([searching], goal="max").split())


def test_a_long_cell_name_is_never_cut_short() -> None:
    counts = [CellCounts("paper-simplified/plastic_retroactive", done=1, best=0.5)]
    screen = Console(file=io.StringIO(), width=60)
    screen.print(render(counts, "sweep demo", "bit_error", "min"))
    assert "paper-simplified/plastic_retroactive" in screen.file.getvalue()  # type: ignore[attr-defined]


def test_status_prints_the_whole_table_into_a_pipe(tmp_path: Path) -> None:
    """Long cell names and every column, whatever the width a pipe is taken to have."""
    spec = parse_spec(
        {
            "name": "wide",
            "storage": str(tmp_path),
            "difficulties": ["paper-simplified"],
            "models": {"plastic_retroactive": {"family": "plastic", "modulation": "retroactive"}},
            "search": {"trials_per_cell": 1},
            "confirm": {"seeds": 2},
        }
    )
    folder = tmp_path / "wide"
    folder.mkdir()
    (folder / SPEC_FILE).write_text(spec.to_yaml())
    cell = "paper-simplified/plastic_retroactive"
    identity = {"sweep": "wide", "cell": cell, "task": "patterns", "goal": "min"}
    rows = [
        {**identity, "trial_id": "s", "phase": "search", "status": "completed", "best_value": 0.01},
        {
            **identity,
            "trial_id": "c1",
            "phase": "confirm",
            "status": "completed",
            "final_value": 0.015,
        },
        {
            **identity,
            "trial_id": "c2",
            "phase": "confirm",
            "status": "completed",
            "final_value": 0.03,
        },
    ]
    write_part(folder, "trials", [{**r, "solved_threshold": 0.02} for r in rows])
    done = CliRunner().invoke(cli, ["status", str(folder)])
    assert done.exit_code == 0, done.output
    assert status_rows(done.output)[cell] == ["3", "0", "0", "0", "0.0100", "0.0225", "1/2"]
