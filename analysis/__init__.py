"""Reading sweep results, statistics across seeds, comparison plots and reports.

    import analysis
    r = analysis.load("results/quick")            # r.trials, r.curves: pandas DataFrames
    s = analysis.summarize(r)                     # s.headline: who wins at each difficulty
    python -m analysis report results/quick       # HTML report + figures

Imports neither Ray nor torch: results can be read where only pandas is installed.
"""

from analysis.summary import (
    Summary,
    best_configs,
    cell_summary,
    comparisons,
    curve_summary,
    frontier,
    frontier_text,
    headline,
    levels,
    param_importance,
    summarize,
    typical_reconstructions,
)
from analysis.tables import NoSweepError, Results, Sweep, UnreadablePartWarning, load

__all__ = [
    "NoSweepError",
    "Results",
    "Summary",
    "Sweep",
    "UnreadablePartWarning",
    "best_configs",
    "cell_summary",
    "comparisons",
    "curve_summary",
    "frontier",
    "frontier_text",
    "headline",
    "levels",
    "load",
    "param_importance",
    "summarize",
    "typical_reconstructions",
]
