"""Reading sweep results, statistics across seeds, comparison plots and reports."""
