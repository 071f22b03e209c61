"""Contract suites over the registries: every registered task at every level, every rule and
every model family meets the same checks, and the errors that name a bad one list the
registry's. A part a plugin registers is tested here without editing a list (the family
contract proper, shapes, gradients, pickling, is `test_model_contract.py`, over the same
registry)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from plastic_models import PlasticConfig, PlasticNetwork
from plastic_models.rules import REGISTRY, DecayRule, get_rule
from sweep.models import FAMILIES, get_family
from sweep.spec import SpecError, parse_spec
from sweep.store import GOALS, better, reached
from sweep.tasks import TASKS, levels, make_task, task_learner, task_metric
from sweep.train import TrainConfig, train_trial
from tests.support.registries import RULES, SUPERVISED_TASKS, TASK_NAMES
from tests.support.sweeps import tiny_spec

LEVELS = [(task, level) for task in TASK_NAMES for level in levels(task)]
SCALAR = (int, float, str, bool, type(None))


# -- tasks ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("task", "level"), LEVELS, ids=[f"{t}-{lv}" for t, lv in LEVELS])
def test_every_level_of_every_task_declares_what_its_rows_record(task: str, level: str) -> None:
    made = make_task(task, level)
    metric, goal = task_metric(task)  # read from the class, without building the task
    assert (made.metric, made.goal) == (metric, goal) and goal in GOALS
    assert made.level == level
    assert min(made.input_size, made.output_size, made.steps) > 0
    assert math.isfinite(made.chance) and math.isfinite(made.solved_threshold)
    assert better(made.solved_threshold, made.chance, goal)  # solving beats chance
    assert reached(made.solved_threshold, made.solved_threshold, goal)
    assert all(math.isfinite(v) for v in made.references.values())
    settings = made.settings()  # they become `task.*` columns: one scalar each
    assert settings and all(isinstance(v, SCALAR) for v in settings.values()), settings


@pytest.mark.parametrize("task", SUPERVISED_TASKS)
def test_a_supervised_task_samples_reproducibly_and_scores_its_outputs(task: str) -> None:
    made = make_task(task, levels(task)[0])
    a = made.sample(4, torch.Generator().manual_seed(3))
    b = made.sample(4, torch.Generator().manual_seed(3))
    assert a.inputs.shape == (made.steps, 4, made.input_size)
    assert a.targets.shape == (4, made.output_size)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    outputs = torch.zeros(made.steps, 4, made.output_size, requires_grad=True)
    loss = made.loss(outputs, a)
    loss.backward()
    assert loss.dim() == 0 and math.isfinite(loss.item()) and outputs.grad is not None
    assert math.isfinite(made.score(outputs.detach(), a))


@pytest.mark.parametrize("task", TASK_NAMES)
def test_a_short_trial_of_every_task_trains_and_reports(task: str) -> None:
    made = make_task(task, levels(task)[0])
    train = TrainConfig(episodes=8, batch_size=4, eval_every=4, eval_episodes=4)
    reports = list(train_trial(made, "rnn", {"hidden": 8}, train))
    assert [r.episodes for r in reports] == [4, 8] and reports[-1].done
    assert all(math.isfinite(r.value) and math.isfinite(r.loss) for r in reports)


def test_an_unknown_task_or_level_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError) as info:
        make_task("bandit", None)
    assert str(info.value) == f"unknown task 'bandit'; valid: {', '.join(TASKS)}"
    for task in TASKS:
        with pytest.raises(ValueError, match=re.escape(f"valid: {', '.join(levels(task))}")):
            make_task(task, "no-such-level")


def test_a_spec_can_name_every_task_and_each_of_its_levels() -> None:
    for task in TASKS:
        spec = parse_spec(tiny_spec(Path("/n"), task=task, difficulties=levels(task)))
        assert spec.difficulties == levels(task)
        assert spec.task == task and task_learner(spec.task) == task_learner(task)


# -- rules ------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", RULES)
def test_a_rule_updates_the_trace_in_place_of_its_shape_and_not_at_rate_zero(rule: str) -> None:
    made = get_rule(rule)
    assert made.name == rule
    g = torch.Generator().manual_seed(0)
    trace, x, y = (torch.randn(*s, generator=g) for s in ((3, 5, 5), (3, 5), (3, 5)))
    rate = torch.full((3, 1, 1), 0.1)
    updated = made.update(trace, x, y, rate)
    assert updated.shape == trace.shape and torch.isfinite(updated).all()
    assert not torch.equal(updated, trace)
    assert torch.equal(made.update(trace, x, y, torch.zeros_like(rate)), trace)


# decay rules whose decay depends on the postsynaptic activity (Oja's): a hand-derived slope
SHRINKING = [
    name for name, rule in REGISTRY.items() if isinstance(rule, DecayRule) and rule.constant is None
]


@pytest.mark.parametrize("rule", SHRINKING)
def test_a_rules_hand_derived_slope_is_its_shrinks_derivative(rule: str) -> None:
    made = REGISTRY[rule]
    assert isinstance(made, DecayRule)
    y = torch.randn(4, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y.requires_grad_(True)
    (slope,) = torch.autograd.grad(made.shrink(y).sum(), y)
    assert torch.allclose(made.shrink_slope(y.detach()), slope, atol=1e-12)


@pytest.mark.parametrize("rule", RULES)
def test_a_plastic_network_learns_with_every_rule(rule: str) -> None:
    """One gradient step through a whole episode reaches every parameter and lowers a loss."""
    net = PlasticNetwork(6, 4, PlasticConfig(rule=rule, init_scale=0.3, alpha_scale=0.3))
    net.reset_parameters(torch.Generator().manual_seed(0))
    inputs = torch.randn(5, 3, 6, generator=torch.Generator().manual_seed(1))
    target = torch.linspace(-1, 1, 4)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.05)
    losses = []
    for _ in range(2):
        optimiser.zero_grad()
        loss = ((net(inputs)[-1] - target) ** 2).mean()
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
        optimiser.step()
        losses.append(loss.item())
    assert losses[1] < losses[0]


def test_an_unknown_rule_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError) as info:
        get_rule("hebbb")
    assert str(info.value).startswith(f"unknown rule 'hebbb'; valid: {', '.join(REGISTRY)}")


def test_a_spec_can_search_every_rule() -> None:
    search = tiny_spec(Path("/n"))["search"]
    search["space"]["rule"] = {"choice": RULES}
    spec = parse_spec(tiny_spec(Path("/n"), search=search))
    assert spec.search.space["rule"].choice == RULES


# -- model families -------------------------------------------------------------------------
def test_a_spec_can_name_every_family() -> None:
    models = {name: {"family": name} for name in FAMILIES}
    space = {"lr": {"loguniform": [1.0e-4, 1.0e-2]}}
    spec = parse_spec(tiny_spec(Path("/n"), models=models, search={"space": space}))
    assert {m.family for m in spec.models.values()} == set(FAMILIES)
    assert all(get_family(name).name == name for name in FAMILIES)


def test_an_unknown_family_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError) as info:
        get_family("transformer")
    assert str(info.value) == f"unknown model family 'transformer'; valid: {', '.join(FAMILIES)}"
    spec = tiny_spec(Path("/n"))
    spec["models"]["lstm"]["family"] = "transformer"
    with pytest.raises(SpecError) as error:
        parse_spec(spec)
    expected = f"models.lstm.family: unknown family 'transformer'; valid: {', '.join(FAMILIES)}"
    assert expected in error.value.errors
