"""The figures' functions under their earlier home: each figure is now a module of
`analysis.figures` (see there); this keeps `from analysis.plots import ...` working."""

from analysis.figures import FIGURES, figures, register_figure
from analysis.figures.common import Scale, error_label, metric_scale, save, seeds_text
from analysis.figures.episodes_to_solve import draw_episodes_to_solve, episodes_to_solve_info
from analysis.figures.final_error import draw_final_error, final_error_info
from analysis.figures.frontier import draw_frontier, frontier_info
from analysis.figures.importance import draw_importance, importance_info
from analysis.figures.learning_curves import draw_learning_curves, learning_curves_info
from analysis.figures.parameters import draw_parameters, parameters_info
from analysis.figures.reconstructions import draw_reconstructions, reconstruction_info

__all__ = [
    "FIGURES",
    "Scale",
    "draw_episodes_to_solve",
    "draw_final_error",
    "draw_frontier",
    "draw_importance",
    "draw_learning_curves",
    "draw_parameters",
    "draw_reconstructions",
    "episodes_to_solve_info",
    "error_label",
    "figures",
    "final_error_info",
    "frontier_info",
    "importance_info",
    "learning_curves_info",
    "metric_scale",
    "parameters_info",
    "reconstruction_info",
    "register_figure",
    "save",
    "seeds_text",
]
