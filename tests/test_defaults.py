"""The published methods' defaults (README, "Parity with the reference code"): every row of
the parity table that is a default, pinned; and the resolved values reach what a trial runs
and what its row records."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from plastic_models import PlasticLSTM, PlasticLSTMConfig, PlasticNetwork
from sweep.defaults import BACKPROPAMINE, model_defaults, resolve_model
from sweep.learners import learner_of, settings_in_effect
from sweep.models import make_config
from sweep.plan import make_cells, trial_config
from sweep.spec import parse_spec_text
from sweep.tasks import make_task
from sweep.train import TRAIN_FIELDS, TrainConfig

# (task, level, given) -> the plastic network's settings in effect
PLASTIC = [
    # the 2018 tasks: the 2018 code (decay rule, N(0, 1) init, direct architecture)
    ("patterns", "tiny", {}, {"rule": "hebb", "init": "normal", "hidden": None, "clip": None}),
    ("images", "tiny", {}, {"rule": "hebb", "init": "normal", "hidden": None}),
    # Backpropamine's variants on any task: simple is additive, retroactive's E decays
    (
        "patterns",
        "tiny",
        {"modulation": "simple"},
        {"rule": "additive", "init": "uniform", "clip": 1.0},
    ),
    (
        "patterns",
        "tiny",
        {"modulation": "retroactive"},
        {"rule": "hebb", "init": "uniform", "clip": 1.0},
    ),
    ("patterns", "tiny", {"rule": "additive"}, {"rule": "additive", "clip": 1.0}),
    ("patterns", "tiny", {"modulation": "simple", "clip": 2.0}, {"clip": 2.0}),
    # the reward tasks: Backpropamine's plastic network, with a hidden layer
    ("maze", "backpropamine", {}, {"rule": "additive", "eta": 0.01, "hidden": 100, "clip": 1.0}),
    ("maze", "tiny", {"modulation": "simple"}, {"rule": "additive", "hidden": 38}),
    ("cue_reward", "backpropamine", {}, {"rule": "additive", "eta": 0.1, "hidden": 200}),
    # what the user gives wins
    ("maze", "tiny", {"modulation": "simple", "rule": "hebb"}, {"rule": "hebb"}),
    ("maze", "tiny", {"hidden": 7, "init": "normal"}, {"hidden": 7, "init": "normal"}),
]


@pytest.mark.parametrize(("task", "level", "given", "expected"), PLASTIC)
def test_the_plastic_network_gets_its_variants_reference_defaults(
    task: str, level: str, given: dict[str, Any], expected: dict[str, Any]
) -> None:
    made = make_task(task, level)
    config = make_config("plastic", resolve_model(made.method, "plastic", given))  # type: ignore[attr-defined]
    assert {k: getattr(config, k) for k in expected} == expected


def test_simple_modulation_runs_the_additive_form_clipped_at_one() -> None:
    """Backpropamine maze/batch.py (`addpw 3`): H <- clip(H + M(t) y(t) x(t-1)^T, -1, 1), from
    the equation, one step at a time."""
    task = make_task("patterns", "tiny")
    params = resolve_model(task.method, "plastic", {"modulation": "simple"})  # type: ignore[attr-defined]
    net = PlasticNetwork(5, 5, make_config("plastic", params))
    net.reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert net.modulator is not None
        net.modulator.source.weight.fill_(3.0)  # |M| near 1: a decay form would erase
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1)) * 3
    state = net.initial_state(4, "cpu")
    hebb = torch.zeros(4, 5, 5)
    prev = torch.zeros(4, 5)
    with torch.no_grad():
        for x_t in x.unsqueeze(1).expand(4, 4, 5):
            _, state = net.step(x_t, state)
            y = state[0]
            m = torch.tanh(net.modulator.source(y)).view(4, 1, 1)
            hebb = torch.clamp(hebb + m * prev.unsqueeze(2) * y.unsqueeze(1), -1, 1)
            prev = y
            assert torch.allclose(state[1], hebb, atol=1e-6)
    assert net.w.min() >= 0 and net.alpha.min() >= 0  # 0.01 U[0, 1)


def test_the_plastic_lstm_defaults_are_the_language_models() -> None:
    """backpropamine awd-lstm-lm/mylstm.py: cliptype clip at 2.0, modulout fanout, alpha per
    neuron ~ 1e-4 U[0, 1); main.py divides alpha's gradient by --agdiv (about H)."""
    config = PlasticLSTMConfig()
    assert (config.rule, config.clip, config.fanout, config.alpha) == (
        "additive",
        2.0,
        True,
        "neuron",
    )
    assert (config.init, config.alpha_scale, config.eta) == ("uniform", 1e-4, 0.01)
    net = PlasticLSTM(3, 2, PlasticLSTMConfig(hidden=8))
    net.reset_parameters(torch.Generator().manual_seed(0))
    assert net.alpha.min().item() >= 0 and net.alpha.max().item() < 1e-4
    x = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(1))
    grads = []
    for scale in (None, 1.0):
        other = PlasticLSTM(3, 2, PlasticLSTMConfig(hidden=8, alpha_grad_scale=scale))
        other.load_state_dict(net.state_dict())
        with torch.no_grad():
            other.alpha.fill_(0.5)  # large enough for the traces to matter
        other(x).square().sum().backward()
        assert other.alpha.grad is not None
        grads.append(other.alpha.grad)
    assert torch.allclose(grads[0], grads[1] / 8, rtol=1e-5, atol=1e-12)
    assert grads[1].abs().sum() > 0


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("patterns", {"adam_eps": 1e-8, "batch_size": 16}),
        (
            "maze",
            {
                "batch_size": 30,
                "adam_eps": 1e-4,
                "grad_clip": 4.0,
                "entropy": "simpson",
                "entropy_coef": 0.03,
                "value_coef": 0.1,
                "gamma": 0.9,
            },
        ),
        (
            "cue_reward",
            {"batch_size": 30, "adam_eps": 1e-6, "grad_clip": 2.0, "entropy_coef": 0.1},
        ),
    ],
)
def test_each_task_brings_its_references_training_settings(
    task: str, expected: dict[str, Any]
) -> None:
    """Training settings and the task's learner's (A2C's for the reward tasks only)."""
    made = make_task(task, "tiny")
    values = made.method.train  # type: ignore[attr-defined]
    train = TrainConfig(**{k: v for k, v in values.items() if k in TRAIN_FIELDS})
    settings = {**dataclasses.asdict(train), **settings_in_effect(learner_of(made), values)}
    assert {k: settings[k] for k in expected} == expected
    assert ("entropy" in settings) == (task != "patterns")
    assert made.method.source == (BACKPROPAMINE if task != "patterns" else "miconi2018")  # type: ignore[attr-defined]


def _spec(models: str, space: str = "{}") -> str:
    return f"""
name: d
storage: /tmp/unused
task: maze
difficulties: [tiny]
models: {models}
train: {{episodes: 60, eval_every: 30, eval_episodes: 4}}
search: {{trials_per_cell: 1, space: {space}}}
early_stop: none
confirm: {{seeds: 1}}
"""


def test_a_trial_records_the_resolved_rule_and_the_spec_still_wins() -> None:
    spec = parse_spec_text(
        _spec(
            "{mod: {family: plastic, modulation: simple}, "
            "decay: {family: plastic, modulation: simple, rule: hebb}, "
            "lstm: {family: lstm, match_parameters: mod}}",
            "{lr: {loguniform: [1.0e-4, 1.0e-2]}}",
        ),
        "test",
    )
    cells = {c.model: c for c in make_cells(spec)}
    mod = trial_config(spec, cells["mod"], "search", 0, 1, {"lr": 1e-3})
    assert mod.model_params["rule"] == "additive" and mod.model_params["hidden"] == 38
    assert mod.train["batch_size"] == 30 and mod.learner_settings["entropy"] == "simpson"
    assert mod.train["lr"] == 1e-3  # the searched value
    decay = trial_config(spec, cells["decay"], "search", 0, 1, {"lr": 1e-3})
    assert decay.model_params["rule"] == "hebb"  # named in the spec: the rejected form runs
    # matched to the network the trial runs (hidden 38), not to the direct architecture
    lstm = trial_config(spec, cells["lstm"], "search", 0, 1, {"lr": 1e-3})
    assert lstm.model_params["hidden"] > 10


def test_a_searched_modulation_resolves_the_rule_per_trial() -> None:
    spec = parse_spec_text(
        _spec("{p: {family: plastic}}", "{modulation: {choice: [none, simple, retroactive]}}"),
        "test",
    )
    (cell,) = make_cells(spec)
    rules = {
        m: trial_config(spec, cell, "search", 0, 1, {"modulation": m}).model_params["rule"]
        for m in ("none", "simple", "retroactive")
    }
    assert rules == {"none": "additive", "simple": "additive", "retroactive": "hebb"}
    assert model_defaults(make_task("patterns", "tiny").method, "lstm", {}) == {}  # type: ignore[attr-defined]
