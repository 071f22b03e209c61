"""Property-based (Hypothesis): however a valid spec is broken — keys deleted or misspelled,
values of the wrong type, names swapped, random YAML — validation answers with one line per
error, each with its path, and never a traceback; `sweep run` exits 2 and writes nothing."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from sweep.spec import SpecError, load_spec, parse_spec
from tests.support.cli import sweep_here
from tests.support.sweeps import tiny_spec

STORAGE = Path("/nonexistent/storage")
# Names a user might swap in: other sections' keys, models, families, levels, tasks, rules.
NAMES = [
    *tiny_spec(STORAGE),
    *tiny_spec(STORAGE)["search"],
    "plastic", "rnn", "lstm", "gru", "hebb", "oja", "patterns", "images",
    "trivial", "tiny", "paper-full", "huge", "episodes", "hidden", "lr", "eta", "none",
]  # fmt: skip
_LINE = re.compile(r"^\S[^\n]*: \S[^\n]*$")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(NAMES),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.one_of(st.sampled_from(NAMES), st.text(max_size=6), st.integers()), inner, max_size=3
        )
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key / index path inside a spec."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


def _parent(spec: Any, where: tuple[Any, ...]) -> Any:
    for part in where[:-1]:
        spec = spec[part]
    return spec


def _misspell(name: Any, data: st.DataObject) -> Any:
    text = str(name)
    if len(text) < 2:
        return text + "x"
    i = data.draw(st.integers(0, len(text) - 2))
    edit = data.draw(st.sampled_from(["swap", "drop", "double"]))
    if edit == "swap":
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if edit == "drop":
        return text[:i] + text[i + 1 :]
    return text[: i + 1] + text[i:]


def _mutate(spec: dict[str, Any], data: st.DataObject) -> None:
    where = data.draw(st.sampled_from(_paths(spec)))
    parent, last = _parent(spec, where), where[-1]
    kind = data.draw(st.sampled_from(["delete", "wrong type", "misspell key", "swap name"]))
    if kind == "delete":
        del parent[last]
    elif kind == "wrong type":
        parent[last] = data.draw(values)
    elif kind == "misspell key" and isinstance(parent, dict):
        parent[_misspell(last, data)] = parent.pop(last)
    else:
        parent[last] = data.draw(st.sampled_from(NAMES))


broken_specs = st.data()


def _check(errors: list[str]) -> None:
    assert errors
    for line in errors:
        assert _LINE.match(line), line


def _parse(raw: Any) -> list[str]:
    """The errors of a spec ([] when it is valid); any other exception fails the test."""
    try:
        parse_spec(raw)
    except SpecError as e:
        return e.errors
    return []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=broken_specs)
def test_a_mutated_spec_gets_one_line_per_error(data: st.DataObject) -> None:
    spec = tiny_spec(STORAGE)
    for _ in range(data.draw(st.integers(1, 3))):
        if _paths(spec):
            _mutate(spec, data)
    errors = _parse(copy.deepcopy(spec))
    if errors:
        _check(errors)
    assert not STORAGE.exists()


@settings(max_examples=200, deadline=None)
@given(raw=values)
def test_random_data_as_a_spec_gets_one_line_per_error(raw: Any) -> None:
    _check(_parse(raw))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(repr)))
def test_random_yaml_text_gets_one_line_per_error(text: str, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    try:
        load_spec(path)
    except SpecError as e:
        _check(e.errors)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(section=st.sampled_from(sorted(tiny_spec(STORAGE))), value=values)
def test_random_yaml_in_any_section_gets_one_line_per_error(section: str, value: Any) -> None:
    spec = tiny_spec(STORAGE)
    spec[section] = value
    text = yaml.safe_dump(spec)
    errors = _parse(yaml.safe_load(text))
    if errors:
        _check(errors)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    # `sweep run` itself (its `main`, in this process: `tests.support.cli`), no shrinking
    # and the same examples every run; the tests above explore widely.
    phases=[Phase.explicit, Phase.generate],
    derandomize=True,
)
@given(data=broken_specs)
def test_sweep_run_of_a_broken_spec_exits_2_and_writes_nothing(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    spec = tiny_spec(tmp)
    for _ in range(data.draw(st.integers(1, 3))):
        if _paths(spec):
            _mutate(spec, data)
    spec["storage"] = str(tmp / "results")  # a mutation must not send it elsewhere
    errors = _parse(copy.deepcopy(spec))
    assume(errors)  # a mutation that leaves the spec valid would start a real sweep
    path = tmp / "broken.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))  # errors come in the spec's order
    done = sweep_here("run", str(path))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert lines == [f"sweep: error: {e}" for e in errors]
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert not (tmp / "results").exists()
