from __future__ import annotations

import pytest
import torch

from sweep.models import FAMILIES, Model, build_model


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `cuda` need a CUDA GPU: skipped without one (`pytest -m cuda` selects
    them; benchmarks/gpu_check.py runs them)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(family: str, input_size: int = 9, output_size: int = 8, **params: object) -> Model:
    """A real model of `family` on the CPU, initialised from a fixed generator."""
    if family != "plastic":
        params.setdefault("hidden", 12)
    model = build_model(family, input_size, output_size, params, device="cpu")
    model.reset_parameters(torch.Generator().manual_seed(0))
    return model
