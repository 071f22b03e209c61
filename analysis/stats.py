"""Statistics across seeds, as the reference compared its networks (REFERENCE.md §3): median
and inter-quartile range, rank-sum tests between two groups; plus a bootstrap interval for
the mean and Holm's correction, because a sweep makes many comparisons at once."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

Values = Sequence[float] | npt.NDArray[np.float64]


@dataclass(frozen=True)
class Quartiles:
    """The median and the inter-quartile range, the interval from the 25th to the 75th
    percentile (linear interpolation, as numpy and pandas). The IQR is always that interval,
    shown as [q25, q75], never its width."""

    q25: float
    median: float
    q75: float


def quartiles(values: Values) -> Quartiles:
    """NaN when there are no values."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Quartiles(math.nan, math.nan, math.nan)
    q25, median, q75 = np.quantile(x, [0.25, 0.5, 0.75])
    return Quartiles(float(q25), float(median), float(q75))


def bootstrap_mean_ci(
    values: Values, confidence: float = 0.95, resamples: int = 9999, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, from a fixed seed so a report is
    reproducible. Percentile rather than BCa: BCa is undefined when every seed gives the
    same error (a task every seed solves perfectly), which is common here. NaN for fewer
    than two values."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return math.nan, math.nan
    result = stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass(frozen=True)
class RankSum:
    """A two-sided Mann-Whitney U (Wilcoxon rank-sum) test of two groups."""

    u: float
    p: float


def rank_sum(a: Values, b: Values, seed: int = 0) -> RankSum:
    """Exact p-values, not the normal approximation: with 3-10 seeds a side the
    approximation is poor, and with ties (several seeds at 0.0 error, say) it can call 3
    against 3 seeds significant (p = 0.047 for [0, 0, 0] against [1, 1, 1]) when no ordering
    of six values is that unlikely (exactly: p = 0.1). Without ties: the exact U
    distribution; with ties: the permutation distribution, enumerated when it has at most
    9,999 arrangements and sampled from `seed` otherwise. Groups with every value equal are
    no evidence of a difference: p = 1. NaN when a group is empty."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        return RankSum(math.nan, math.nan)
    pooled = np.concatenate([x, y])
    if np.unique(pooled).size == 1:
        return RankSum(x.size * y.size / 2, 1.0)
    if np.unique(pooled).size == pooled.size:
        result = stats.mannwhitneyu(x, y, alternative="two-sided", method="exact")
    else:
        method = stats.PermutationMethod(n_resamples=9999, random_state=np.random.default_rng(seed))
        result = stats.mannwhitneyu(x, y, alternative="two-sided", method=method)
    return RankSum(float(result.statistic), float(result.pvalue))


def smallest_rank_sum_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p `rank_sum` can give for groups of n_a and n_b:
    2 / C(n_a + n_b, n_a), one of the two most extreme arrangements. With 3 seeds a side it
    is 0.1, so no difference can be significant at 0.05 however large; the report says so
    rather than let "not significant" read as "no difference"."""
    if n_a == 0 or n_b == 0:
        return math.nan
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def holm(p_values: Values) -> npt.NDArray[np.float64]:
    """Holm's step-down adjustment (controls the family-wise error rate): the k-th smallest
    of m p-values is multiplied by m - k + 1, then made monotone. NaN entries are not
    tests: they stay NaN and do not count in m."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = order.size
    scaled = p[order] * (m - np.arange(m))
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted
