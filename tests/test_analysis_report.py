"""The report and the `python -m analysis` command: on hand-built sweeps, and (slow) on the
output of a real tiny sweep."""

from __future__ import annotations

import html
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from analysis import UnreadablePartWarning, load, summarize
from analysis.figures import FIGURES, applicable, figures, unregister_figure
from analysis.report import write_report
from sweep.results import write_part
from tests.support.cli import analysis_here
from tests.support.folders import sweep_folder
from tests.support.rows import HIGH, LOW, pictures, seeds
from tests.support.sweeps import bound_by_permissions

ROOT = Path(__file__).resolve().parents[1]


def analysis_cli(*args: str, bound: bool = False) -> subprocess.CompletedProcess[str]:
    """`python -m analysis <args>`; `bound`: as a process that file permissions bind."""
    command = [sys.executable, "-m", "analysis", *args]
    return subprocess.run(
        bound_by_permissions(command) if bound else command,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def embedded(page: str) -> list[str]:
    """The captions of the report's figures, in order."""
    return re.findall(r"<figcaption>([^<]*) \(<a href=", page)


def headline_rows(page: str) -> list[tuple[str, str, bool]]:
    """(difficulty, winner, significant) of each row of the report's headline table."""
    table = re.search(r"<table class='headline'>(.*?)</table>", page, re.S)
    assert table is not None
    rows = re.findall(r"<tr( class='significant')?><td>([^<]*)</td><td>([^<]*)</td>", table[1])
    return [(d, w, bool(s)) for s, d, w in rows]


# -- hand-built sweeps ----------------------------------------------------------------------
def written_sweep(root: Path, rows: list[dict[str, Any]], name: str = "hand") -> Path:
    provenance = {"git_commit": "abc123", "device": "cpu", "node": "n1", "schema_version": 1}
    spec = {"difficulties": ["easy", "hard"]}
    return sweep_folder(root, name, spec, trials=rows, provenance=provenance)


def test_report_headline_marks_significant_wins_and_leaves_out_diverged(tmp_path: Path) -> None:
    rows = seeds("easy", "plastic", LOW) + seeds("easy", "rnn", HIGH)
    rows += seeds("hard", "plastic", HIGH) + seeds("hard", "rnn", LOW[:3])
    rows += seeds("hard", "plastic", [0.0, 0.0], status="diverged")
    folder = written_sweep(tmp_path, rows)
    page = write_report(load(folder), tmp_path / "out").read_text()
    # hard: rnn wins on 3 seeds against 10 (the 2 diverged plastic seeds are left out)
    assert headline_rows(page) == [("easy", "plastic", True), ("hard", "rnn", True)]
    assert "abc123 (35)" in page  # the git commit and how many trials ran it
    assert "<td>hard</td><td>plastic</td><td>10</td><td>2</td>" in page  # seeds, diverged
    summary = summarize(load(folder))
    shown = applicable(summary)
    assert "reconstructions" not in [p.name for p in shown]  # no pictures recorded
    assert page.count("src='data:image/png;base64,") == len(shown) == len(FIGURES) - 1
    assert embedded(page) == [html.escape(p.caption_of(summary)) for p in shown]
    assert embedded(page)[0] == "Final bit error against difficulty"  # the answer first
    assert "name: hand" in page  # the spec that ran
    # a schema-1 sweep: no goal (lower is better, as then every task), no versions recorded
    assert "Winner: lowest median final bit error (lower is better)" in page
    assert "<td>package versions</td><td>not recorded (a sweep from before schema 2)</td>" in page
    assert "GPU ids" not in page


def test_an_image_sweeps_report_shows_its_reconstructions(tmp_path: Path) -> None:
    rows = seeds("easy", "plastic", LOW) + seeds("easy", "rnn", HIGH)
    rows = [{**r, "task": "images", "metric": "erased_mse"} for r in rows]
    folder = written_sweep(tmp_path, rows)
    recorded = pictures([{**r, "sweep": "hand"} for r in rows])
    # pandas holds a missing identity (a lone trial's `population`) as NaN; a row holds None
    frame = recorded.astype(object).where(recorded.notna(), None)
    records = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
    write_part(folder, "reconstructions", [{**r, "schema_version": 1} for r in records])
    page = write_report(load(folder), tmp_path / "out").read_text()
    assert page.count("src='data:image/png;base64,") == len(FIGURES)  # every one applies
    assert "Reconstructions of held-out images" in embedded(page)
    assert (tmp_path / "out" / "figures" / "reconstructions.svg").is_file()


LAB_FIGURE = """
\"\"\"A lab's own figure, in one module: the confirmation seeds of each cell.\"\"\"
from matplotlib.figure import Figure

from analysis.figures import FigurePart, register_figure
from analysis.figures.common import new_figure, seeds_text, suptitle
from analysis.summary import Summary

SEEDS = "seeds"  # the cells column drawn


def seeds_info(summary: Summary) -> dict[str, int]:
    return {f"{r['difficulty']}/{r['model']}": int(r[SEEDS]) for _, r in summary.cells.iterrows()}


def draw_seeds(info: dict[str, int]) -> Figure:
    fig = new_figure(6, 3)
    ax = fig.subplots()
    ax.bar(list(info), list(info.values()))
    ax.set_ylabel("confirmation seeds")
    suptitle(fig, f"seeds per cell, {seeds_text(info.values())}")
    return fig


def several_models(summary: Summary) -> bool:
    return len(summary.models) > 1


def note(summary: Summary) -> str:
    return f"drawn by a lab module for {len(summary.cells)} cells"


FIGURE = register_figure(
    FigurePart(
        name="seeds_per_cell",
        caption="Seeds per cell ({metric})",
        data=seeds_info,
        draw=draw_seeds,
        applies=several_models,
        note=note,
        order=15,
    )
)
"""


def test_a_figure_module_of_its_own_joins_figures_and_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adding a figure is one module: importing it registers it; nothing else changes."""
    (tmp_path / "lab_figures.py").write_text(LAB_FIGURE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lab_figures", raising=False)
    before = [p.name for p in FIGURES]
    try:
        importlib.import_module("lab_figures")
        assert [p.name for p in FIGURES] == [before[0], "seeds_per_cell", *before[1:]]
        rows = seeds("easy", "plastic", LOW) + seeds("easy", "rnn", HIGH[:4])
        folder = written_sweep(tmp_path, rows)
        summary = summarize(load(folder))
        fig = figures(summary)["seeds_per_cell"]
        heights = [bar.get_height() for bar in fig.axes[0].patches if isinstance(bar, Rectangle)]
        assert heights == [10, 4] and "n = 4–10 confirmation seeds" in fig.get_suptitle()
        page = write_report(load(folder), tmp_path / "out").read_text()
        assert embedded(page)[:2] == [
            "Final bit error against difficulty",
            "Seeds per cell (bit error)",
        ]
        assert "<p class='warn'>drawn by a lab module for 2 cells</p>" in page
        assert (tmp_path / "out" / "figures" / "seeds_per_cell.svg").is_file()
        # when it applies: a sweep of one model does not get it
        one = summarize(load(written_sweep(tmp_path, seeds("easy", "plastic", LOW), "one")))
        assert "seeds_per_cell" not in [p.name for p in applicable(one)]
    finally:
        unregister_figure("seeds_per_cell")
    assert [p.name for p in FIGURES] == before


def test_report_draws_only_the_figures_named(tmp_path: Path) -> None:
    folder = written_sweep(tmp_path, seeds("easy", "plastic", LOW) + seeds("easy", "rnn", HIGH))
    out = tmp_path / "out"
    done = analysis_here("report", str(folder), "--out", str(out), "--figure", "frontier")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["frontier.png", "frontier.svg"]
    assert embedded((out / "report.html").read_text()) == ["Difficulty frontier"]
    done = analysis_here("report", str(folder), "--figure", "fronteir", "--figure", "x")
    assert done.returncode == 2 and done.stdout == ""
    valid = ", ".join(p.name for p in FIGURES)
    assert done.stderr.splitlines() == [
        f"analysis: --figure: unknown figure 'fronteir'; valid: {valid}; did you mean 'frontier'?",
        f"analysis: --figure: unknown figure 'x'; valid: {valid}",
    ]
    assert not (folder / "report").exists()


def test_report_of_several_sweeps_has_a_section_each(tmp_path: Path) -> None:
    for name in ("one", "two"):
        written_sweep(tmp_path, seeds("easy", "plastic", LOW) + seeds("easy", "rnn", HIGH), name)
    page = write_report(load(tmp_path), tmp_path / "out").read_text()
    assert "<h2 id='one'>Sweep one</h2>" in page and "<h2 id='two'>Sweep two</h2>" in page
    assert sorted(p.name for p in (tmp_path / "out" / "figures").glob("*.png"))[:2] == [
        "one-episodes_to_solve.png",
        "one-final_error.png",
    ]


def test_no_sweep_or_no_finished_trials_is_one_line_and_status_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    started = tmp_path / "started"  # a sweep that has written its spec and nothing else
    started.mkdir()
    (started / "spec.yaml").write_text("name: started\n")
    for command, folder, message in (
        ("report", empty, "no sweep here"),
        ("summary", empty, "no sweep here"),
        ("report", tmp_path / "missing", "no such folder"),
        ("report", started, "no finished trials yet"),
    ):
        done = analysis_here(command, str(folder))
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1 and message in done.stderr


def test_a_folder_of_other_things_is_named_in_one_line_each(tmp_path: Path) -> None:
    """A spec.yaml that is not YAML is one warning line, not the parser's account of it, and
    a folder whose spec.yaml is not a sweep's holds no sweep."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "spec.yaml").write_text("a: [1,\n b: {\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "spec.yaml").write_text("x: 1\n")
    (tmp_path / "plain").mkdir()
    for command in ("report", "summary"):
        done = analysis_here(command, str(tmp_path))
        assert done.returncode == 2 and done.stdout == ""
        lines = done.stderr.splitlines()
        assert len(lines) == 2, done.stderr
        assert lines[0].startswith("analysis: warning: ") and "notes/spec.yaml" in lines[0]
        assert "is not valid YAML" in lines[0]
        assert lines[1].startswith(f"analysis: {tmp_path}: no sweep here")


def test_a_folder_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        done = analysis_cli("summary", str(locked), bound=True)
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            f"analysis: {locked}: cannot be read (permission denied)"
        ]
    finally:
        locked.chmod(0o755)


# -- a real sweep ---------------------------------------------------------------------------
@pytest.fixture
def tiny(tiny_sweep: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    """The session's tiny real sweep (embedded Ray): 2 difficulties x 3 models x (2 + 2)."""
    folder, done = tiny_sweep
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


@pytest.mark.slow
def test_load_a_real_sweep(tiny: Path) -> None:
    results = load(tiny)
    plain = pd.read_parquet(tiny / "trials").set_index("trial_id")["final_value"]
    assert len(results.trials) == 24 and len(results.curves) == 48
    assert (
        results.trials.set_index("trial_id")["final_value"].sort_index().equals(plain.sort_index())
    )
    assert results.difficulties == ("trivial", "tiny")  # the spec's order, not alphabetical
    assert set(results.models) == {"plastic", "rnn", "lstm"}
    assert str(results.trials["episodes_to_solve"].dtype) == "Int64"
    assert sorted(name for _, name in results.studies()) == sorted(
        f"{d}/{m}" for d in ("trivial", "tiny") for m in ("plastic", "rnn", "lstm")
    )


@pytest.mark.slow
def test_summaries_of_a_real_sweep(tiny: Path) -> None:
    results = load(tiny)
    s = summarize(results)
    assert len(s.cells) == 6 and set(s.cells["seeds"]) == {2}
    assert list(s.headline["difficulty"]) == ["trivial", "tiny"]
    # the best search trial per cell is the one the sweep confirmed
    confirmed = results.trials[results.trials["phase"] == "confirm"]
    chosen = confirmed.groupby(["difficulty", "model"])["optuna_trial"].first()
    best = s.best.set_index(["difficulty", "model"])["optuna_trial"]
    assert best.sort_index().tolist() == chosen.sort_index().tolist()
    importance = s.importance.groupby(["difficulty", "model"])["param"].apply(set)
    assert importance[("tiny", "plastic")] == {"lr", "eta", "rule"}
    assert importance[("tiny", "lstm")] == {"lr"}
    lr = s.importance.set_index(["difficulty", "model", "param"])["importance"]
    assert lr[("trivial", "rnn", "lr")] == 1.0
    assert set(s.searched) == {"hp.lr", "hp.eta", "hp.rule"}
    assert len(s.curves) == 12 and set(s.curves["seeds"]) == {2}


@pytest.mark.slow
def test_a_truncated_part_of_a_real_sweep_is_skipped_by_name(tiny: Path, tmp_path: Path) -> None:
    copy = tmp_path / "tiny"
    shutil.copytree(tiny, copy)
    (part,) = (copy / "trials").glob("part-*.parquet")
    data = part.read_bytes()
    cut = copy / "trials" / "part-99999999999999999999-truncated.parquet"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.warns(UnreadablePartWarning, match=cut.name):
        results = load(copy)
    assert len(results.trials) == 24
    done = analysis_here("summary", str(copy))
    assert done.returncode == 0, done.stderr
    warning = [line for line in done.stderr.splitlines() if cut.name in line]
    assert len(warning) == 1 and "skipping unreadable part file" in warning[0]


@pytest.mark.slow
def test_report_of_a_real_sweep(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = analysis_cli("report", str(tiny), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out / "report.html")
    page = (out / "report.html").read_text()
    results = load(tiny)
    expected = summarize(results).headline
    assert [(d, w) for d, w, _ in headline_rows(page)] == list(
        zip(expected["difficulty"], expected["winner"], strict=True)
    )
    shown = [p.name for p in applicable(summarize(results))]
    assert "reconstructions" not in shown and len(shown) == len(FIGURES) - 1
    assert page.count("src='data:image/png;base64,") == len(shown)
    names = {p.name for p in (out / "figures").iterdir()}
    assert names == {f"{figure}.{kind}" for figure in shown for kind in ("png", "svg")}
    assert "name: tiny" in page and "trials_per_cell: 2" in page  # the spec that ran
    # ... as written: the file's own text, kept by `sweep run` beside the resolved spec
    written = (tiny / "spec-as-written.yaml").read_text()
    assert written == (tiny.parent.parent / "tiny.yaml").read_text()
    assert html.escape(written) in page and "null" not in written
    (commit,) = set(results.trials["git_commit"])
    assert f"{commit} (24)" in page and "cpu (24)" in page
    assert "cannot give p below 0.33" in page  # 2 seeds a side can never be significant


@pytest.mark.slow
def test_summary_command_prints_the_winner_of_each_difficulty(tiny: Path) -> None:
    done = analysis_here("summary", str(tiny))
    assert done.returncode == 0, done.stderr
    expected = summarize(load(tiny)).headline
    lines = done.stdout.splitlines()
    for difficulty, winner in zip(expected["difficulty"], expected["winner"], strict=True):
        row = next(line for line in lines if line.startswith(f"│ {difficulty} "))
        assert row.split("│")[2].strip() == winner


@pytest.mark.slow
def test_report_defaults_to_a_folder_in_the_sweep_and_reads_the_journal_read_only(
    tiny: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "tiny"
    shutil.copytree(tiny, copy)
    journal = copy / "optuna" / "journal.log"
    before = journal.read_bytes()
    journal.chmod(0o444)
    done = analysis_here("report", str(copy))
    assert done.returncode == 0, done.stderr
    assert (copy / "report" / "report.html").is_file()
    assert journal.read_bytes() == before
    assert len(load(copy).trials) == 24  # the report folder is not mistaken for results
