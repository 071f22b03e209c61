"""The Ray Tune trainable: one trial, from its resolved `TrialConfig` to `TrialResult`s."""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from sweep.records import TrialConfig, TrialResult
from sweep.spec import SweepSpec
from sweep.tasks import make_task
from sweep.train import TrainConfig, Trial

CHECKPOINT_FILE = "trial.pt"


def trial_device(spec: SweepSpec) -> str:
    """CUDA when the trial was given a GPU and one is visible; else the CPU (the `device`
    column records which)."""
    return "cuda" if spec.resources.gpu > 0 and torch.cuda.is_available() else "cpu"


def build_trial(config: TrialConfig, device: str = "cpu") -> Trial:
    """The trial's own task and model, nothing else of the sweep."""
    task = make_task(config.task, config.level, config.overrides, config.difficulty)
    train = TrainConfig(**config.train, seed=config.seed, device=device)
    return Trial(task, config.family, config.model_params, train)


def sweep_trainable(ray_config: dict[str, Any], spec: SweepSpec) -> None:
    """Train one trial, reporting every evaluation; checkpoint (model, optimizer, generator
    states, counters) at the first report after `checkpoint_every_s` and at the end. The
    final report of a picture task carries the trial's reconstructions."""
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    trial = build_trial(TrialConfig.from_dict(ray_config), trial_device(spec))
    context = ray.get_runtime_context()
    device = str(trial.device)
    if trial.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(trial.device)})"
    where: dict[str, Any] = {
        "node": context.get_node_id(),
        "device": device,
        "gpu_ids": ",".join(map(str, context.get_accelerator_ids().get("GPU", []))),
        "started_at": datetime.now(UTC).isoformat(),
    }
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            state = torch.load(Path(folder, CHECKPOINT_FILE), weights_only=False)
        trial.load_state_dict(state["trial"])
        where["started_at"] = state["started_at"]
        last = TrialResult.from_dict(state["last"])
        if last is not None and (trial.finished or last.diverged):  # ended before the driver knew
            tune.report(last.to_dict())
            return
    last_checkpoint = time.monotonic()
    for report in trial.reports():
        result = TrialResult(**asdict(report), **where)
        if report.done and not report.diverged:
            result = replace(result, reconstructions=trial.reconstructions())
        every = spec.fault_tolerance.checkpoint_every_s
        if not report.done and time.monotonic() - last_checkpoint < every:
            tune.report(result.to_dict())
            continue
        result = replace(result, checkpointed=True)
        with tempfile.TemporaryDirectory() as folder:
            state = {"trial": trial.state_dict(), "last": result.to_dict(), **where}
            torch.save(state, Path(folder, CHECKPOINT_FILE))
            tune.report(result.to_dict(), checkpoint=tune.Checkpoint.from_directory(folder))
        last_checkpoint = time.monotonic()
