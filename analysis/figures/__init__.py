"""The comparison figures of one sweep, each a part in one registry.

A figure is one module of this package that declares `FIGURE = FigurePart(...)`: its name,
caption, when it applies, its data (a pure info function of the sweep's `Summary`, tested)
and its drawing (info -> matplotlib Figure), the split Optuna's visualization uses. The
modules are found when the package is imported; a plugin's figure joins them through
`register_figure`. The report, `figures()` and `python -m analysis report --figure` all
read `FIGURES`, in each part's `order`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from matplotlib.figure import Figure

from analysis.figures.common import AnyPart, FigurePart, save, seeds_text
from analysis.summary import Summary

FIGURES: list[AnyPart] = []  # every figure, in report order


def register_figure(part: AnyPart) -> AnyPart:
    """Add a figure (a plugin's); one of the same name from another module is an error, the
    same module's again (a re-import) replaces it."""
    known = {p.name: p for p in FIGURES}.get(part.name)
    if known is not None and known.data.__module__ != part.data.__module__:
        raise ValueError(f"figure {part.name!r} is already registered by {known.data.__module__}")
    FIGURES[:] = sorted(
        [p for p in FIGURES if p.name != part.name] + [part], key=lambda p: (p.order, p.name)
    )
    return part


def unregister_figure(name: str) -> None:
    """Remove a figure by name (a plugin's, in tests)."""
    FIGURES[:] = [p for p in FIGURES if p.name != name]


def names() -> tuple[str, ...]:
    """Every figure's name, in report order."""
    return tuple(p.name for p in FIGURES)


def applicable(summary: Summary, only: Iterable[str] | None = None) -> list[AnyPart]:
    """The figures this sweep gets, in report order; `only`: just these names."""
    chosen = None if only is None else {only} if isinstance(only, str) else set(only)
    return [p for p in FIGURES if (chosen is None or p.name in chosen) and p.applies(summary)]


def figures(summary: Summary, only: Iterable[str] | None = None) -> dict[str, Figure]:
    """Every figure of one sweep's summary that applies to it, by name, in report order;
    `only`: just these names."""
    return {p.name: p.render(summary) for p in applicable(summary, only)}


def _discover() -> None:
    """Register the `FIGURE` of every module of this package."""
    for found in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{found.name}")
        part = getattr(module, "FIGURE", None)
        if isinstance(part, FigurePart):
            register_figure(part)


_discover()

__all__ = [
    "FIGURES",
    "FigurePart",
    "applicable",
    "figures",
    "names",
    "register_figure",
    "save",
    "seeds_text",
    "unregister_figure",
]
