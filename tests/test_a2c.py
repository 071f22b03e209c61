"""Training on the reward tasks by advantage actor-critic, in the same `Trial` as the
supervised tasks: every family plays, the same seed gives the same numbers, a restored trial
continues exactly, best and solved follow the metric's goal (higher reward is better)."""

from __future__ import annotations

import io
import math
from typing import Any, Literal

import pytest
import torch

from sweep.learners.a2c import A2C, A2CSettings, Rollout, discounted_returns, play, sample
from sweep.models import build_model
from sweep.tasks import levels, make_task
from sweep.train import TrainConfig, Trial, train_trial
from tests.support.registries import REWARD_TASKS

SHORT = {"maze": {"steps": 12}, "cue_reward": {"steps": 12}}  # others: their easiest level
SETTINGS: dict[str, Any] = {"episodes": 12, "batch_size": 4, "eval_every": 8, "eval_episodes": 4}
VARIANTS = [
    ("plastic", {"modulation": "none"}),
    ("plastic", {"modulation": "simple", "hidden": 8}),
    ("plastic", {"modulation": "retroactive", "hidden": 8, "rule": "oja"}),
    ("plastic", {"modulation": "simple", "hidden": 8, "rule": "additive", "fanout": True}),
    ("plastic_lstm", {"hidden": 8, "modulation": "retroactive"}),
    ("rnn", {"hidden": 8}),
    ("lstm", {"hidden": 8}),
    ("gru", {"hidden": 8}),
]


def _task(name: str) -> Any:
    return make_task(name, levels(name)[0], SHORT.get(name, {}))


@pytest.mark.parametrize("task", REWARD_TASKS)
@pytest.mark.parametrize(("family", "params"), VARIANTS)
def test_every_family_plays_reports_and_updates_its_parameters(
    task: str, family: str, params: dict[str, Any]
) -> None:
    made = _task(task)
    reports = list(train_trial(made, family, params, TrainConfig(**SETTINGS)))
    assert [r.episodes for r in reports] == [8, 12]
    last = reports[-1]
    assert last.done and last.final_value == last.value and math.isfinite(last.loss)
    assert last.best_value == max(r.value for r in reports)  # higher reward is better
    model = build_model(family, made.input_size, made.output_size, params, device="cpu")
    before = [p.detach().clone() for p in model.parameters()]
    trial = Trial(made, family, params, TrainConfig(**{**SETTINGS, "episodes": 4}))
    trial.model.load_state_dict(model.state_dict())
    list(trial.reports())
    moved = [not torch.equal(a, b) for a, b in zip(before, trial.model.parameters(), strict=True)]
    assert any(moved)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("family", "params"),
    [("rnn", {"hidden": 8}), ("plastic", {"modulation": "simple", "hidden": 8})],
)
def test_a2c_learns_from_reward_alone(family: str, params: dict[str, Any]) -> None:
    """Cue-reward where responding off the Go step costs 0.1: a random policy loses about 1
    per episode (the task's measured chance). The reward is the only signal; 256 episodes of
    A2C (fixed seed) must win back most of that loss."""
    task = make_task("cue_reward", "tiny", {"steps": 20, "action_penalty": 0.1})
    train = TrainConfig(episodes=256, batch_size=16, eval_every=128, eval_episodes=64, lr=3e-2)
    reports = list(train_trial(task, family, params, train))
    assert task.chance < -1.0
    assert reports[-1].value > task.chance + 0.75, [r.value for r in reports]
    assert reports[-1].value > reports[0].value  # better than half way


def _numbers(reports: list[Any]) -> list[dict[str, Any]]:
    timing = ("wall_s", "episodes_per_second")
    return [{k: v for k, v in r.to_dict().items() if k not in timing} for r in reports]


def test_same_seed_same_numbers_and_a_restored_trial_continues_exactly() -> None:
    task = _task("maze")
    params = {"modulation": "simple", "hidden": 8}
    train = TrainConfig(**{**SETTINGS, "episodes": 24, "seed": 5})
    whole = _numbers(list(train_trial(task, "plastic", params, train)))
    assert whole == _numbers(list(train_trial(task, "plastic", params, train)))
    other = TrainConfig(**{**SETTINGS, "episodes": 24, "seed": 6})
    assert whole != _numbers(list(train_trial(task, "plastic", params, other)))
    first = Trial(task, "plastic", params, train)
    head = next(first.reports())
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)  # as a checkpoint travels
    buffer.seek(0)
    resumed = Trial(task, "plastic", params, train)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    assert _numbers([head, *resumed.reports()]) == whole


def test_discounted_returns_from_the_definition() -> None:
    rewards = torch.tensor([[1.0, 0.0], [0.0, 10.0], [2.0, 0.0]])  # (T, B)
    gamma = 0.9
    expected = [[1 + 0.81 * 2, 9.0], [0.9 * 2, 10.0], [2.0, 0.0]]
    assert torch.allclose(discounted_returns(rewards, gamma), torch.tensor(expected))


@pytest.mark.parametrize("form", ["shannon", "simpson"])
def test_a2c_loss_from_its_terms(form: Literal["shannon", "simpson"]) -> None:
    """Mean over steps and episodes of -log pi * (R - V) (advantage held fixed) +
    value_coef (R - V)^2 - entropy_coef H (shannon) or + entropy_coef sum p^2 (simpson, the
    Backpropamine code's `bent * y.pow(2).sum()`), term by term."""
    g = torch.Generator().manual_seed(0)
    t, b = 5, 3
    values = torch.randn(t, b, generator=g, requires_grad=True)
    plain_v = values.detach()
    log_probs = torch.randn(t, b, generator=g, requires_grad=True)
    entropies = torch.rand(t, b, generator=g)
    concentrations = torch.rand(t, b, generator=g)
    rewards = torch.randn(t, b, generator=g)
    a2c = A2C(A2CSettings(gamma=0.8, entropy_coef=0.05, value_coef=0.3, entropy=form))
    loss = a2c.rollout_loss(Rollout(log_probs, entropies, concentrations, values, rewards))
    explore = -entropies if form == "shannon" else concentrations
    total = 0.0
    for j in range(b):
        for i in range(t):
            ret = sum(0.8**k * float(rewards[i + k, j]) for k in range(t - i))
            adv = ret - float(plain_v[i, j])
            total += (
                -float(log_probs.detach()[i, j]) * adv + 0.3 * adv**2 + 0.05 * float(explore[i, j])
            )
    assert loss.item() == pytest.approx(total / (t * b), rel=1e-5)
    loss.backward()
    assert values.grad is not None and log_probs.grad is not None
    # the policy term does not train the value: d loss / d V is the value term's only
    returns = discounted_returns(rewards, 0.8)
    expected = -2 * 0.3 * (returns - values.detach()) / (t * b)
    assert torch.allclose(values.grad, expected, atol=1e-6)


def test_members_losses_are_each_learners_own_bit_for_bit() -> None:
    """A population's losses, computed for all its members at once (`rollout_losses`), are
    each member's `rollout_loss` of its own (T, B), with its own gamma, coefficients and
    exploration form: the same numbers and the same gradients."""
    g = torch.Generator().manual_seed(0)
    t, k, b = 7, 3, 5
    parts = [torch.randn(t, k, b, generator=g) for _ in range(5)]
    learners = [
        A2C(A2CSettings(gamma=0.9, entropy_coef=0.03, value_coef=0.1, entropy="shannon")),
        A2C(A2CSettings(gamma=0.7, entropy_coef=0.2, value_coef=0.5, entropy="simpson")),
        A2C(A2CSettings(gamma=1.0, entropy_coef=0.0, value_coef=0.3, entropy="shannon")),
    ]
    together = [p.clone().requires_grad_() for p in parts]
    losses = A2C.rollout_losses(learners, Rollout(*together))
    losses.sum().backward()
    for m, learner in enumerate(learners):
        alone = [p[:, m].clone().requires_grad_() for p in parts]
        loss = learner.rollout_loss(Rollout(*alone))
        loss.backward()
        assert torch.equal(losses[m], loss)
        for x, y in zip(together, alone, strict=True):
            assert x.grad is not None
            # a term a member does not use (the other exploration form) gets no gradient
            expected = torch.zeros(t, b) if y.grad is None else y.grad
            assert torch.equal(x.grad[:, m], expected)


def test_sample_draws_what_multinomial_draws() -> None:
    """`sample` gives each member the actions `torch.multinomial` gives with its generator,
    and leaves each generator where `multinomial` leaves it."""
    probs = torch.softmax(3 * torch.randn(4, 64, 5, generator=torch.Generator().manual_seed(0)), -1)
    probs[0, :, 1] = 0.0  # an action a policy never takes
    ours = [torch.Generator().manual_seed(10 + m) for m in range(4)]
    theirs = [torch.Generator().manual_seed(10 + m) for m in range(4)]
    for _ in range(3):
        actions = sample(probs, ours)
        for m, generator in enumerate(theirs):
            expected = torch.multinomial(probs[m], 1, generator=generator).squeeze(1)
            assert torch.equal(actions[m], expected)
    assert (actions[0] != 1).all()
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a.get_state(), b.get_state())


def test_actions_are_sampled_from_the_policy_with_the_given_generator() -> None:
    task = _task("cue_reward")
    model = build_model("rnn", task.input_size, task.output_size, {"hidden": 8}, device="cpu")
    model.reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = play(model, task, 64, torch.Generator().manual_seed(1))
        b = play(model, task, 64, torch.Generator().manual_seed(1))
    assert torch.equal(a.rewards, b.rewards) and torch.equal(a.log_probs, b.log_probs)
    # an untrained policy is near uniform over the two actions
    assert a.entropies.mean().item() == pytest.approx(math.log(2), abs=0.05)


def test_a_reward_trial_is_solved_at_or_above_its_threshold() -> None:
    task = _task("maze")
    trial = Trial(task, "rnn", {"hidden": 8}, TrainConfig(**SETTINGS))
    reports = list(trial.reports())
    solved = [r.episodes for r in reports if r.value >= task.solved_threshold]
    assert reports[-1].episodes_to_solve == (solved[0] if solved else None)


def test_a_reward_task_trains_with_one_worker() -> None:
    from sweep.train import Ranks

    with pytest.raises(ValueError, match="trains with one worker, not 2"):
        Trial(_task("maze"), "rnn", {"hidden": 8}, TrainConfig(**SETTINGS), Ranks(0, 2))
