"""Each search trial's sampler is made for its ask (`sweep.search._sampler`); the grid
sampler must still visit every point of a cell's grid once."""

from __future__ import annotations

from pathlib import Path

import optuna

from sweep.plan import make_cells
from sweep.search import _sampler, optuna_distribution
from sweep.spec import parse_spec
from tests.support.sweeps import tiny_spec


def test_the_grid_sampler_visits_each_point_of_a_cell_once(tmp_path: Path) -> None:
    space = {"rule": {"choice": ["hebb", "oja", "additive"]}, "batch_size": {"choice": [4, 8]}}
    spec = parse_spec(
        tiny_spec(
            tmp_path,
            models={"plastic": {"family": "plastic"}},
            search={"trials_per_cell": 6, "sampler": "grid", "seed": 3, "space": space},
        )
    )
    for cell in make_cells(spec):
        study = optuna.create_study()
        fixed = {n: optuna_distribution(d) for n, d in cell.space.items()}
        for number in range(6):
            study.sampler = _sampler(spec, cell, number)
            trial = study.ask(fixed)
            study.sampler = optuna.samplers.RandomSampler()  # as the searcher tells
            study.tell(trial, 0.0)
        points = {tuple(sorted(t.params.items())) for t in study.trials}
        assert len(points) == 6, sorted(points)
