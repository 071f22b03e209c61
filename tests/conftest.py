from __future__ import annotations

import compileall
import fcntl
import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest
import torch

from sweep.models import FAMILIES, Model, build_model
from tests.support.sweeps import sweep, tiny_spec, write_spec

# The suite runs on two processes (pytest-xdist, `-n 2` in pyproject.toml): one torch thread
# each, as many as the machine has cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


ROOT = Path(__file__).resolve().parents[1]
# The project's Python code: the folders mypy checks (pyproject's `[tool.mypy] files`).
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]


def pytest_configure(config: pytest.Config) -> None:
    """Compile the project's modules once, before the test processes start. The suite starts
    some 300 Python processes (sweeps, their Ray workers, commands); where Python does not
    write bytecode (PYTHONDONTWRITEBYTECODE, set in some environments), each of them compiles
    every project module it imports again: 0.2-0.4 CPU-seconds for the whole project, each
    (measured quiet, `import sweep.trainable, sweep.cli, sweep.runner, analysis` with and
    without the compiled files). The installed packages were compiled when installed."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=2)


# Files of tests not marked slow that still take long (mypy over the project on a cold cache;
# commands and process groups that import torch): they follow the slow tests, so that the
# last tests to run, which decide when both processes are done, are the short ones.
LONG_FILES = {"test_lint.py", "test_data_parallel.py", "test_cli.py", "test_gpu_check.py"}


def _order(item: pytest.Item) -> int:
    if item.get_closest_marker("slow") is not None:
        return 0
    return 1 if item.path.name in LONG_FILES else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, then the long ones not marked slow (the two processes take the
    long ones while the short ones fill in after). Tests marked `cuda` need a CUDA GPU:
    skipped without one (`pytest -m cuda` selects them; benchmarks/gpu_check.py runs them)."""
    items.sort(key=_order)  # stable
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
    tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One real sweep of `tiny_spec` on embedded Ray (2 difficulties x 3 models x (2 search
    + 2 confirmation trials)), run once per test run for every test that only reads it: its
    folder and the finished `sweep run`. Tests that change files work on a copy. The
    pytest-xdist processes share it: the first to ask runs it, the other waits for it, in
    the folder of this run that both see."""
    if worker_id == "master":  # one process
        return _tiny_sweep(tmp_path_factory.mktemp("tiny"))
    shared = tmp_path_factory.getbasetemp().parent
    with (shared / "tiny.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        record = shared / "tiny" / "done.json"
        if record.exists():
            done = subprocess.CompletedProcess(**json.loads(record.read_text()))
            return shared / "tiny" / "results" / "tiny", done
        (shared / "tiny").mkdir()
        folder, done = _tiny_sweep(shared / "tiny")
        fields = ("args", "returncode", "stdout", "stderr")
        record.write_text(json.dumps({k: getattr(done, k) for k in fields}))
        return folder, done


def _tiny_sweep(tmp: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    done = sweep("run", str(write_spec(tmp, tiny_spec(tmp))))
    return tmp / "results" / "tiny", done
