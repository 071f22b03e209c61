"""Populations (issue #22): K members of a family trained as one model give each member what
its lone model gives, for every family and variant, batched and member by member."""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from plastic_models.checkpointed import SHORT_EPISODE, segment_length
from plastic_models.fast import driver
from plastic_models.members import PlasticNetworkMembers
from plastic_models.rules import REGISTRY
from sweep.members import BATCHED, Batched, LoopMembers, Members, Stacked, can_batch, stack_members
from sweep.models import FAMILIES, build_model, step_unrolled
from sweep.train import seeded
from tests.support.plugins import RULE
from tests.support.registries import ALPHAS, MODULATIONS, RULES

T, K, B, IN, OUT = 5, 3, 2, 6, 4
PLUGIN = "covariance_members"  # the README's example rule, registered by `plugin_rule`
SEEDS = [3, 1, 4]


@pytest.fixture(scope="module", autouse=True)
def plugin_rule() -> Iterator[None]:
    """The README's rule as a researcher writes it, under its own name, for this module."""
    exec(RULE.replace('"covariance"', f'"{PLUGIN}"'), {"__name__": "members_plugin"})
    yield
    REGISTRY.pop(PLUGIN, None)


def vary(**per_member: list[Any]) -> list[dict[str, Any]]:
    """K members' settings: member k takes the k-th value of each list."""
    return [{name: values[k] for name, values in per_member.items()} for k in range(K)]


def plastic(**shape: Any) -> list[dict[str, Any]]:
    """Members of one plastic shape that differ in eta, clip and init scales."""
    return [
        {**shape, **member}
        for member in vary(
            eta=[0.05, 0.3, 0.1],
            clip=[None, 0.5, 2.0],
            init_scale=[0.3, 0.5, 0.2],
            alpha_scale=[0.3, 0.1, 0.5],
        )
    ]


def plastic_lstm(**shape: Any) -> list[dict[str, Any]]:
    return [
        {"hidden": 5, "alpha_scale": 0.3, **shape, **member}
        for member in vary(eta=[0.05, 0.3, 0.1], alpha_grad_scale=[None, 1.0, 0.5])
    ]


RULE_NAMES = [*RULES, PLUGIN]
VARIANTS: list[tuple[str, list[dict[str, Any]]]] = [
    *[(cell, [{"hidden": 5}] * K) for cell in ("rnn", "lstm", "gru")],
    *[  # every rule under every modulation, and every alpha granularity under each
        ("plastic", plastic(hidden=5, rule=rule, modulation=modulation, alpha=ALPHAS[(i + j) % 3]))
        for i, rule in enumerate(RULE_NAMES)
        for j, modulation in enumerate(MODULATIONS)
    ],
    ("plastic", plastic(hidden=5, modulation="simple", fanout=True)),
    ("plastic", plastic(hidden=5, modulation="retroactive", fanout=True, rule=PLUGIN)),
    ("plastic", plastic(hidden=5, learn_eta=False)),
    ("plastic", plastic(hidden=5, learn_eta=False, modulation="retroactive", rule="oja")),
    ("plastic", [{"init_scale": 0.3, "alpha_scale": 0.3}] * K),  # direct, members alike
    ("plastic", plastic(input_mode="clamp", rule="oja")),  # direct
    ("plastic", plastic(modulation="simple", alpha="neuron")),  # direct
    *[
        ("plastic_lstm", plastic_lstm(rule=rule, modulation=modulation, alpha=alpha))
        for rule, alpha in zip(RULE_NAMES, [*ALPHAS, "neuron"], strict=True)
        for modulation in MODULATIONS
    ],
    ("plastic_lstm", plastic_lstm(modulation="simple", fanout=False, learn_eta=False)),
    ("plastic_lstm", [{"hidden": 5, "alpha_scale": 0.3, "alpha_grad_scale": 0.5}] * K),
]


def name(variant: tuple[str, list[dict[str, Any]]]) -> str:
    family, params = variant
    shape = {k: v for k, v in params[0].items() if k not in ("eta", "clip", "alpha_grad_scale")}
    return f"{family}-" + "-".join(f"{v}" for k, v in shape.items() if "scale" not in k)


def lone(family: str, params: dict[str, Any], seed: int) -> Any:
    """A lone trial's model: built and reset exactly as a trial does."""
    model = build_model(family, IN, OUT, params, device="cpu")
    model.reset_parameters(seeded(seed, 0))
    return model


def population(family: str, params: list[dict[str, Any]], batched: bool = True) -> Members:
    return stack_members(family, IN, OUT, params, [seeded(s, 0) for s in SEEDS], batched=batched)


def data(steps: int = T) -> tuple[Tensor, Tensor]:
    """Each member's own inputs (T, K, B, I) and a random readout of its outputs (T, K, B, O);
    a few inputs zero so that clamping leaves those neurons free (two read ones every other
    step, so that a clamped network's outputs depend on its parameters)."""
    g = torch.Generator().manual_seed(7)
    inputs = torch.randn(steps, K, B, IN, generator=g)
    inputs[:, :, :, -2:] = 0
    inputs[1::2, :, :, :2] = 0
    return inputs, torch.randn(steps, K, B, OUT, generator=g)


def grads(model: nn.Module) -> dict[str, Tensor]:
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def check_members(
    family: str, params: list[dict[str, Any]], pop: Members, via: str, steps: int = T
) -> Tensor:
    """Each member's outputs and parameter gradients equal its lone model's (same seed); the
    population's outputs."""
    inputs, readout = data(steps)
    run = (lambda m, x: m(x)) if via == "forward" else step_unrolled
    out = run(pop, inputs)
    (out * readout).sum().backward()
    assert isinstance(pop, Stacked)
    stacked = dict(zip(pop.names, pop.stacked, strict=True))
    for k, seed in enumerate(SEEDS):
        model = lone(family, params[k], seed)
        expected = run(model, inputs[:, k])
        (expected * readout[:, k]).sum().backward()
        torch.testing.assert_close(out[:, k], expected, rtol=1e-4, atol=1e-5)
        expected_grads = grads(model)
        assert set(expected_grads) == set(stacked), "one stacked tensor per lone parameter"
        for n, g in expected_grads.items():
            got = stacked[n].grad
            assert got is not None, n
            torch.testing.assert_close(got[k], g, rtol=1e-4, atol=1e-5, msg=f"{n} of {k}")
    return out


@pytest.mark.parametrize("via", ["forward", "step"])
@pytest.mark.parametrize("variant", VARIANTS, ids=[name(v) for v in VARIANTS])
def test_each_batched_member_computes_as_its_lone_model(
    variant: tuple[str, list[dict[str, Any]]], via: str
) -> None:
    family, params = variant
    pop = population(family, params)
    assert not isinstance(pop, LoopMembers)
    check_members(family, params, pop, via)


# every variant through LoopMembers, by `forward` and by `step` in turn
LOOPED = [(v, ("forward", "step")[i % 2]) for i, v in enumerate(VARIANTS)]


@pytest.mark.parametrize(("variant", "via"), LOOPED, ids=[f"{name(v)}-{via}" for v, via in LOOPED])
def test_loop_members_compute_as_their_lone_models(
    variant: tuple[str, list[dict[str, Any]]], via: str
) -> None:
    """The reference every family falls back to (a plugin family's too)."""
    family, params = variant
    pop = population(family, params, batched=False)
    assert isinstance(pop, LoopMembers)
    check_members(family, params, pop, via)


LONG = [
    ("plastic", plastic(hidden=5, rule=PLUGIN, modulation="retroactive", alpha="neuron")),
    ("plastic_lstm", plastic_lstm(modulation="simple", alpha="connection")),
]


@pytest.mark.parametrize("variant", LONG, ids=[name(v) for v in LONG])
def test_long_episodes_run_in_checkpointed_segments(
    variant: tuple[str, list[dict[str, Any]]],
) -> None:
    """Past SHORT_EPISODE steps the episode runs in segments recomputed in backward."""
    family, params = variant
    steps = SHORT_EPISODE + 4
    assert segment_length(steps) < steps
    check_members(family, params, population(family, params), "forward", steps)


def with_clips(clips: Sequence[float | None], **shape: Any) -> list[dict[str, Any]]:
    return [{**member, "clip": clip} for member, clip in zip(plastic(**shape), clips, strict=True)]


NONE, SAME, MIXED = [None] * K, [0.5] * K, [None, 0.5, 2.0]
# populations on the fast kernels: linear (no clip), clipped (one clip, a clip per member) and
# retroactive, every alpha granularity, clamp mode
FAST = [
    ("plastic", with_clips(NONE, hidden=5, rule="hebb", alpha="connection")),
    ("plastic", with_clips(NONE, hidden=5, rule="oja", alpha="neuron")),
    ("plastic", with_clips(NONE, input_mode="clamp", rule="hebb", alpha="scalar")),
    ("plastic", with_clips(SAME, hidden=5, rule="hebb", alpha="connection")),
    ("plastic", with_clips(MIXED, hidden=5, rule="oja", alpha="scalar")),
    ("plastic", with_clips(MIXED, input_mode="clamp", rule="additive", alpha="connection")),
    ("plastic", with_clips(SAME, hidden=5, modulation="retroactive", fanout=True, rule="oja")),
    ("plastic", with_clips(MIXED, hidden=5, modulation="retroactive", alpha="neuron")),
    ("plastic", with_clips(MIXED, input_mode="clamp", modulation="retroactive")),
]
FAST_RUNS = [(v, steps, False) for v in FAST for steps in (T, SHORT_EPISODE + 9)]
FAST_RUNS += [(v, SHORT_EPISODE + 9, True) for v in FAST]


def ran_on_kernel(out: Tensor) -> bool:
    """Whether the fast kernels' autograd Function (driver.Replay) made `out`."""
    seen, todo = set(), [out.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        if type(node).__name__ == "ReplayBackward":
            return True
        seen.add(node)
        todo.extend(next_fn for next_fn, _ in node.next_functions)
    return False


def fast_id(run: tuple[tuple[str, list[dict[str, Any]]], int, bool]) -> str:
    (family, params), steps, chunked = run
    clips = {member["clip"] for member in params}
    clip = clips.pop() if len(clips) == 1 else "mixed"
    return f"{name((family, params))}-{clip}-T{steps}" + "-chunked" * chunked


@pytest.mark.parametrize(("variant", "steps", "chunked"), FAST_RUNS, ids=map(fast_id, FAST_RUNS))
def test_populations_on_the_fast_kernels_compute_as_their_lone_models(
    variant: tuple[str, list[dict[str, Any]]],
    steps: int,
    chunked: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A population whose rule and modulation have a kernel runs on it, member by member as
    its lone models: short and segmented episodes, and, chunked, one member per chunk."""
    family, params = variant
    if chunked:  # the smallest chunk: one member's whole batch
        monkeypatch.setattr(driver, "CHUNK_BYTES", 1)
    pop = population(family, params)
    assert isinstance(pop, Batched) and isinstance(pop.family, PlasticNetworkMembers)
    assert pop.family.fast
    assert ran_on_kernel(check_members(family, params, pop, "forward", steps))


def test_populations_without_a_kernel_run_the_generic_path() -> None:
    """Simple modulation and a plugin rule have no kernel: the checkpointed path, as lone."""
    for params in (plastic(hidden=5, modulation="simple"), plastic(hidden=5, rule=PLUGIN)):
        pop = population("plastic", params)
        assert isinstance(pop, Batched) and isinstance(pop.family, PlasticNetworkMembers)
        assert not pop.family.fast
        assert not ran_on_kernel(check_members("plastic", params, pop, "forward"))


def test_every_builtin_family_batches() -> None:
    assert sorted(BATCHED) == sorted(FAMILIES)
    assert all(can_batch(family) for family in FAMILIES)


ROUND_TRIP = [VARIANTS[i] for i in (1, 2)] + [
    ("plastic", plastic(hidden=5, rule=PLUGIN, modulation="retroactive", learn_eta=False)),
    ("plastic_lstm", plastic_lstm(modulation="simple")),
]


@pytest.mark.parametrize("variant", ROUND_TRIP, ids=[name(v) for v in ROUND_TRIP])
def test_member_round_trips_and_select_keeps_the_chosen_members(
    variant: tuple[str, list[dict[str, Any]]],
) -> None:
    family, params = variant
    pop = population(family, params)
    for k, seed in enumerate(SEEDS):  # at the start, member k is lone model k
        member = pop.member(k)
        assert type(member) is type(lone(family, params[k], seed))
        assert member.config == lone(family, params[k], seed).config
        for key, value in lone(family, params[k], seed).state_dict().items():
            assert torch.equal(member.state_dict()[key], value), key
    with torch.no_grad():  # trained: every member moves its own way
        for p in pop.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    inputs, _ = data()
    before = pop(inputs)
    for k in range(K):
        torch.testing.assert_close(pop.member(k)(inputs[:, k]), before[:, k])
    kept = [2, 0]
    members = [pop.member(k).state_dict() for k in kept]
    pop.select(kept)
    assert pop.size == 2
    assert all(p.shape[0] == 2 for p in pop.parameters())
    after = pop(inputs[:, kept])
    for k in range(2):
        torch.testing.assert_close(after[:, k], before[:, kept[k]])
        for key, value in pop.member(k).state_dict().items():
            assert torch.equal(members[k][key], value), key


def test_one_population_holds_one_shape() -> None:
    with pytest.raises(ValueError, match=r"member 1's shape .* differs from member 0's"):
        population("plastic", [{"hidden": 5}, {"hidden": 6}, {"hidden": 5}])
    with pytest.raises(ValueError, match="member 2's shape"):
        population("plastic_lstm", [*plastic_lstm()[:2], {"hidden": 5, "rule": "hebb"}])
    with pytest.raises(ValueError, match="2 members' settings but 3 generators"):
        population("lstm", [{"hidden": 5}] * 2)


@pytest.mark.parametrize("family", ["plastic", "lstm"])
def test_a_population_pickles_and_restores_from_its_state_dict(family: str) -> None:
    """Ray ships it between processes; a checkpoint holds its state_dict."""
    params = plastic(hidden=5) if family == "plastic" else [{"hidden": 5}] * K
    pop = population(family, params)
    inputs, _ = data()
    copied = pickle.loads(pickle.dumps(pop))
    torch.testing.assert_close(copied(inputs), pop(inputs), rtol=0, atol=0)
    other = stack_members(family, IN, OUT, params, [seeded(s + 10, 0) for s in SEEDS])
    assert not torch.equal(other(inputs), pop(inputs))
    other.load_state_dict(pop.state_dict())
    torch.testing.assert_close(other(inputs), pop(inputs), rtol=0, atol=0)
