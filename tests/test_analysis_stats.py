"""Statistics across seeds, against answers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.stats import bootstrap_mean_ci, holm, quartiles, rank_sum, smallest_rank_sum_p


def test_quartiles_of_known_values() -> None:
    q = quartiles([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (q.q25, q.median, q.q75) == (2.0, 3.0, 4.0)
    even = quartiles([1.0, 2.0, 3.0, 4.0])  # linear interpolation, as numpy and pandas
    assert (even.q25, even.median, even.q75) == (1.75, 2.5, 3.25)
    assert math.isnan(quartiles([]).median)


def test_bootstrap_interval_of_the_mean_is_reproducible_and_about_right() -> None:
    values = np.arange(10.0)  # mean 4.5, standard error 0.91: about 4.5 +- 1.8
    low, high = bootstrap_mean_ci(values)
    assert (low, high) == bootstrap_mean_ci(values)  # fixed seed
    assert low == pytest.approx(2.7, abs=0.3) and high == pytest.approx(6.3, abs=0.3)
    assert bootstrap_mean_ci([0.25, 0.25, 0.25]) == (0.25, 0.25)  # every seed the same
    assert all(math.isnan(v) for v in bootstrap_mean_ci([0.1]))


def test_rank_sum_of_separated_groups_is_significant() -> None:
    a, b = np.linspace(0.01, 0.1, 10), np.linspace(0.4, 0.5, 10)
    test = rank_sum(a, b)
    assert test.u == 0.0
    assert test.p == pytest.approx(2 / math.comb(20, 10))  # exact: the most extreme ranking
    assert test.p < 0.05


def test_rank_sum_with_ties_is_exact_not_approximate() -> None:
    # the normal approximation gives 0.047 here; only 2 of the 20 arrangements are as extreme
    assert rank_sum([0.0, 0.0, 0.0], [0.5, 0.5, 0.5]).p == pytest.approx(0.1)
    assert rank_sum([0.0, 0.0, 0.1], [0.5, 0.5, 0.6]).p == pytest.approx(0.1)


def test_rank_sum_of_identical_groups_is_not() -> None:
    same = [0.1, 0.2, 0.3, 0.4]
    assert rank_sum(same, same).p == 1.0
    assert rank_sum([0.0] * 5, [0.0] * 5).p == 1.0  # every seed solved perfectly
    assert math.isnan(rank_sum([], same).p)


def test_smallest_possible_rank_sum_p() -> None:
    assert smallest_rank_sum_p(3, 3) == pytest.approx(0.1)  # 2 / C(6, 3)
    assert smallest_rank_sum_p(2, 2) == pytest.approx(1 / 3)
    assert smallest_rank_sum_p(10, 10) == pytest.approx(rank_sum(range(10), range(10, 20)).p)
    assert math.isnan(smallest_rank_sum_p(0, 3))


def test_holm_on_known_p_values() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1
    with_gap = holm([0.01, math.nan, 0.02])  # NaN is not a test: m = 2
    assert with_gap[0] == pytest.approx(0.02) and with_gap[2] == pytest.approx(0.02)
    assert math.isnan(with_gap[1])
    assert holm([]).size == 0
