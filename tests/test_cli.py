"""The `sweep` console script, run as a real subprocess; its many bad-input cases run its
`main` in this process (`tests.support.cli`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.cli import sweep_here
from tests.support.sweeps import tiny_spec

SWEEP = [str(Path(sys.executable).with_name("sweep"))]


def sweep(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SWEEP, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_train_json_prints_the_final_record_on_the_last_line() -> None:
    args = [
        "--difficulty",
        "trivial",
        "--model",
        "plastic",
        "--episodes",
        "64",
        "--eval-every",
        "32",
    ]
    done = sweep("train", *args, "--json", "--seed", "7")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["model"] == "plastic" and record["seed"] == 7 and record["done"] is True
    assert record["episodes"] == 64 and record["num_parameters"] == 2 * 9 * 9 + 1
    for key in ("loss", "value", "wall_s", "episodes_per_second", "best_value", "final_value"):
        assert isinstance(record[key], float), key
    assert "episodes_to_solve" in record
    assert record["metric"] == "bit_error" and record["goal"] == "min"
    assert record["chance"] == 0.5 and record["solved_threshold"] > 0


@pytest.mark.parametrize(
    ("model", "param"),
    [("plastic", "modulation=retroactive"), ("plastic_lstm", "modulation=simple")],
)
def test_train_a_modulated_variant(model: str, param: str) -> None:
    """Backpropamine's variants train from the command line like any other model."""
    args = ["--difficulty", "paper-simplified", "--model", model, "--param", param]
    done = sweep("train", *args, "--episodes", "16", "--eval-every", "16", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["model"] == model and record["done"] is True and record["episodes"] == 16
    assert 0.0 <= record["final_value"] <= 1.0


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--task", "bandit"], ["'bandit'", "patterns, images, cue_reward, maze"]),
        (["--difficulty", "hardest"], ["'hardest'", "paper-full"]),
        (["--model", "transformer"], ["'transformer'", "plastic, rnn, lstm, gru"]),
        (["--episodes", "0"], ["--episodes=0"]),
        (["--batch-size", "-2"], ["--batch-size=-2"]),
        (["--lr", "0"], ["--lr=0.0"]),
        (["--hidden", "0"], ["hidden: 0"]),
        (["--episodes", "many"], ["'many'"]),
        (["--param", "rule=hebbian"], ["'hebbian'", "hebb, oja, additive", "did you mean 'hebb'"]),
        (["--param", "modulation=sideways"], ["'sideways'", "'none', 'simple' or 'retroactive'"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_training(
    args: list[str], names: list[str], tmp_path: Path
) -> None:
    base = {"--task": "patterns", "--difficulty": "trivial", "--model": "plastic"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    done = sweep_here("train", *[x for kv in base.items() for x in kv], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep: error:"), done.stderr
    for name in names:
        assert name in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written


HEAVY = {"torch", "ray", "pandas", "pyarrow", "optuna", "pydantic", "matplotlib"}
_IMPORTED = """
import sys
from sweep import cli
sys.argv = ["sweep", *sys.argv[1:]]
cli.main()
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["run", "-h"], ["validate", "--help"]])
def test_help_parses_before_importing_torch_or_ray(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTED, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout and "-h, --help" in done.stdout
    imported = set(done.stdout.strip().splitlines()[-1].split())
    assert not imported & HEAVY, imported & HEAVY


def test_train_help_lists_every_task_level_family_and_choice() -> None:
    from plastic_models.rules import REGISTRY as RULES
    from sweep.errors import annotation_at
    from sweep.models import FAMILIES
    from sweep.tasks import TASKS, levels

    done = sweep("train", "-h")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # help text wraps lines
    for task in TASKS:
        assert f"task {task} levels: {', '.join(levels(task))}" in text
    for name, family in FAMILIES.items():
        assert f"model {name}" in text
        for param in family.parameters:
            assert param in text
    assert f"rules {', '.join(RULES)}" in text  # the rule registry, plugins' rules included
    modulations = annotation_at(FAMILIES["plastic"].config, ["modulation"]).__args__
    assert f"modulation ({' | '.join(modulations)})" in text


def test_version_names_the_package_version_and_the_commit() -> None:
    from importlib.metadata import version

    from sweep.provenance import git_commit

    done = sweep("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"sweep (plasticity-sweeps) {version('plasticity-sweeps')}, commit {git_commit()}"
    )


def test_shell_completion_is_clicks_own() -> None:
    env = {**os.environ, "_SWEEP_COMPLETE": "bash_source"}
    script = subprocess.run(SWEEP, capture_output=True, text=True, env=env, timeout=60)
    assert "_sweep_completion" in script.stdout and "complete " in script.stdout
    env |= {"_SWEEP_COMPLETE": "bash_complete", "COMP_WORDS": "sweep train --model l"}
    env["COMP_CWORD"] = "3"
    words = subprocess.run(SWEEP, capture_output=True, text=True, env=env, timeout=60)
    assert words.stdout.split() == ["plain,lstm"]


def test_every_spec_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path)
    spec["max_concurent"] = 2
    spec["train"]["episdoes"] = 10
    spec["models"]["rnn"] = {"family": "rnn", "match_neurons": "nobody"}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = sweep("validate", str(path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "sweep: error: models.rnn.match_neurons: 'nobody' is not another model; "
        "valid: plastic, lstm",
        "sweep: error: train.episdoes: unknown key; did you mean 'episodes'?",
        "sweep: error: max_concurent: unknown key; did you mean 'max_concurrent'?",
    ]
    assert not (tmp_path / "results").exists()


def test_status_of_a_sweep_whose_spec_is_not_yaml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text("name: [\n")
    done = sweep_here("status", str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"sweep: error: {tmp_path}/spec.yaml: not valid YAML (line 2, column 1): "
        "expected the node content, but found '<stream end>'"
    ]
