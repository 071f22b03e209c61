from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from sweep.models import FAMILIES, Model, build_model
from tests.support.sweeps import sweep, tiny_spec, write_spec

# The suite runs on two processes (pytest-xdist, `-n 2` in pyproject.toml): one torch thread
# each, as many as the machine has cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (the two processes take the long ones while the short ones fill
    in after). Tests marked `cuda` need a CUDA GPU: skipped without one (`pytest -m cuda`
    selects them; benchmarks/gpu_check.py runs them)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable
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


@pytest.fixture(scope="session")
def tiny_sweep(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One real sweep of `tiny_spec` on embedded Ray (2 difficulties x 3 models x (2 search
    + 2 confirmation trials)), run once per test session for every test that only reads it:
    its folder and the finished `sweep run`. Tests that change files work on a copy."""
    tmp = tmp_path_factory.mktemp("tiny")
    done = sweep("run", str(write_spec(tmp, tiny_spec(tmp))))
    return tmp / "results" / "tiny", done
