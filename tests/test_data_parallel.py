"""Data-parallel trials: W processes (real torch.distributed, gloo) train the same experiment
as one process: same episodes, same losses, same model, to float tolerance."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp

from sweep.distributed import Rendezvous, broadcast, free_port, leave
from sweep.spec import SpecError, parse_spec
from sweep.tasks import make_task
from sweep.train import Ranks, TrainConfig, Trial
from tests.support.sweeps import tiny_spec

# 45 episodes in batches of 7: the last batch has 3, fewer than 4 ranks (an empty shard)
SETTINGS: dict[str, Any] = {
    "episodes": 45,
    "batch_size": 7,
    "eval_every": 14,
    "eval_episodes": 8,
    "lr": 3e-3,
    "grad_clip": 0.5,  # small enough to clip: clipping must see the whole batch's gradient
    "seed": 3,
}


def _trial(family: str, ranks: Ranks) -> Trial:
    params = {} if family == "plastic" else {"hidden": 9}
    task = make_task("patterns", "trivial")
    return Trial(task, family, params, TrainConfig(**SETTINGS), ranks)


def _run(trial: Trial) -> dict[str, Any]:
    reports = [r.to_dict() for r in trial.reports()]
    return {
        "loss": [r["loss"] for r in reports],
        "value": [r["value"] for r in reports],
        "episodes": [r["episodes"] for r in reports],
        "model": {k: v.clone() for k, v in trial.model.state_dict().items()},
    }


def _rank(rank: int, family: str, rendezvous: Rendezvous, out: str) -> None:
    torch.set_num_threads(1)
    trial = _trial(family, Ranks(rank, rendezvous.world))
    rendezvous.join(rank, trial.device)
    try:
        if rank > 0:  # start from rank 0's state, as the sweep's workers do
            trial.load_state_dict(broadcast(None))
        else:
            broadcast(trial.state_dict())
        torch.save(_run(trial), f"{out}/rank{rank}.pt")
    finally:
        leave()


def _data_parallel(family: str, world: int, tmp_path: Path) -> list[dict[str, Any]]:
    rendezvous = Rendezvous("127.0.0.1", free_port("127.0.0.1"), world, "gloo")
    mp.start_processes(
        _rank, args=(family, rendezvous, str(tmp_path)), nprocs=world, start_method="spawn"
    )
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]


@pytest.mark.parametrize(("family", "world"), [("plastic", 2), ("lstm", 4)])
def test_w_workers_train_the_same_experiment_as_one(
    family: str, world: int, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    alone = _run(_trial(family, Ranks()))
    ranks = _data_parallel(family, world, tmp_path)
    lead = ranks[0]
    assert lead["episodes"] == alone["episodes"] == [14, 28, 42, 45]
    assert lead["loss"] == pytest.approx(alone["loss"], rel=1e-5, abs=1e-7)
    assert lead["value"] == pytest.approx(alone["value"], abs=1e-6)
    for rank in ranks:  # every rank holds the model one process would have trained
        assert rank["loss"] == lead["loss"]
        for name, value in alone["model"].items():
            torch.testing.assert_close(rank["model"][name], value, rtol=1e-4, atol=1e-6)
    # only rank 0 evaluates
    assert all(math.isnan(e) for rank in ranks[1:] for e in rank["value"])


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"workers": 0}, "resources.workers"),
        ({"workers": 2, "gpu": 2}, "more than one GPU per worker"),
        ({"workers": 2, "one_node": "maybe"}, "resources.one_node"),
    ],
)
def test_bad_worker_resources_are_named(
    tmp_path: Path, resources: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(tiny_spec(tmp_path, resources=resources))


def test_one_worker_is_a_plain_trial(tmp_path: Path) -> None:
    resources = parse_spec(tiny_spec(tmp_path)).resources
    assert (resources.workers, resources.one_node) == (1, False)
