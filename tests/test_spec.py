"""Sweep specs: every error found before Ray starts or anything is written."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from sweep.plan import make_cells
from sweep.spec import SpecError, load_spec, parse_spec
from tests.sweeps import sweep, tiny_spec, write_spec

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("example", sorted(p.stem for p in (ROOT / "examples").glob("*.yaml")))
def test_examples_validate(example: str) -> None:
    spec = load_spec(ROOT / "examples" / f"{example}.yaml")
    assert len(make_cells(spec)) == len(spec.difficulties) * len(spec.models)


def _broken(change: str) -> dict[str, Any]:
    spec = tiny_spec(Path("/nonexistent"))
    s = copy.deepcopy(spec)
    if change == "unknown key":
        s["schedular"] = "asha"
    elif change == "wrong type":
        s["train"]["episodes"] = "many"
    elif change == "unknown task":
        s["task"] = "mazes"
    elif change == "unknown level":
        s["difficulties"] = ["trivial", "impossible"]
    elif change == "unknown family":
        s["models"]["lstm"]["family"] = "transformer"
    elif change == "unknown sampler":
        s["search"]["sampler"] = "bayes"
    elif change == "no models":
        s["models"] = {}
    elif change == "non-positive budget":
        s["search"]["trials_per_cell"] = 0
    elif change == "parameter no model has":
        s["search"]["space"]["momentum"] = {"uniform": [0.1, 0.9]}
    elif change == "log bound <= 0":
        s["search"]["space"]["lr"] = {"loguniform": [0, 0.01]}
    elif change == "low >= high":
        s["search"]["space"]["eta"] = {"uniform": [0.5, 0.1]}
    return s


BAD = {
    "unknown key": "schedular: unknown key",
    "wrong type": "train.episodes: 'many': Input should be a valid integer",
    "unknown task": "task: unknown task 'mazes'; valid: patterns",
    "unknown level": "difficulties[1]: unknown level 'impossible'; valid: trivial, tiny",
    "unknown family": "models.lstm.family: unknown family 'transformer'; valid: plastic, rnn",
    "unknown sampler": "search.sampler: 'bayes': Input should be 'tpe', 'random' or 'grid'",
    "no models": "models: Dictionary should have at least 1 item",
    "non-positive budget": "search.trials_per_cell: 0: Input should be greater than 0",
    "parameter no model has": "search.space.momentum: no model in this sweep has it; valid:",
    "log bound <= 0": "search.space.lr.loguniform: low must be > 0",
    "low >= high": "search.space.eta.uniform: low (0.5) must be < high (0.1)",
}


@pytest.mark.parametrize("change", BAD)
def test_each_bad_spec_names_its_path(change: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_broken(change))
    assert any(line.startswith(BAD[change]) for line in info.value.errors), info.value.errors


def test_every_error_is_listed_at_once() -> None:
    s = _broken("unknown family")
    s["models"]["rnn"]["match_parameters"] = "gru"
    s["train"]["eval_every"] = -1
    s["search"]["space"]["momentum"] = {"uniform": [0.1, 0.9]}
    with pytest.raises(SpecError) as info:
        parse_spec(s)
    paths = [line.split(":")[0] for line in info.value.errors]
    assert paths == [
        "models.rnn.match_parameters",
        "models.lstm.family",
        "train.eval_every",
        "search.space.momentum",
    ]


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("change", ["unknown key", "log bound <= 0", "unknown family"])
def test_run_with_a_bad_spec_exits_2_and_writes_nothing(change: str, tmp_path: Path) -> None:
    spec = _broken(change)
    spec["storage"] = str(tmp_path / "results")
    done = sweep("run", str(write_spec(tmp_path, spec)), timeout=60)
    assert done.returncode == 2
    assert BAD[change] in done.stderr
    assert all(line.startswith("sweep: error: ") for line in done.stderr.strip().splitlines())
    assert not (tmp_path / "results").exists()


def test_validate_accepts_a_good_spec(tmp_path: Path) -> None:
    done = sweep("validate", str(write_spec(tmp_path, tiny_spec(tmp_path))), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "6 cells x 4 trials" in done.stdout
    assert not (tmp_path / "results").exists()


def test_an_image_sweep_validates_and_its_levels_are_checked() -> None:
    spec = tiny_spec(Path("/nonexistent"), task="images", difficulties=["tiny", "medium"])
    spec["search"]["space"] = {"lr": {"loguniform": [1.0e-4, 1.0e-2]}}
    assert len(make_cells(parse_spec(spec))) == 6
    spec["difficulties"] = ["tiny", "paper-full"]
    with pytest.raises(SpecError, match=r"difficulties\[1\]: unknown level 'paper-full'"):
        parse_spec(spec)
