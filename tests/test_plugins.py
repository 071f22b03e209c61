"""A researcher's own rule, from a module named in the spec: validated, shipped to Ray workers,
swept end to end."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from plastic_models.rules import REGISTRY
from sweep import plugins
from sweep.models import FAMILIES
from tests.support.plugins import RULE
from tests.support.sweeps import sweep, tiny_spec, write_spec

FAMILY = """
from functools import partial

from baselines import BaselineConfig, RecurrentBaseline
from sweep.models import register_family

register_family("{name}", BaselineConfig, partial(RecurrentBaseline, "gru"))
"""


@pytest.fixture(autouse=True)
def _registries_restored() -> Iterator[None]:
    """What a test registers in this process is gone after it (a test elsewhere compares the
    registries with a fresh process's)."""
    rules, families = dict(REGISTRY), dict(FAMILIES)
    yield
    REGISTRY.clear()
    REGISTRY.update(rules)
    FAMILIES.clear()
    FAMILIES.update(families)


def _package(root: Path, package: str, modules: dict[str, str]) -> None:
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    for name, text in modules.items():
        (root / package / f"{name}.py").write_text(textwrap.dedent(text))


def test_a_module_beside_the_spec_registers_a_rule_and_a_family(tmp_path: Path) -> None:
    rules = RULE.replace('"covariance"', '"covariance_a"')
    _package(tmp_path, "lab_a", {"rules": rules, "families": FAMILY.format(name="gru_a")})
    assert plugins.load(["lab_a.rules", "lab_a/families.py"], str(tmp_path)) == []
    assert "covariance_a" in REGISTRY and "gru_a" in FAMILIES
    env = plugins.runtime_env(["lab_a.rules", "lab_a/families.py"])
    assert [m.__name__ for m in env["py_modules"]] == ["lab_a"]  # the package, shipped once
    assert env["env_vars"] == {plugins.ENV_VAR: "lab_a.rules,lab_a.families"}


def test_missing_module_and_registration_error_are_one_line_each(tmp_path: Path) -> None:
    clash = RULE.replace('"covariance"', '"hebb"')
    _package(tmp_path, "lab_b", {"clash": clash, "broken": "import not_a_real_dependency\n"})
    errors = plugins.load(["lab_b.nothing", "lab_b.clash", "lab_b.broken", "a b"], str(tmp_path))
    assert len(errors) == 4
    assert errors[0].startswith("plugins[0]: 'lab_b.nothing': no module 'lab_b.nothing' in ")
    assert "rule 'hebb' is already registered by plastic_models.rules.Hebb" in errors[1]
    assert "No module named 'not_a_real_dependency'" in errors[2]
    assert errors[3] == "plugins[3]: 'a b': not a module name or a .py path"
    assert all("\n" not in e for e in errors)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [("lab_c.missing", "no module 'lab_c.missing'"), ("lab_c.clash", "already registered")],
)
def test_validate_exits_2_with_one_line(entry: str, expected: str, tmp_path: Path) -> None:
    _package(tmp_path, "lab_c", {"clash": RULE.replace('"covariance"', '"oja"')})
    path = write_spec(tmp_path, tiny_spec(tmp_path, plugins=[entry]))
    done = sweep("validate", str(path))
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep: error: plugins[0]: ")
    assert expected in lines[0]


LEAKY = """
from pydantic import PositiveInt
from pydantic.dataclasses import dataclass

from baselines import RecurrentBaseline
from sweep.models import register_family


@dataclass(frozen=True)
class LeakyConfig:
    hidden: PositiveInt = 16
    leak: float = 0.25  # a hyperparameter no built-in family has


def build(input_size, output_size, config):
    return RecurrentBaseline("gru", input_size, output_size, config)


register_family("leaky", LeakyConfig, build)
"""


@pytest.mark.slow
def test_a_sweep_with_a_custom_rule_runs_on_embedded_ray(tmp_path: Path) -> None:
    """The rule exists only in the plugin (outside the working directory): a worker that did
    not import it could not even build the model. The stored spec can be resumed elsewhere.
    A plugin family's own hyperparameters get their trials columns."""
    _package(tmp_path, "mylab", {"rules": RULE, "leaky": LEAKY})
    spec = tiny_spec(tmp_path, name="custom", plugins=["mylab.rules", "mylab.leaky"])
    spec["difficulties"] = ["trivial"]
    spec["models"] = {
        "plastic": {"family": "plastic", "rule": "covariance"},
        "leaky": {"family": "leaky", "leak": 0.5},
    }
    spec["search"]["space"] = {"lr": {"loguniform": [1.0e-3, 1.0e-2]}}
    spec["train"]["episodes"] = 100
    spec["confirm"] = {"seeds": 1}
    path = write_spec(tmp_path, spec)
    assert sweep("validate", str(path)).returncode == 0
    done = sweep("run", str(path), "--num-cpus", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "results" / "custom"
    trials = pd.read_parquet(folder / "trials")
    assert len(trials) == 6 and set(trials["status"]) == {"completed"}, trials["error"].tolist()
    leaky = trials[trials["family"] == "leaky"]
    assert leaky["hp.leak"].tolist() == [0.5] * 3 and trials["hp.leak"].isna().sum() == 3
    stored = yaml.safe_load((folder / "spec.yaml").read_text())
    assert stored["plugins"] == ["mylab.rules", "mylab.leaky"]
    assert stored["plugin_root"] == str(tmp_path)
