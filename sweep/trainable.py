"""The Ray Tune trainable: one trial, from its resolved `TrialConfig` to `TrialResult`s."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pyarrow.fs as pafs
import ray
import torch
from ray import tune
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from sweep.distributed import COLLECTIVE_TIMEOUT, Rendezvous, broadcast, gather, leave
from sweep.learners import Learner, learner_of, make_learner
from sweep.memory import check_population, device_budget
from sweep.population import Member, PopulationTrial
from sweep.records import (
    MEMBERS,
    Placement,
    TrialConfig,
    TrialResult,
    member_results,
    population_result,
    trial_configs,
)
from sweep.spec import SweepSpec
from sweep.store import CHECKPOINTS, filesystem, read_stops
from sweep.tasks import Task, make_task
from sweep.train import TRAIN_FIELDS, Ranks, TrainConfig, Trial


def trial_device(spec: SweepSpec) -> str:
    """CUDA when the trial was given a GPU and one is visible; else the CPU (the `device`
    column records which)."""
    return "cuda" if spec.resources.gpu > 0 and torch.cuda.is_available() else "cpu"


def build_trial(config: TrialConfig, device: str = "cpu", ranks: Ranks | None = None) -> Trial:
    """The trial's own task, model and learner, nothing else of the sweep. (A config written
    before learners had their own settings holds them in `train`.)"""
    task = make_task(config.task, config.level, config.overrides, config.difficulty)
    train, learner = _training(config, task, device)
    return Trial(task, config.family, config.model_params, train, ranks, learner)


def _training(config: TrialConfig, task: Task, device: str) -> tuple[TrainConfig, Learner]:
    """A trial's training settings and its learner with its settings."""
    common = {k: v for k, v in config.train.items() if k in TRAIN_FIELDS}
    train = TrainConfig(**common, seed=config.seed, device=device)
    return train, make_learner(learner_of(task), {**config.train, **config.learner_settings})


@dataclass(frozen=True)
class Place:
    """Where one rank of a trial runs."""

    node: str  # Ray node id
    device: str  # e.g. "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"
    gpu_ids: str  # the GPUs Ray gave the process, "," between them

    @classmethod
    def here(cls, trial: Trial | Any) -> Place:
        """Of this process, training `trial` (a Trial or a population: its `device`)."""
        context = ray.get_runtime_context()
        device = str(trial.device)
        if trial.device.type == "cuda":
            device += f" ({torch.cuda.get_device_name(trial.device)})"
        gpus = context.get_accelerator_ids().get("GPU", [])
        return cls(context.get_node_id(), device, ",".join(map(str, gpus)))


def sweep_trainable(ray_config: dict[str, Any], spec: SweepSpec, folder: str) -> None:
    """Train one trial, reporting every evaluation; checkpoint (model, optimizer, generator
    states, counters) at the first report after `checkpoint_every_s` and at the end. The
    final report of a picture task carries the trial's reconstructions.

    A trial keeps one checkpoint, `<sweep>/checkpoints/<trial id>.pt`, replaced atomically,
    rather than Ray Tune's checkpoints: whenever Tune starts the trial again (a retry after
    its node died, or `sweep resume`), it continues from the latest one. Tune's own record of
    a trial's latest checkpoint lives in its experiment state, which reaches object storage
    only every few seconds; the checkpoint it names may already have been rotated away.

    With `resources.workers` W > 1 this process is rank 0 of W data-parallel ranks; it starts
    the others (`TrialWorker`s) in the trial's placement group and alone evaluates, reports
    and checkpoints."""
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    if MEMBERS in ray_config:
        train_population(ray_config, spec, folder)
        return
    ranks = Ranks(0, spec.resources.workers)
    trial = build_trial(TrialConfig.from_dict(ray_config), trial_device(spec), ranks)
    checkpoint = checkpoint_path(folder, tune.get_context().get_trial_id())
    started_at, state = restore(checkpoint, "trial", trial)
    if state is not None:
        last = TrialResult.from_dict(state["last"])
        if last is not None:
            # Again: the trial may have stopped between saving and reporting (readers keep
            # one row per step). A trial that had ended ends here.
            tune.report(last.to_dict())
            if trial.finished or last.diverged:
                return
    with data_parallel(ray_config, spec, trial) as places:
        where = asdict(
            Placement(
                node=places[0].node,
                device=places[0].device,
                gpu_ids=";".join(p.gpu_ids for p in places),
                workers=len(places),
                devices=";".join(p.device for p in places),
                nodes=";".join(p.node for p in places),
                started_at=started_at,
            )
        )
        last_checkpoint = time.monotonic()
        for report in trial.reports():
            result = TrialResult(**asdict(report), **where)
            if report.done and not report.diverged:
                result = replace(result, reconstructions=trial.reconstructions())
            every = spec.fault_tolerance.checkpoint_every_s
            if report.done or time.monotonic() - last_checkpoint >= every:
                result = replace(result, checkpointed=True)
                state = {"trial": trial.state_dict(), "last": result.to_dict(), **where}
                save_checkpoint(checkpoint, state)
                last_checkpoint = time.monotonic()
            tune.report(result.to_dict())


def build_population(configs: list[TrialConfig], device: str = "cpu") -> PopulationTrial:
    """The population of these trials (one cell, one shape), member k under the id "k"."""
    first = configs[0]
    task = make_task(first.task, first.level, first.overrides, first.difficulty)
    members = [
        Member(str(k), c.model_params, *_training(c, task, device)) for k, c in enumerate(configs)
    ]
    return PopulationTrial(task, first.family, members)


def check_memory(configs: list[TrialConfig], device: str, gpu: float) -> None:
    """Before a population starts: its members must fit what this trial's device has for it
    (`sweep.memory`; PopulationTooLarge, one line, as the trial's error). The driver checked
    the spec already where it could see the device (not on a cluster's head without a GPU)."""
    first = configs[0]
    task = make_task(first.task, first.level, first.overrides, first.difficulty)
    check_population(
        first.family,
        first.model_params,
        task,
        int(first.train["batch_size"]),
        len(configs),
        (first.model, first.difficulty),
        device_budget(torch.device(device), gpu),
    )


def train_population(ray_config: dict[str, Any], spec: SweepSpec, folder: str) -> None:
    """A population (`resources.members` > 1): its members trained as one model, one
    `tune.report` per evaluation holding every running member's `TrialResult`; a member
    that ended (its budget spent, diverged, or stopped by the scheduler) is in a report for
    the last time, done. The checkpoint holds the whole population, as a lone trial's holds
    the trial."""
    configs = list(trial_configs(ray_config).values())
    check_memory(configs, trial_device(spec), spec.resources.gpu)
    population = build_population(configs, trial_device(spec))
    goal = configs[0].descriptor.goal
    # only a search population under early stopping can have members stopped: no other
    # reads the stops file (one request per evaluation on object storage)
    stoppable = spec.asha is not None and configs[0].is_search
    trial_id = tune.get_context().get_trial_id()
    checkpoint = checkpoint_path(folder, trial_id)
    started_at, state = restore(checkpoint, "population", population)
    last: dict[int, TrialResult] = {}  # each member's latest result
    if state is not None:
        tune.report(state["last"])  # again, as a lone trial does
        last = {k: r for k, r in member_results(state["last"]).items() if k is not None}
        if population.finished:
            return
        if stoppable:
            _stop_members(population, folder, trial_id, last, goal)
    place = Place.here(population)
    where = asdict(
        Placement(
            node=place.node,
            device=place.device,
            gpu_ids=place.gpu_ids,
            devices=place.device,
            nodes=place.node,
            started_at=started_at,
        )
    )
    last_checkpoint = time.monotonic()
    for reports in population.reports():
        results = {int(k): TrialResult(**asdict(report), **where) for k, report in reports}
        if any(report.done and not report.diverged for _, report in reports):
            pictures = population.reconstructions()  # the members' that ran their course
            for k, report in reports:
                if report.done and not report.diverged:
                    results[int(k)] = replace(results[int(k)], reconstructions=pictures[k])
        every = spec.fault_tolerance.checkpoint_every_s
        ended = any(report.done for _, report in reports)
        if ended or time.monotonic() - last_checkpoint >= every:
            results = {k: replace(r, checkpointed=True) for k, r in results.items()}
            state = {
                "population": population.state_dict(),
                "last": population_result(results, goal),
                **where,
            }
            save_checkpoint(checkpoint, state)
            last_checkpoint = time.monotonic()
        last.update(results)
        tune.report(population_result(results, goal))
        if stoppable:
            _stop_members(population, folder, trial_id, last, goal)


def _stop_members(
    population: PopulationTrial,
    folder: str,
    trial_id: str,
    last: dict[int, TrialResult],
    goal: str,
) -> None:
    """The members the scheduler stopped (`sweep.scheduling`) stop computing once they have
    trained the episodes they had at their stop (a population restored from an earlier
    checkpoint trains them up to it again), and their latest results are reported once more,
    done: their last report."""
    due = stops_due(read_stops(folder, trial_id), {int(k) for k in population.ids}, last)
    if not due:
        return
    for k in due:
        population.stop(str(k))
    tune.report(population_result({k: replace(last[k], done=True) for k in due}, goal))


def stops_due(stops: dict[int, int], running: set[int], last: dict[int, TrialResult]) -> list[int]:
    """The running members whose latest result has reached the episodes of their stop."""
    return sorted(
        k for k, at in stops.items() if k in running and k in last and last[k].episodes >= at
    )


@contextmanager
def data_parallel(ray_config: dict[str, Any], spec: SweepSpec, trial: Trial) -> Iterator[list]:
    """Rank 0's side of a data-parallel trial: start ranks 1..W-1, one per bundle of this
    trial's placement group (which Tune created and removes when the trial ends, is stopped
    or fails, killing them with it), join them, and give them this trial's state (fresh or
    restored). Yields every rank's `Place`; W = 1 starts nothing."""
    world = trial.ranks.world
    if world == 1:
        yield [Place.here(trial)]
        return
    rendezvous = Rendezvous.at(ray.util.get_node_ip_address(), world, trial.device)
    group = ray.util.get_current_placement_group()
    if group is None:  # started outside `sweep.runner`, which gives it one bundle per rank
        raise RuntimeError(f"a trial of {world} workers needs its own placement group")
    actors = [
        TrialWorker.options(  # type: ignore[attr-defined]
            num_cpus=spec.resources.cpu,
            num_gpus=spec.resources.gpu,
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                group, placement_group_bundle_index=rank
            ),
        ).remote()
        for rank in range(1, world)
    ]
    runs = [a.run.remote(ray_config, spec, rank, rendezvous) for rank, a in enumerate(actors, 1)]
    try:
        rendezvous.join(0, trial.device)
        broadcast(trial.state_dict())
        yield gather(Place.here(trial))
        ray.get(runs, timeout=COLLECTIVE_TIMEOUT.total_seconds())  # their errors, if any
    finally:
        leave()
        for actor in actors:
            ray.kill(actor)


@ray.remote(max_restarts=0)
class TrialWorker:
    """Rank 1..W-1 of a data-parallel trial: trains its share of every batch, nothing else."""

    def run(
        self, ray_config: dict[str, Any], spec: SweepSpec, rank: int, rendezvous: Rendezvous
    ) -> None:
        torch.set_num_threads(max(1, int(spec.resources.cpu)))
        ranks = Ranks(rank, rendezvous.world)
        trial = build_trial(TrialConfig.from_dict(ray_config), trial_device(spec), ranks)
        rendezvous.join(rank, trial.device)
        try:
            trial.load_state_dict(broadcast(None))
            gather(Place.here(trial))
            for _ in trial.reports():
                pass
        finally:
            leave()


def checkpoint_path(folder: str, trial_id: str) -> str:
    return f"{folder.rstrip('/')}/{CHECKPOINTS}/{trial_id}.pt"


def restore(
    checkpoint: str, key: str, into: Trial | PopulationTrial
) -> tuple[str, dict[str, Any] | None]:
    """When the trial first started (now, for a fresh one) and the state of its last
    checkpoint (at `checkpoint`), its `key` loaded into `into` (None: none yet)."""
    started_at = datetime.now(UTC).isoformat()
    state = load_checkpoint(checkpoint)
    if state is None:
        return started_at, None
    into.load_state_dict(state[key])
    return state["started_at"], state


def save_checkpoint(path: str, state: dict[str, Any]) -> None:
    """Written under a temporary name, then moved over the last one: a reader (the trial
    started again) finds a whole checkpoint, the newest or the one before."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    fs, where = filesystem(path)
    fs.create_dir(where.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(f"{where}.tmp") as out:
        out.write(buffer.getvalue())
    fs.move(f"{where}.tmp", where)


def load_checkpoint(path: str) -> dict[str, Any] | None:
    fs, where = filesystem(path)
    if fs.get_file_info(where).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(where) as f:
        data = f.read()
    state: dict[str, Any] = torch.load(io.BytesIO(data), weights_only=False)
    return state
