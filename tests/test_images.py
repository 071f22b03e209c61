"""The natural-image memory task: real photographs (scikit-image's), CIFAR-10 batches."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sweep.results import RECONSTRUCTIONS_SCHEMA
from sweep.tasks import levels, make_task
from sweep.tasks.images import ImageTask, skimage_patches
from sweep.train import RECONSTRUCTIONS, TrainConfig, Trial, seeded
from tests.support.episodes import recalled
from tests.support.sweeps import sweep


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_ladder_has_the_paper_setting() -> None:
    assert len(levels("images")) >= 5
    paper = make_task("images", "paper")
    assert (paper.steps, paper.input_size, paper.output_size) == (201, 1025, 1024)


def test_episode_layout_and_erased_half() -> None:
    task = make_task("images", "tiny", {"input_scale": 1.0})
    ep = task.sample(6, gen(0))
    assert ep.inputs.shape == (task.steps, 6, 65) and ep.targets.shape == (6, 64)
    assert ep.mask is not None and torch.all(ep.mask.sum(-1) == 32)  # exactly half
    mask = ep.mask.reshape(6, 8, 8)
    for m in mask:  # a contiguous top or bottom half
        assert torch.equal(m[:4].all(1), torch.ones(4, dtype=torch.bool)) or torch.equal(
            m[4:].all(1), torch.ones(4, dtype=torch.bool)
        )
    cue = ep.inputs[-1, :, :64]
    assert torch.all(cue[ep.mask] == 0)
    assert torch.equal(cue[~ep.mask], ep.targets[~ep.mask])
    assert torch.all(ep.inputs[:, :, 64] == 1.0)  # bias


def test_images_are_zero_mean_with_peak_one() -> None:
    patches = skimage_patches(8, "train")
    assert np.allclose(patches.mean(axis=(1, 2)), 0, atol=1e-5)
    assert np.allclose(np.abs(patches).max(axis=(1, 2)), 1, atol=1e-5)


def test_evaluation_images_are_never_seen_in_training() -> None:
    train = {p.tobytes() for p in skimage_patches(8, "train")}
    held_out = {p.tobytes() for p in skimage_patches(8, "eval")}
    assert train and held_out and not train & held_out
    task = make_task("images", "tiny")
    ev = task.sample(16, gen(0), split="eval").targets.numpy().astype(np.float32)
    pool = {p.tobytes() for p in skimage_patches(8, "eval").reshape(-1, 64)}
    assert all(row.tobytes() in pool for row in ev)


def test_same_seed_same_episode() -> None:
    task = make_task("images", "tiny")
    a, b, c = task.sample(3, gen(1)), task.sample(3, gen(1)), task.sample(3, gen(2))
    assert torch.equal(a.inputs, b.inputs) and not torch.equal(a.inputs, c.inputs)


def test_score_is_mse_on_the_erased_part_against_chance() -> None:
    task = make_task("images", "tiny")
    ep = task.sample(4, gen(0))
    assert task.score(recalled(task, ep), ep) == 0.0
    mean_prediction = torch.zeros(task.steps, 4, 64)
    assert ep.mask is not None
    expected = float((ep.targets.square() * ep.mask).sum() / ep.mask.sum())
    assert task.score(mean_prediction, ep) == pytest.approx(expected)
    assert 0 < task.solved_threshold < task.chance


def _cifar_batch(path: Path, n: int, seed: int) -> np.ndarray:
    data = np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)
    with path.open("wb") as f:
        pickle.dump({b"data": data, b"labels": [0] * n}, f)
    return data


def test_cifar10_batches_on_disk(tmp_path: Path) -> None:
    for i in range(1, 6):
        _cifar_batch(tmp_path / f"data_batch_{i}", 4, seed=i)
    task = make_task("images", "tiny", {"source": "cifar10", "cifar_path": str(tmp_path)})
    assert isinstance(task, ImageTask)
    assert len(task._pools["train"]) == 16 and len(task._pools["eval"]) == 4
    ep = task.sample(2, gen(0), split="eval")
    assert ep.targets.shape == (2, 64)


@pytest.mark.parametrize("broken", ["missing", "corrupt"])
def test_bad_cifar_path_is_a_clear_error(tmp_path: Path, broken: str) -> None:
    if broken == "corrupt":
        for i in range(1, 6):
            (tmp_path / f"data_batch_{i}").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"cifar_path: .*data_batch_1"):
        make_task(
            "images",
            "tiny",
            {
                "source": "cifar10",
                "cifar_path": str(tmp_path / "x") if broken == "missing" else str(tmp_path),
            },
        )


def test_train_with_a_bad_dataset_path_exits_2(tmp_path: Path) -> None:
    done = sweep(
        "train",
        "--task",
        "images",
        "--difficulty",
        "tiny",
        "--model",
        "plastic",
        "--task-param",
        "source=cifar10",
        "--task-param",
        f"cifar_path={tmp_path}",
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "cifar_path" in done.stderr


def test_reconstructions_are_the_models_outputs_on_fixed_held_out_images() -> None:
    task = make_task("images", "tiny")
    trials = [Trial(task, "lstm", {"hidden": 16}, TrainConfig(seed=s)) for s in (0, 1)]
    first, other = (t.reconstructions() for t in trials)
    assert first is not None and other is not None
    assert first["shape"] == [8, 8] and len(first["target"]) == RECONSTRUCTIONS
    # the same held-out episodes for every trial, whatever its seed
    assert first["target"] == other["target"] and first["erased"] == other["erased"]
    assert first["output"] != other["output"]  # two differently initialised networks
    episode = task.sample(RECONSTRUCTIONS, seeded(0, 3), split="eval")
    with torch.no_grad():
        outputs = trials[0].model(episode.inputs)
    assert torch.equal(torch.tensor(first["output"]), outputs[-1])
    assert episode.mask is not None and torch.equal(torch.tensor(first["erased"]), episode.mask)
    held_out = torch.from_numpy(skimage_patches(8, "eval")).flatten(1)
    assert all((held_out == torch.tensor(t)).all(1).any() for t in first["target"])
    # the task's metric on these outputs is the erased-part MSE the pictures show
    target, output = torch.tensor(first["target"]), torch.tensor(first["output"])
    erased = torch.tensor(first["erased"])
    mse = (output - target).square()[erased].mean().item()
    assert mse == pytest.approx(task.score(outputs, episode), rel=1e-5)
    patterns = Trial(make_task("patterns", "tiny"), "rnn", {"hidden": 8}, TrainConfig())
    assert patterns.reconstructions() is None  # not pictures: nothing recorded


@pytest.mark.slow
def test_plastic_network_trains_on_images() -> None:
    """A short real training run lowers the reconstruction error well under chance."""
    from sweep.train import TrainConfig, train_trial

    task = make_task("images", "tiny")
    cfg = TrainConfig(episodes=1600, batch_size=16, lr=1e-3, eval_every=1600, eval_episodes=64)
    *_, last = train_trial(task, "plastic", {}, cfg)
    assert last.final_value is not None and last.final_value < 0.8 * task.chance


@pytest.mark.slow
def test_an_image_sweep_runs_end_to_end(tmp_path: Path) -> None:
    import pandas as pd

    from tests.support.sweeps import tiny_spec, write_spec

    spec = tiny_spec(
        tmp_path,
        name="pictures",
        task="images",
        difficulties=["tiny"],
        models={"plastic": {"family": "plastic"}, "lstm": {"family": "lstm", "hidden": 16}},
        train={"episodes": 64, "batch_size": 8, "eval_every": 32, "eval_episodes": 8},
        search={"trials_per_cell": 1, "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}}},
        confirm={"seeds": 1},
    )
    done = sweep("run", str(write_spec(tmp_path, spec)))
    assert done.returncode == 0, done.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "results" / "pictures" / "trials")
    assert len(trials) == 4 and set(trials["task"]) == {"images"}
    assert set(trials["task.image_size"]) == {8} and set(trials["task.source"]) == {"skimage"}
    assert trials["task.pattern_size"].isna().all()
    assert trials["final_value"].between(0, 1).all()
    # every finished trial recorded its reconstructions of the same 3 held-out images
    pictures = pd.read_parquet(tmp_path / "results" / "pictures" / "reconstructions")
    assert list(pictures.columns) == RECONSTRUCTIONS_SCHEMA.names
    assert len(pictures) == 4 * RECONSTRUCTIONS
    assert set(pictures["trial_id"]) == set(trials["trial_id"])
    assert (pictures[["rows", "cols"]] == 8).all().all()
    for _, same in pictures.groupby("sample"):
        first = same.iloc[0]
        assert all(np.array_equal(t, first["target"]) for t in same["target"])
        assert all(np.array_equal(e, first["erased"]) for e in same["erased"])
    assert all(e.sum() == 32 for e in pictures["erased"])  # half of the 8 x 8 image
    by_model = pictures.set_index(["model", "phase", "sample"])["output"]
    assert not np.allclose(by_model["plastic", "confirm", 0], by_model["lstm", "confirm", 0])
    # ... and the report shows them
    report = subprocess.run(
        [sys.executable, "-m", "analysis", "report", str(tmp_path / "results" / "pictures")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    page = Path(report.stdout.strip()).read_text()
    assert "Reconstructions of held-out images" in page
