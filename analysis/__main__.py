"""The analysis command line: `python -m analysis report DIR` and `python -m analysis summary
DIR`. A folder that holds no sweep, or no finished trials, is one line on stderr and exit
status 2, like the `sweep` command's bad input; what cannot be read (a folder, a spec that
is not YAML, a part file) is named in one warning line each."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import NoReturn

import click
import pandas as pd
from rich.console import Console
from rich.table import Table

from analysis.figures import names as figure_names
from analysis.report import IQR, number, write_report
from analysis.summary import Summary, frontier_text, seed_limit, summarize
from analysis.tables import NoSweepError, Results, load


def _fail(message: str) -> NoReturn:
    click.echo(f"analysis: {message}", err=True)
    raise SystemExit(2)


def _warn(message: Warning | str, *args: object, **kwargs: object) -> None:
    """Warnings (an unreadable part file, say) as one line each on stderr: a parser's
    multi-line account of where a file went wrong is cut to its first line."""
    first = str(message).strip().splitlines()[0] if str(message).strip() else ""
    click.echo(f"analysis: warning: {first}", err=True)


def _unreadable(folder: str) -> list[str]:
    """A local folder, or the folders in it, that this user may not read."""
    path = Path(folder)
    if "://" in folder or not path.is_dir():
        return []
    if not os.access(path, os.R_OK | os.X_OK):
        return [folder]
    return [
        str(child)
        for child in sorted(path.iterdir())
        if child.is_dir()
        and not child.name.startswith(".")
        and not os.access(child, os.R_OK | os.X_OK)
    ]


def _finished(folder: str) -> Results:
    """The folder's results, with at least one finished trial."""
    unreadable = _unreadable(folder)
    if unreadable == [folder]:
        _fail(f"{folder}: cannot be read (permission denied)")
    for path in unreadable:
        _warn(f"{path}: cannot be read (permission denied); left out")
    try:
        results = load(folder)
    except (NoSweepError, ValueError, OSError) as e:
        _fail(" ".join(str(e).split()))
    if results.trials.empty:
        running = results.curves["trial_id"].nunique()
        if not running and not any("name" in s.spec for s in results.sweeps):
            where = ", ".join(s.path for s in results.sweeps)
            _fail(f"{folder}: no sweep here ({where}: no sweep's spec.yaml, no trials)")
        _fail(f"{folder}: no finished trials yet ({running} running or interrupted)")
    return results


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Summaries, figures and reports of sweep results."""
    warnings.showwarning = _warn


@main.command()
@click.argument("folder")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for report.html and figures/ (default: FOLDER/report).",
)
@click.option(
    "--figure",
    "only",
    multiple=True,
    metavar="NAME",
    help=f"Only this figure, repeatable: {', '.join(figure_names())} (default: every one "
    "that applies to the sweep).",
)
def report(folder: str, out: Path | None, only: tuple[str, ...]) -> None:
    """Write an HTML report of the sweep(s) in FOLDER: the winner at each difficulty,
    figures, tables, the spec and provenance."""
    _known_figures(only)
    results = _finished(folder)
    if out is None:
        if "://" in folder:
            _fail(f"{folder} is not a local folder: give --out")
        out = Path(folder) / "report"
    path = write_report(results, out, only or None)
    click.echo(str(path))


def _known_figures(only: tuple[str, ...]) -> None:
    """One line per name that is no figure, naming the figures; exit status 2."""
    bad = [name for name in only if name not in figure_names()]
    if bad:
        from sweep.errors import unknown  # only for the message: pydantic, not on the way

        for name in bad:
            click.echo(f"analysis: --figure: {unknown('figure', name, figure_names())}", err=True)
        raise SystemExit(2)


@main.command()
@click.argument("folder")
def summary(folder: str) -> None:
    """Print who wins at each difficulty, and the per-cell statistics."""
    results = _finished(folder)
    console = Console()
    for sweep in results.sweeps:
        s = summarize(results.select(sweep.name))
        if s.headline.empty:
            console.print(f"sweep {sweep.name}: no confirmation trials have finished yet")
        console.print(_winners(s, f"sweep {sweep.name}: who wins at each difficulty"))
        limit = seed_limit(s.headline)
        if limit:
            console.print(limit)
        console.print(_cells(s, f"sweep {sweep.name}: final {s.task.metric} per cell"))
        console.print(IQR)
        for row in s.frontier.to_dict("records"):
            console.print(frontier_text(row))


def _winners(s: Summary, title: str) -> Table:
    table = Table(title=title)
    for column in ("difficulty", "winner", "median [IQR]", "runner-up", "p (Holm)", "verdict"):
        table.add_column(column)
    for r in s.headline.to_dict("records"):
        median = number(r["runner_up_median"], 3)
        runner = "–" if pd.isna(r["runner_up"]) else f"{r['runner_up']} ({median})"
        table.add_row(
            str(r["difficulty"]),
            str(r["winner"]),
            f"{number(r['median'], 3)} [{number(r['q25'], 3)}, {number(r['q75'], 3)}]",
            runner,
            number(r["p_holm"], 2),
            str(r["verdict"]),
        )
    return table


def _cells(s: Summary, title: str) -> Table:
    table = Table(title=title)
    for column in ("difficulty", "model", "seeds", "diverged", "median [IQR]", "solved"):
        table.add_column(column, justify="left" if column in ("difficulty", "model") else "right")
    for r in s.cells.to_dict("records"):
        table.add_row(
            str(r["difficulty"]),
            str(r["model"]),
            str(r["seeds"]),
            str(r["diverged"]),
            f"{number(r['median'])} [{number(r['q25'])}, {number(r['q75'])}]",
            f"{r['solved']}/{r['seeds']}",
        )
    return table


if __name__ == "__main__":
    main(prog_name="python -m analysis")
