"""The HTML report of one or more sweeps: one self-contained file (figures embedded as PNG,
tables, the spec that ran, provenance) plus the figure files as PNG and SVG next to it.

It opens with the answer, a table per sweep of which model wins at each difficulty, by
how much, and whether that difference is significant, so a reader needs nothing else to
see it; the evidence (figures, per-cell tables, tests, configurations) follows.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from analysis.figures import applicable
from analysis.figures.common import save, seeds_text
from analysis.summary import (
    ALPHA,
    Summary,
    frontier_text,
    ordered,
    seed_limit,
    summarize,
)
from analysis.tables import Results, Sweep
from sweep.store import VERSIONED, current_confirmation

REPORT = "report.html"
FIGURES = "figures"
# The one meaning of "IQR" in every table and figure.
IQR = (
    "IQR: the inter-quartile range across seeds, from the 25th to the 75th percentile "
    "(linear interpolation), written [25th, 75th]."
)
_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
.meta { color: #555; } .note { color: #555; font-size: 0.92em; }
.warn { background: #fff4e0; border-left: 4px solid #e0a030; padding: 0.5em 0.8em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
table.headline { font-size: 1.05em; } table.headline td { padding: 0.4em 0.8em; }
tr.significant td { background: #e7f6e7; } tr.significant td:last-child { font-weight: bold; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.88em; }
"""


def write_report(results: Results, out: Path, only: Iterable[str] | None = None) -> Path:
    """Write `out/report.html` and `out/figures/*.png|svg`; returns the HTML file's path.
    `only`: just the figures of these names (default: every one that applies)."""
    figures_dir = out / FIGURES
    names = [s.name for s in results.sweeps]
    sections = []
    for name in names:
        one = results.select(name)
        if one.trials.empty:
            title = f"<h2 id='{html.escape(name)}'>Sweep {html.escape(name)}</h2>"
            sections.append(f"{title}<p class='warn'>No finished trials yet.</p>")
        else:
            sections.append(_section(one, summarize(one), figures_dir, len(names) > 1, only))
    if len(names) > 1:
        links = " · ".join(f"<a href='#{html.escape(n)}'>{html.escape(n)}</a>" for n in names)
        sections.insert(0, f"<p>Sweeps: {links}</p>")
    page = _page(f"Sweep report: {', '.join(names)}", "\n".join(sections))
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT
    path.write_text(page, encoding="utf-8")
    return path


def _page(title: str, body: str) -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p class='meta'>generated {generated}</p>\n"
        f"{body}\n</body></html>\n"
    )


def _section(
    results: Results,
    summary: Summary,
    figures_dir: Path,
    prefix: bool,
    only: Iterable[str] | None,
) -> str:
    (sweep,) = results.sweeps
    parts = [
        f"<h2 id='{html.escape(sweep.name)}'>Sweep {html.escape(sweep.name)}</h2>",
        f"<p class='meta'>{html.escape(_overview(results, summary))}</p>",
        "<h3>Who wins at each difficulty</h3>",
        headline_html(summary),
        _figures_html(summary, figures_dir, f"{sweep.name}-" if prefix else "", only),
        "<h3>Per cell (confirmation seeds)</h3>",
        cells_html(summary),
        growth_note(results, sweep),
        "<h3>Rank-sum tests between models</h3>",
        tests_html(summary),
        "<h3>Difficulty frontier</h3>",
        frontier_html(summary),
        "<h3>Best configuration per cell (search phase)</h3>",
        best_html(summary),
        "<h3>Trials</h3>",
        trials_html(results, summary),
        "<h3>The spec that ran (spec.yaml)</h3>",
        spec_html(sweep),
        history_html(sweep),
        "<h3>Provenance</h3>",
        provenance_html(results, sweep),
    ]
    return "\n".join(parts)


def _overview(results: Results, summary: Summary) -> str:
    trials = results.trials
    confirm = summary.cells["seeds"]
    seeds = seeds_text(confirm[confirm > 0]) if len(confirm) else "no confirmation seeds"
    return (
        f"task {', '.join(sorted(set(trials['task'].dropna())))} · "
        f"{trials['difficulty'].nunique()} difficulties × "
        f"{trials['model'].nunique()} models · {seeds} · {len(trials)} finished trials"
    )


# -- tables ---------------------------------------------------------------------------------
def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    css: str = "",
    row_css: Sequence[str] = (),
) -> str:
    """An HTML table, every cell escaped; `row_css` gives each row a class."""
    body = []
    for i, row in enumerate(rows):
        cls = f" class='{row_css[i]}'" if i < len(row_css) and row_css[i] else ""
        tds = "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
        body.append(f"<tr{cls}>{tds}</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    klass = f" class='{css}'" if css else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# A table's columns: header -> the cell of a row (a record of its frame)
Columns = Mapping[str, Callable[[dict[str, Any]], object]]


def _columns_table(frame: pd.DataFrame, columns: Columns) -> str:
    """An HTML table of `frame`, one row per record: each column's header and cell."""
    rows = [[cell(r) for cell in columns.values()] for r in _records(frame)]
    return _table(list(columns), rows)


def _median_iqr(row: dict[str, Any]) -> str:
    return f"{number(row['median'])} [{number(row['q25'])}, {number(row['q75'])}]"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def number(value: object, digits: int = 4) -> str:
    """A number for a table; '–' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _count(value: float) -> str:
    return "–" if math.isnan(value) else f"{round(value):,}"


def _p(value: object) -> str:
    return number(value, 2)


def headline_html(summary: Summary) -> str:
    """The answer: per difficulty, the winner, its median [IQR] of the metric, the
    runner-up, by how much the winner is better, and whether the difference is
    significant."""
    frame = summary.headline
    if frame.empty:
        return (
            "<p class='warn'>No confirmation trials have finished yet: comparisons use each "
            "cell's best configuration re-run on the confirmation seeds.</p>"
        )
    metric = summary.task.metric
    rows = [
        (
            r["difficulty"],
            r["winner"],
            _median_iqr(r),
            _runner_up(r),
            number(r["margin"], 3),
            _p(r["p_holm"]),
            r["verdict"],
        )
        for r in _records(frame)
    ]
    significant = ["significant" if s else "" for s in frame["significant"]]
    header = [
        "difficulty",
        "winner",
        f"median final {metric} [IQR]",
        "runner-up (median)",
        "margin (winner better by)",
        "p (Holm)",
        "difference",
    ]
    table = _table(header, rows, css="headline", row_css=significant)
    seeds = seeds_text(frame["seeds"])
    best = "highest" if summary.task.goal == "max" else "lowest"
    note = (
        f"<p class='note'>Winner: {best} median final {html.escape(metric)} "
        f"({html.escape(summary.task.direction)}) over the confirmation trials "
        f"({html.escape(seeds)}; each cell's best search configuration re-run on the same "
        "fresh seeds). Margin: how much better the winner's median is than the runner-up's. "
        f"{html.escape(IQR)} p: two-sided Mann-Whitney U (rank-sum) test of winner against "
        "runner-up, Holm-adjusted over every pair of models at that difficulty; significant "
        f"when below {ALPHA}. Diverged and failed trials are left out.</p>"
    )
    limit = seed_limit(frame)
    warn = f"<p class='warn'>{html.escape(limit)}</p>" if limit else ""
    reach = "".join(f"<li>{html.escape(frontier_text(r))}</li>" for r in _records(summary.frontier))
    frontier = (
        "<p><b>Frontier</b>: the hardest level solved in at least half the seeds together "
        "with every easier level; an island is a level solved beyond one the model fails."
        f"</p><ul>{reach}</ul>"
    )
    return table + frontier + note + warn


def _runner_up(row: dict[str, Any]) -> str:
    if pd.isna(row["runner_up"]):
        return "–"
    return f"{row['runner_up']} ({number(row['runner_up_median'])})"


def cells_html(summary: Summary) -> str:
    columns: Columns = {
        "difficulty": itemgetter("difficulty"),
        "model": itemgetter("model"),
        "seeds": itemgetter("seeds"),
        "diverged": itemgetter("diverged"),
        "failed": itemgetter("failed"),
        f"median final {summary.task.metric} [IQR]": _median_iqr,
        "mean [95% bootstrap CI]": lambda r: (
            f"{number(r['mean'])} [{number(r['ci_low'])}, {number(r['ci_high'])}]"
        ),
        "solved": lambda r: f"{r['solved']}/{r['seeds']}",
        "median episodes to solve": lambda r: number(r["solve_median"]),
        "parameters": lambda r: _count(r["num_parameters"]),
    }
    return _columns_table(summary.cells, columns)


def tests_html(summary: Summary) -> str:
    columns: Columns = {
        "difficulty": itemgetter("difficulty"),
        "models": lambda r: f"{r['model_a']} vs {r['model_b']}",
        "seeds": lambda r: f"{r['n_a']} / {r['n_b']}",
        "medians": lambda r: f"{number(r['median_a'])} / {number(r['median_b'])}",
        "U": lambda r: number(r["u"]),
        "p": lambda r: _p(r["p"]),
        "p (Holm)": lambda r: _p(r["p_holm"]),
        "p (Holm) < 0.05": lambda r: "yes" if r["significant"] else "no",
    }
    return _columns_table(summary.tests, columns)


def frontier_html(summary: Summary) -> str:
    columns: Columns = {
        "model": itemgetter("model"),
        "frontier: hardest level solved in ≥ half its seeds, with every easier one": lambda r: (
            "none" if pd.isna(r["frontier"]) else r["frontier"]
        ),
        "first level not solved": lambda r: "–" if pd.isna(r["stops_at"]) else r["stops_at"],
        "islands: solved beyond it": lambda r: ", ".join(r["islands"]) or "none",
        "levels solved": itemgetter("levels_solved"),
        "levels run": itemgetter("levels_run"),
    }
    return _columns_table(summary.frontier, columns)


def best_html(summary: Summary) -> str:
    hp = list(summary.searched)
    columns: Columns = {
        "difficulty": itemgetter("difficulty"),
        "model": itemgetter("model"),
        "Optuna trial": itemgetter("optuna_trial"),
        f"final {summary.task.metric}": lambda r: number(r["final_value"]),
        "searched settings": lambda r: (
            ", ".join(f"{c[3:]}={number(r[c])}" for c in hp if not pd.isna(r[c])) or "–"
        ),
    }
    return _columns_table(summary.best, columns)


def trials_html(results: Results, summary: Summary) -> str:
    """Trials per cell by phase and status, and those still running (curves, no row)."""
    trials = results.trials
    columns = ["difficulty", "model", "phase", "status"]
    counts = trials.groupby(columns).size().rename("trials").reset_index()
    counts = ordered(counts, summary.difficulties, summary.models)
    running = set(results.curves["trial_id"]) - set(trials["trial_id"])
    rows = [[r[c] for c in [*columns, "trials"]] for r in _records(counts)]
    text = _table([*columns, "trials"], rows)
    if running:
        text += f"<p class='note'>{len(running)} trials had curves but no result yet.</p>"
    return text


def growth_note(results: Results, sweep: Sweep) -> str:
    """For a grown sweep: which confirmation the numbers use, and the earlier ones left out."""
    if len(sweep.history) < 2:
        return ""
    trials = results.trials[results.trials["sweep"] == sweep.name]
    confirm = trials["phase"] == "confirm"
    earlier = trials[confirm & ~current_confirmation(trials)]
    text = (
        f"This sweep grew {len(sweep.history) - 1} time(s) (its specs are below). Each cell's "
        "numbers are the confirmation of its current choice, the configuration confirmed last"
    )
    if len(earlier):
        cells = ", ".join(sorted(set(earlier["cell"])))
        text += (
            f"; {len(earlier)} confirmation trial(s) of an earlier choice, made before the "
            f"search grew, are in the trials table and not used ({cells})"
        )
    return f"<p class='note'>{html.escape(text)}.</p>"


def history_html(sweep: Sweep) -> str:
    """A grown sweep's specs, one per generation, oldest first."""
    if len(sweep.history) < 2:
        return ""
    parts = ["<h3>How the sweep grew (history/)</h3>"]
    for n, text in enumerate(sweep.history):
        what = "as first run" if n == 0 else f"growth {n}"
        parts.append(
            f"<details><summary>generation {n}: {what}</summary>"
            f"<pre>{html.escape(text)}</pre></details>"
        )
    return "\n".join(parts)


def spec_html(sweep: Sweep) -> str:
    """The spec as its author wrote it (spec-as-written.yaml, comments included); for a
    sweep without that file, as near as spec.yaml tells: it holds the resolved spec, every
    unset option as `null` (and unused lists as `[]`); those are left out. A spec.yaml
    that does not parse is shown as it is."""
    if sweep.written:
        return (
            f"<pre>{html.escape(sweep.written)}</pre><p class='note'>As written; spec.yaml in "
            "the sweep's folder holds it with every default filled in.</p>"
        )
    if not sweep.spec_text:
        return "<pre>(no spec.yaml in the folder)</pre>"
    if not sweep.spec:
        return f"<pre>{html.escape(sweep.spec_text)}</pre>"
    text = yaml.safe_dump(_set_only(dict(sweep.spec)), sort_keys=False, allow_unicode=True)
    return (
        f"<pre>{html.escape(text)}</pre><p class='note'>Options left unset (null or empty in "
        "spec.yaml) are not shown; the others include the defaults the sweep filled in.</p>"
    )


def _set_only(value: object) -> object:
    """`value` without the None values and empty lists or mappings at any depth."""
    if isinstance(value, Mapping):
        kept = {k: _set_only(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None and v != [] and v != {}}
    if isinstance(value, list):
        return [_set_only(v) for v in value]
    return value


def provenance_html(results: Results, sweep: Sweep) -> str:
    trials = results.trials

    def tally(column: str) -> str:
        counts = trials[column].fillna("–").astype(str).value_counts()
        return "; ".join(f"{value} ({n})" for value, n in counts.items()) or "–"

    def recorded(column: str) -> bool:
        values = trials[column].dropna().astype(str).str.strip(" ;")
        return bool((values != "").any())

    versions = [
        (f"{column.removeprefix('version.')} version (trials)", tally(column))
        for column in (f"version.{p}" for p in VERSIONED)
        if recorded(column)
    ]
    rows = [
        ("folder", sweep.path),
        ("git commits (trials)", tally("git_commit")),
        ("first trial started", _time(trials["started_at"].min())),
        ("last trial finished", _time(trials["finished_at"].max())),
        *versions,
        ("platform (trials)", tally("platform") if recorded("platform") else "not recorded"),
        ("devices (trials)", tally("device")),
        ("nodes (trials)", tally("node")),
        *([("GPU ids (trials)", tally("gpu_ids"))] if recorded("gpu_ids") else []),
        ("schema versions", tally("schema_version")),
        ("unreadable part files, skipped", "; ".join(sweep.skipped) or "none"),
    ]
    if not versions:
        rows.insert(4, ("package versions", "not recorded (a sweep from before schema 2)"))
    return _table(["", ""], rows)


def _time(value: object) -> str:
    if not isinstance(value, datetime) or pd.isna(value):
        return "–"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


# -- figures --------------------------------------------------------------------------------
def _figures_html(summary: Summary, folder: Path, prefix: str, only: Iterable[str] | None) -> str:
    """Every figure of the registry that applies to the sweep, in its order: embedded PNG,
    caption, a link to the SVG, and the figure's note when it has one."""
    parts = []
    for part in applicable(summary, only):
        caption = part.caption_of(summary)
        png, svg = save(part.render(summary), folder, prefix + part.name)
        data = base64.b64encode(png.read_bytes()).decode()
        link = f"{FIGURES}/{svg.name}"
        parts.append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)} (<a href='{html.escape(link)}'>SVG</a>)"
            "</figcaption></figure>"
        )
        note = part.note(summary)
        if note:
            parts.append(f"<p class='warn'>{html.escape(note, quote=False)}</p>")
    return "<h3>Figures</h3>\n" + "\n".join(parts)
