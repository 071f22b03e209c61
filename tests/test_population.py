"""Populations (`sweep.population`): each member of a population trains exactly as its lone
`Trial` (same seed, same settings) would: the same report numbers and the same final
parameters (float tolerance, CPU); a stopped or diverged member leaves the others
unchanged; a saved population resumes to the same numbers; a member's numbers do not depend
on how many members train beside it."""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import torch
from torch import nn

from plastic_models.members import PlasticNetworkMembers
from sweep.learners import make_learner
from sweep.members import Batched
from sweep.population import Member, MemberAdam, PopulationTrial, clip_members
from sweep.records import Report
from sweep.tasks import Task, make_task
from sweep.train import TrainConfig, Trial

SHARED: dict[str, Any] = {"episodes": 24, "batch_size": 4, "eval_every": 8, "eval_episodes": 8}
TIMING = ("wall_s", "episodes_per_second")


def _task(name: str) -> Task:
    if name == "patterns":
        return make_task(name, "trivial")
    return make_task(name, "tiny", {"steps": 12})


def _members(variant: str) -> list[Member]:
    """Three members with their own seeds, lrs, adam_eps, non-shape model settings and
    learner settings; one clips its gradients hard enough to clip."""
    settings: dict[str, list[dict[str, Any]]] = {
        "plastic": [{}, {"eta": 0.1}, {"clip": 0.5}],
        "lstm": [{"hidden": 8}] * 3,
        "reward": [{"hidden": 8, "modulation": "simple", "eta": e} for e in (0.01, 0.03, 0.1)],
    }
    params = settings[variant]
    own: list[dict[str, Any]] = [
        {"seed": 0, "lr": 1e-3},
        {"seed": 1, "lr": 3e-3, "grad_clip": 0.05},
        {"seed": 2, "lr": 1e-2, "adam_eps": 1e-4},
    ]
    a2c: list[dict[str, Any]] = [
        {},
        {"entropy_coef": 0.1, "gamma": 0.8},
        {"value_coef": 0.5, "entropy": "simpson"},
    ]
    return [
        Member(
            "abc"[k],
            params[k],
            TrainConfig(**SHARED, **own[k]),
            make_learner("a2c", a2c[k]) if variant == "reward" else None,
        )
        for k in range(3)
    ]


VARIANTS = {
    "plastic": ("patterns", "plastic"),
    "lstm": ("patterns", "lstm"),
    "reward": ("cue_reward", "plastic"),
}


def _lone(task: Task, family: str, member: Member) -> tuple[list[Report], list[torch.Tensor]]:
    trial = Trial(task, family, member.model_params, member.train, learner=member.learner)
    reports = list(trial.reports())
    return reports, [p.detach().clone() for p in trial.model.parameters()]


def _by_member(yields: Iterator[list[tuple[str, Report]]]) -> dict[str, list[Report]]:
    reports: dict[str, list[Report]] = {}
    for moment in yields:
        for member, report in moment:
            reports.setdefault(member, []).append(report)
    return reports


def _numbers(reports: Sequence[Report]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.to_dict().items() if k not in TIMING} for r in reports]


def _assert_same(got: Sequence[Report], want: Sequence[Report]) -> None:
    """The same reports but for timing, float numbers within float tolerance."""
    assert len(got) == len(want)
    for g, w in zip(_numbers(got), _numbers(want), strict=True):
        assert g.keys() == w.keys()
        for key in g:
            if isinstance(w[key], float):
                assert g[key] == pytest.approx(w[key], rel=1e-4, abs=1e-6, nan_ok=True), key
            else:
                assert g[key] == w[key], key


def _parameters(population: PopulationTrial, member: str) -> list[torch.Tensor]:
    return [p.detach() for p in population.member_model(member).parameters()]


def _assert_close(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor], lr: float) -> None:
    """The same parameters within float tolerance. A batched family's sums differ from the
    lone model's in the last bits; Adam divides each element's step by its gradient's own
    size, so an element whose gradient is at that noise level (a clipped member's, an input
    that is zero) still moves by a fraction of lr: absolute tolerance lr / 20."""
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=lr / 20)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_member_trains_as_its_lone_trial(variant: str) -> None:
    name, family = VARIANTS[variant]
    task, members = _task(name), _members(variant)
    population = PopulationTrial(task, family, members)
    if variant == "plastic":  # the lone trials' path: the fast kernels, a clip per member
        pop = population.members
        assert isinstance(pop, Batched) and isinstance(pop.family, PlasticNetworkMembers)
        assert pop.family.fast and isinstance(pop.family.clip, list)
    reports = _by_member(population.reports())
    assert list(reports) == ["a", "b", "c"]
    for member in members:
        lone, parameters = _lone(task, family, member)
        assert [r.episodes for r in lone] == [8, 16, 24] and lone[-1].done
        _assert_same(reports[member.id], lone)
        _assert_close(_parameters(population, member.id), parameters, member.train.lr)
    values = [reports[m.id][-1].final_value for m in members]
    assert len(set(values)) > 1 or variant == "reward"  # different members, different numbers


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_population_of_one_is_its_lone_trial_to_the_bit(variant: str) -> None:
    """One member (a cell's lone search trial with `members` > 1, the remainder of a shape
    group) runs its own model: the lone trial's numbers and parameters exactly, not within a
    tolerance (rounding differences change an A2C agent's sampled actions over thousands of
    episodes, and with them its rewards)."""
    name, family = VARIANTS[variant]
    task, member = _task(name), _members(variant)[2]
    population = PopulationTrial(task, family, [member])
    reports = _by_member(population.reports())
    lone, parameters = _lone(task, family, member)
    assert _numbers(reports[member.id]) == _numbers(lone)
    for got, want in zip(_parameters(population, member.id), parameters, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("family", ["lstm", "plastic"])
def test_a_member_trains_alike_whatever_k(family: str) -> None:
    """Plastic: alone, b runs the linear kernel (no clip); among a and c, the clipped one
    (clips per member, b's infinite)."""
    task, members = _task("patterns"), _members(family)
    alone = _by_member(PopulationTrial(task, family, members[1:2]).reports())
    among = _by_member(PopulationTrial(task, family, members).reports())
    _assert_same(alone["b"], among["b"])


def test_a_diverged_or_stopped_member_leaves_the_others_unchanged() -> None:
    """b diverges (an infinite learning rate), c is stopped after the first evaluation: a
    and what b and c ran have their lone trials' numbers; b's divergence is reported at
    once, on its own; both leave the stack."""
    task = _task("patterns")
    members = _members("plastic")
    b = members[1]
    members[1] = Member("b", b.model_params, dataclasses.replace(b.train, lr=math.inf))
    population = PopulationTrial(task, "plastic", members)
    moments: list[list[tuple[str, Report]]] = []
    for moment in population.reports():
        moments.append(moment)
        if len(moment) > 1:  # the first evaluation
            population.stop("c")
    lone = {m.id: _lone(task, "plastic", m) for m in members}
    assert lone["b"][0][-1].diverged  # the lone trial diverges too
    assert [[member for member, _ in moment] for moment in moments] == [
        ["b"],  # its divergence (at its second update), at once
        ["a", "c"],
        ["a"],
        ["a"],
    ]
    reports = _by_member(iter(moments))
    (last_b,) = moments[0]
    assert last_b[1].diverged and last_b[1].done and math.isnan(last_b[1].loss)
    _assert_same(reports["a"], lone["a"][0])
    _assert_same(reports["b"], lone["b"][0])
    _assert_same(reports["c"], lone["c"][0][:1])
    _assert_close(_parameters(population, "a"), lone["a"][1], members[0].train.lr)
    assert population.members.size == 1 and population.ids == ["a"]


def test_a_saved_population_resumes_to_the_same_numbers() -> None:
    """Saved after the first evaluation (c stopped there): a fresh population of the same
    members, loaded, goes on with a and b only, to the numbers of the run never saved."""
    task, members = _task("cue_reward"), _members("reward")
    straight = PopulationTrial(task, "plastic", members)
    whole: list[list[tuple[str, Report]]] = []
    saved = io.BytesIO()
    for moment in straight.reports():
        whole.append(moment)
        if len(whole) == 1:
            straight.stop("c")
            torch.save(straight.state_dict(), saved)
    saved.seek(0)
    resumed = PopulationTrial(task, "plastic", members)
    resumed.load_state_dict(torch.load(saved, weights_only=False))
    assert resumed.ids == ["a", "b"] and resumed.members.size == 2
    rest = list(resumed.reports())
    assert [[m for m, _ in moment] for moment in rest] == [["a", "b"], ["a", "b"]]
    for got, want in zip(rest, whole[1:], strict=True):
        assert _numbers([r for _, r in got]) == _numbers([r for _, r in want])
    for member in ("a", "b"):
        for p, q in zip(_parameters(resumed, member), _parameters(straight, member), strict=True):
            assert torch.equal(p, q)


class _Stacked(nn.Module):
    def __init__(self, k: int, generator: torch.Generator):
        super().__init__()
        self.w = nn.Parameter(torch.randn(k, 4, 5, generator=generator))
        self.b = nn.Parameter(torch.randn(k, 5, generator=generator))


def test_member_adam_and_clipping_are_torch_s_member_by_member() -> None:
    """Five steps on random gradients: each member's slices follow torch.optim.Adam with its
    own lr and eps after clip_grad_norm_ with its own max norm (or none)."""
    generator = torch.Generator().manual_seed(0)
    lr, eps, clip = [1e-3, 3e-2, 0.5], [1e-8, 1e-4, 1e-6], [None, 0.1, 10.0]
    stacked = _Stacked(3, generator)
    lone = [
        [p.detach()[k].clone().requires_grad_() for p in stacked.parameters()] for k in range(3)
    ]
    adams = [torch.optim.Adam(ps, lr=lr[k], eps=eps[k]) for k, ps in enumerate(lone)]
    optimizer = MemberAdam(stacked, lr, eps)
    clipped = [False] * 3
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=generator) for p in stacked.parameters()]
        for p, g in zip(stacked.parameters(), grads, strict=True):
            p.grad = g.clone()
        clip_members(list(stacked.parameters()), clip)
        optimizer.step()
        for k, (params, adam) in enumerate(zip(lone, adams, strict=True)):
            for q, g in zip(params, grads, strict=True):
                q.grad = g[k].clone()
            if clip[k] is not None:
                norm = torch.nn.utils.clip_grad_norm_(params, clip[k])  # type: ignore[arg-type]
                clipped[k] |= bool(norm > clip[k])  # type: ignore[operator]
            adam.step()
    assert clipped[1] and not clipped[2]  # one member clipped, the other's norm below its max
    for k in range(3):
        for p, q in zip(stacked.parameters(), lone[k], strict=True):
            torch.testing.assert_close(p.detach()[k], q.detach(), rtol=1e-6, atol=1e-7)
    before = {name: state["exp_avg"].clone() for name, state in optimizer.state.items()}
    optimizer.select([2, 0])
    assert optimizer.lr == [0.5, 1e-3] and optimizer.eps == [1e-6, 1e-8]
    for name, state in optimizer.state.items():
        assert torch.equal(state["exp_avg"], before[name][[2, 0]])


def test_members_that_cannot_share_a_population_are_refused() -> None:
    task = _task("patterns")
    members = _members("plastic")
    other = Member("d", {}, TrainConfig(**{**SHARED, "batch_size": 8}))
    with pytest.raises(ValueError, match="member 'd' has batch_size=8 but member 'a' batch_size=4"):
        PopulationTrial(task, "plastic", [members[0], other])
    with pytest.raises(ValueError, match="'a' repeated"):
        PopulationTrial(task, "plastic", [members[0], members[0]])
    wider = Member("e", {"hidden": 16}, members[0].train)
    with pytest.raises(ValueError, match="one population holds one shape"):
        PopulationTrial(task, "plastic", [members[0], wider])
    population = PopulationTrial(task, "plastic", members)
    with pytest.raises(ValueError, match="member 'z' is not running; running: a, b, c"):
        population.stop("z")


def test_each_member_records_its_lone_trial_s_reconstructions() -> None:
    task = make_task("images", "tiny")
    train = {**SHARED, "episodes": 8}
    members = [Member(str(s), {"hidden": 8}, TrainConfig(**train, seed=s)) for s in (3, 4)]
    population = PopulationTrial(task, "rnn", members)
    list(population.reports())
    pictures = population.reconstructions()
    assert list(pictures) == ["3", "4"]
    for member in members:
        trial = Trial(task, "rnn", member.model_params, member.train)
        list(trial.reports())
        want = trial.reconstructions()
        got = pictures[member.id]
        assert want is not None and got is not None
        assert got["shape"] == want["shape"] and got["erased"] == want["erased"]
        torch.testing.assert_close(torch.tensor(got["output"]), torch.tensor(want["output"]))
    assert pictures["3"] != pictures["4"]
