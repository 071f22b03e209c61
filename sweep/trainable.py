"""The Ray Tune trainable, and the one place that turns Ray's flat trial config into settings."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from sweep.models import get_family
from sweep.plan import Cell, cells_by_id
from sweep.spec import SweepSpec
from sweep.tasks import Task
from sweep.train import TrainConfig, Trial

CHECKPOINT_FILE = "trial.pt"


@dataclass(frozen=True)
class TrialSettings:
    """Everything one trial runs with, resolved from Ray's config dict."""

    cell: Cell
    phase: str  # "search" or "confirm"
    number: int  # Optuna trial number (confirm: the number of the configuration confirmed)
    seed: int
    task: Task
    model_params: dict[str, Any]
    train: TrainConfig

    @classmethod
    def from_config(
        cls, spec: SweepSpec, cells: dict[str, Cell], config: dict[str, Any], device: str = "cpu"
    ) -> TrialSettings:
        cell = cells[config["cell"]]
        hp = dict(config["hp"])
        family_params = set(get_family(cell.family).parameters)
        model_params = {**cell.params, **{k: v for k, v in hp.items() if k in family_params}}
        train_hp = {k: v for k, v in hp.items() if k not in family_params}
        train = spec.train_config(**train_hp, seed=config["seed"], device=device)
        return cls(
            cell=cell,
            phase=config["phase"],
            number=config["number"],
            seed=config["seed"],
            task=cell.task(spec.task),
            model_params=model_params,
            train=train,
        )


def trial_device(spec: SweepSpec) -> str:
    """CUDA when the trial was given a GPU and one is visible; else the CPU (the `device`
    column records which)."""
    return "cuda" if spec.resources.gpu > 0 and torch.cuda.is_available() else "cpu"


def sweep_trainable(config: dict[str, Any], spec: SweepSpec) -> None:
    """Train one trial, reporting every evaluation; checkpoint (model, optimizer, generator
    states, counters) at the first report after `checkpoint_every_s` and at the end. The
    final report of a picture task carries the trial's reconstructions."""
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    settings = TrialSettings.from_config(spec, cells_by_id(spec), config, trial_device(spec))
    trial = Trial(settings.task, settings.cell.family, settings.model_params, settings.train)
    context = ray.get_runtime_context()
    device = str(trial.device)
    if trial.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(trial.device)})"
    provenance = {
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
        provenance["started_at"] = state["started_at"]
        if trial.finished or state["last"].get("diverged"):  # ended before the driver knew
            tune.report(state["last"])
            return
    last_checkpoint = time.monotonic()
    for report in trial.reports():
        metrics = {**report.to_dict(), **provenance}
        if report.done and not report.diverged:
            pictures = trial.reconstructions()
            if pictures is not None:  # the driver's ResultsWriter takes them out of the result
                metrics["reconstructions"] = pictures
        every = spec.fault_tolerance.checkpoint_every_s
        if not report.done and time.monotonic() - last_checkpoint < every:
            tune.report(metrics)
            continue
        metrics["checkpointed"] = True
        with tempfile.TemporaryDirectory() as folder:
            state = {"trial": trial.state_dict(), "last": metrics, **provenance}
            torch.save(state, Path(folder, CHECKPOINT_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        last_checkpoint = time.monotonic()
