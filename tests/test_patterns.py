from __future__ import annotations

import pytest
import torch

from sweep.tasks import levels, make_task
from sweep.tasks.patterns import PatternSettings, PatternTask
from tests.support.episodes import recalled


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_ladder_has_the_paper_levels_in_order_of_difficulty() -> None:
    names = levels("patterns")
    assert len(names) >= 6
    assert {"paper-simplified", "paper-full"} <= set(names)
    assert make_task("patterns", "paper-full").steps == 106
    assert make_task("patterns", "paper-simplified").steps == 11
    sizes = [make_task("patterns", n).output_size for n in names]
    assert sizes == sorted(sizes)


def test_shapes_and_values() -> None:
    task = make_task("patterns", "small")
    ep = task.sample(4, gen(0))
    assert ep.inputs.shape == (task.steps, 4, 33)
    assert ep.targets.shape == (4, 32)
    assert set(ep.targets.unique().tolist()) == {-1.0, 1.0}
    assert torch.all(ep.inputs[:, :, -1] == 20.0)  # bias channel, scaled like every input
    assert set(ep.inputs[:, :, :-1].unique().tolist()) <= {-20.0, 0.0, 20.0}


def test_exact_degraded_fraction_and_cue_agrees_with_target() -> None:
    task = PatternTask(PatternSettings(pattern_size=40, degrade=0.3, input_scale=1.0))
    ep = task.sample(8, gen(0))
    cue = ep.inputs[-1, :, :-1]
    assert torch.all((cue == 0).sum(-1) == 12)
    kept = cue != 0
    assert torch.equal(cue[kept], ep.targets[kept])


def test_target_is_one_of_the_shown_patterns_and_delays_are_blank() -> None:
    s = PatternSettings(
        pattern_size=20, num_patterns=3, cycles=2, prestime=2, delay=2, input_scale=1.0
    )
    task = PatternTask(s)
    ep = task.sample(5, gen(1))
    bits = ep.inputs[:, :, :-1]
    for b in range(5):
        shown = {tuple(bits[t, b].tolist()) for t in range(0, 2 * 3 * 4, 4)}
        assert len(shown) == 3
        assert tuple(ep.targets[b].tolist()) in shown
        for t in range(2 * 3 * 4):
            if t % 4 >= 2:
                assert torch.all(bits[t, b] == 0)


def test_same_seed_same_episode_different_seed_different() -> None:
    task = make_task("patterns", "tiny")
    a, b, c = task.sample(3, gen(5)), task.sample(3, gen(5)), task.sample(3, gen(6))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, c.inputs)


def test_score_is_fraction_of_wrong_sign_bits() -> None:
    task = make_task("patterns", "trivial")
    ep = task.sample(2, gen(0))
    out = recalled(task, ep)
    assert task.score(out, ep) == 0.0
    out[-1, 0, :2] *= -1  # 2 of 16 bits wrong
    assert task.score(out, ep) == pytest.approx(2 / 16)
    assert task.score(-out, ep) == pytest.approx(14 / 16)
    assert task.chance == 0.5


def test_every_protocol_parameter_can_be_set_directly() -> None:
    task = make_task("patterns", "tiny", {"pattern_size": 10, "delay": 0, "solved_wrong_bits": 2})
    assert task.output_size == 10 and task.solved_threshold == pytest.approx(0.2)
    assert task.settings()["delay"] == 0


def _with_wrong_bits(task: PatternTask, wrong: int, batch: int = 4) -> float:
    """The task's score when every recalled pattern of a batch has `wrong` wrong bits."""
    ep = task.sample(batch, gen(1))
    out = torch.zeros(task.steps, batch, task.output_size)
    out[-1] = ep.targets
    out[-1, :, :wrong] *= -1
    return task.score(out, ep)


@pytest.mark.parametrize("level", levels("patterns"))
def test_solved_means_one_wrong_bit_per_pattern_at_every_level(level: str) -> None:
    """The criterion counts wrong bits per recalled pattern, whatever the pattern's size:
    one wrong bit in every pattern is exactly solved, two are not, at every level."""
    task = make_task("patterns", level)
    assert isinstance(task, PatternTask)
    assert _with_wrong_bits(task, 1) <= task.solved_threshold
    assert _with_wrong_bits(task, 2) > task.solved_threshold
    assert task.solved_threshold * task.output_size == pytest.approx(1.0)


def test_solved_threshold_is_per_pattern_not_per_bit() -> None:
    """At 16 bits a whole wrong bit per pattern is allowed, as at 50 (a fixed bit fraction
    of 0.02 allowed 0.32 bits there)."""
    tiny, simplified = make_task("patterns", "tiny"), make_task("patterns", "paper-simplified")
    assert tiny.solved_threshold == pytest.approx(1 / 16)
    assert simplified.solved_threshold == pytest.approx(0.02)


def test_solved_criterion_must_be_below_chance() -> None:
    with pytest.raises(ValueError, match="solved_wrong_bits: 8 must be below chance"):
        make_task("patterns", "tiny", {"solved_wrong_bits": 8})


@pytest.mark.parametrize("bad", [{"degrade": 1.0}, {"pattern_size": 0}, {"bits": 3}])
def test_bad_protocol_parameters_fail(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_task("patterns", "tiny", bad)


def test_unknown_level_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid: trivial, tiny, small, paper-simplified"):
        make_task("patterns", "impossible")
