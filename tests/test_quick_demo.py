"""The CPU demo can answer its question: enough confirmation seeds that a clear win is
significant after Holm's correction, with the rank-sum test the report uses."""

from __future__ import annotations

import math
from pathlib import Path

from analysis.stats import holm, smallest_rank_sum_p
from sweep.spec import load_spec

QUICK = Path(__file__).resolve().parents[1] / "examples" / "quick.yaml"


def test_quick_demo_confirms_on_enough_seeds_for_a_significant_win() -> None:
    spec = load_spec(QUICK)
    seeds, models = spec.confirm.seeds, len(spec.models)
    pairs = math.comb(models, 2)  # every pair of models is tested at each difficulty
    # A clear win: the winner's seeds all below every other model's, at every pair.
    best = smallest_rank_sum_p(seeds, seeds)
    adjusted = holm([best] * pairs)
    assert seeds == 5 and pairs == 3
    assert max(adjusted) < 0.05  # 2 / C(10, 5) * 3 = 0.024
    assert max(holm([smallest_rank_sum_p(4, 4)] * pairs)) > 0.05  # one seed fewer cannot
