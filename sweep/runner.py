"""Run, resume and inspect sweeps: one Ray Tune Tuner per sweep, all cells together."""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

import optuna
import pyarrow.fs as pafs

from sweep import plugins
from sweep.growth import cell_order, changes, refusal, tune_dir
from sweep.plan import cell_ids, make_cells
from sweep.progress import LiveCells, budget, counts_from_storage, render
from sweep.records import trial_configs
from sweep.results import ResultsWriter, compact, read_table
from sweep.scheduling import CellScheduler
from sweep.search import CellSearcher, chosen, journal_storage
from sweep.spec import Resources, SpecError, SweepSpec, parse_spec_text
from sweep.storage import download_journal, is_local, local_journal, sees, upload_journal
from sweep.store import HISTORY, SPEC_AS_WRITTEN, SPEC_FILE, filesystem
from sweep.tasks import task_metric
from sweep.tracking import run_name, trackers

# Tune's own CSV/JSON/TensorBoard loggers duplicate what the Parquet tables hold; the
# trackers a spec asks for (`tracking:`) are added as callbacks of their own (sweep.tracking).
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# ...so the ResultGrid that fit() builds at the end finds no per-trial result files; it
# warns about each one. Our results are in the Parquet tables, which it does not read.
logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


class SweepError(RuntimeError):
    """A sweep that cannot start or resume; the message says why."""


class SweepFailed(RuntimeError):
    """A sweep that ran but produced nothing for some cells; its results are written."""

    def __init__(self, folder: str, message: str):
        super().__init__(message)
        self.folder = folder


def sweep_dir(spec: SweepSpec) -> str:
    fs, root = filesystem(spec.storage)
    return (
        f"{root}/{spec.name}"
        if isinstance(fs, pafs.LocalFileSystem)
        else (f"{spec.storage.rstrip('/')}/{spec.name}")
    )


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)


def _trial_name(trial: Any) -> str:
    """What trackers call a trial's run: its cell, phase and seed, then its id (a
    population's: its cell, phase and members' seeds)."""
    configs = trial_configs(trial.config)
    if None in configs:
        return run_name(configs[None], str(trial.trial_id))
    first, seeds = configs[0], ",".join(str(c.seed) for c in configs.values())
    return f"{first.cell} {first.phase} seeds {seeds} ({trial.trial_id})"


def _init_ray(
    address: str | None, num_cpus: int | None, num_gpus: int | None, spec: SweepSpec
) -> None:
    import ray

    if ray.is_initialized():  # the caller started Ray itself
        return
    runtime_env = plugins.runtime_env(spec.plugins) or None  # ships the spec's plugins
    if address:
        ray.init(
            address=address, log_to_driver=False, configure_logging=False, runtime_env=runtime_env
        )
    else:  # embedded: a new local instance, never one that happens to run on this machine
        # Ray's "no cluster" mode (its default on macOS and Windows): every Ray process of
        # this instance listens on the loopback interface only, none on the network. Ray
        # reads the setting when it is imported, so the driver's copy is set here too.
        import ray._private.ray_constants as ray_constants

        os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False
        # A new local instance gets token authentication by default (Ray >= 2.5x), with a
        # notice meant for cluster users unless the mode is set; setting it to that same
        # default keeps the protection and drops the notice. The user's own setting wins.
        # Ray read the mode when it was imported: refresh its copy, as ray.init does.
        if "RAY_AUTH_MODE" not in os.environ:
            from ray._raylet import Config  # type: ignore[attr-defined]  # not in its stubs

            os.environ["RAY_AUTH_MODE"] = "token"
            Config.initialize("")
        # Ray starts an idle worker per CPU for the first driver, which Tune's trial actors
        # do not use (they start workers of their own): about 1 CPU-second and 0.3-0.5 s of
        # every sweep's start on 2 cores (benchmarks/sweep_start.py). The raylet this
        # ray.init starts reads the setting from the environment; the user's own wins.
        os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
        ray.init(
            address="local",
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env=runtime_env,
        )


def _embedded_node(
    spec: SweepSpec, address: str | None, num_cpus: int | None, num_gpus: int | None
) -> list[dict[str, float]] | None:
    """The one node embedded Ray would start, where its size is known without starting it
    (`--num-cpus` given, and `--num-gpus` too unless a trial asks for no GPU): a sweep it
    cannot hold is refused in a second, not after Ray's start. Else None (Ray counts)."""
    import ray

    if address or ray.is_initialized() or num_cpus is None:
        return None
    if num_gpus is None and spec.resources.gpu > 0:
        return None
    return [{"CPU": float(num_cpus), "GPU": float(num_gpus or 0)}]


def _workers_fit(resources: Resources, node: dict[str, float]) -> int:
    """How many of a trial's workers one node could hold at most."""
    want = {"CPU": resources.cpu, "GPU": resources.gpu}
    # (a hair over, so that 1 GPU holds ten 0.1s despite floating point)
    return int(min((node.get(k, 0) + 1e-9) // v for k, v in want.items() if v > 0))


def _check_resources(
    spec: SweepSpec, address: str | None, nodes: list[dict[str, float]] | None = None
) -> None:
    """A trial that the cluster cannot hold would wait forever: its W workers need W bundles
    of `cpu`/`gpu` each, on one node (`one_node`) or across nodes. On embedded Ray that is an
    error; a cluster may have an autoscaler that adds nodes, so there it is a warning.
    `nodes`: the nodes' resources where known before Ray starts (else asked of Ray)."""
    if nodes is None:
        import ray

        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    resources = spec.resources
    fits = [_workers_fit(resources, node) for node in nodes]
    room = max(fits, default=0) if resources.one_node else sum(fits)
    if room >= resources.workers:
        return
    have = ", ".join(f"{n.get('CPU', 0):g} CPU / {n.get('GPU', 0):g} GPU" for n in nodes)
    each = f"{resources.cpu:g} CPU / {resources.gpu:g} GPU"
    if resources.workers == 1:
        message = f"resources: a trial asks for {each} but no node has that much"
    else:
        where = "one node" if resources.one_node else "the nodes together"
        message = (
            f"resources: a trial asks for {resources.workers} workers x {each} but {where} "
            f"can hold only {room} such workers"
        )
    message += f" (nodes: {have})"
    if address is None:
        raise SweepError(message)
    logging.getLogger(__name__).warning("%s; waiting for the autoscaler to add one", message)


def _check_storage(folder: str) -> None:
    """On a cluster, every node must see the sweep's storage: Ray Tune persists each
    checkpoint from the node its trial runs on. Like Ray's own check, a marker written by
    the driver is looked for from every node, but here before anything runs."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    fs, root = filesystem(folder)
    marker = f"{root}/.storage-check-{uuid.uuid4().hex[:8]}"
    with fs.open_output_stream(marker):
        pass
    uri = marker if is_local(folder) else f"{folder.rstrip('/')}/{marker.rsplit('/', 1)[1]}"
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        look = ray.remote(num_cpus=0, max_retries=0)(sees)
        answers = ray.get(
            [
                look.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                ).remote(uri)
                for n in nodes
            ],
            timeout=120,
        )
    finally:
        fs.delete_file(marker)
    blind = [
        f"{n['NodeManagerAddress']} ({why})" for n, why in zip(nodes, answers, strict=True) if why
    ]
    if blind:
        kind = "a local folder of this machine" if is_local(folder) else "storage"
        raise SweepError(
            f"storage: {folder} is {kind} that node(s) {', '.join(blind)} cannot see; trials "
            "checkpoint from the node they run on, so use object storage every node can reach "
            "(storage: s3://BUCKET/PATH) or a folder every node mounts (NFS, EFS)"
        )


def _check_outcome(folder: str) -> None:
    """A sweep that produced nothing says so: when every trial of a cell failed, name the
    cells and the most common error. Some failed trials are results, not a failure."""
    trials = read_table(folder, "trials")
    if trials.empty:
        raise SweepFailed(folder, f"{folder}: no trial finished")
    failed = trials["status"] == "failed"
    dead = sorted(c for c, f in failed.groupby(trials["cell"]) if f.all())
    if not dead:
        return
    errors = trials.loc[failed, "error"].fillna("unknown error")
    # the same error in different trials differs in ids, pids, addresses: count it as one
    kinds = errors.str.replace(r"\b[0-9a-f]{8,}\b|\d+", "#", regex=True)
    counts = kinds.value_counts()
    example = errors[kinds == counts.index[0]].iloc[0]
    raise SweepFailed(
        folder,
        f"every trial of {len(dead)} cell(s) failed ({', '.join(dead)}); "
        f"{int(failed.sum())} of {len(trials)} trials failed, most often ({counts.iloc[0]}x) "
        f"with: {example}",
    )


def _allow_pending_trials(spec: SweepSpec) -> None:
    """Tune keeps only one trial pending when a custom searcher drives it, which leaves all
    but one slot idle while the next trial is set up; allow one pending trial per slot."""
    import ray

    if "TUNE_MAX_PENDING_TRIALS_PG" in os.environ:
        return
    have, resources = ray.cluster_resources(), spec.resources
    slots = have.get("CPU", 1) / resources.cpu
    if resources.gpu > 0:
        slots = min(slots, have.get("GPU", 0) / resources.gpu)
    slots /= resources.workers
    pending = spec.max_concurrent or max(1, int(slots))
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(pending)


def _no_callback_usage_tag() -> None:
    """Ray Tune tags its usage telemetry with the kinds of callbacks a run has. To name them
    it imports Ray's MLflow, W&B, Comet and Aim integrations, and so MLflow and W&B wherever
    they are installed: 2-3 CPU-seconds of every sweep's start (benchmarks/README.md, "A
    sweep's fixed cost") for a tag that would say our callbacks are custom ones. The tag is
    left out, for the rest of this process (a script that runs a sweep and then Tune runs of
    its own tags none of them). The function is Ray's own, private: where a release moves
    it, this does nothing and costs nothing."""
    from ray.air._internal import usage

    if hasattr(usage, "tag_callbacks"):
        usage.tag_callbacks = lambda callbacks: False


def _trainable(spec: SweepSpec, folder: str) -> Any:
    """One bundle per worker (bundle 0 is the trainable itself, rank 0): Tune reserves, starts
    and releases a trial's workers as one unit."""
    from ray import tune

    from sweep.trainable import sweep_trainable

    res = spec.resources
    trainable = tune.with_parameters(sweep_trainable, spec=spec, folder=folder)
    if res.workers == 1:
        return tune.with_resources(trainable, {"cpu": res.cpu, "gpu": res.gpu})
    bundle = {"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu > 0 else {})}
    strategy = "STRICT_PACK" if res.one_node else "PACK"
    group = tune.PlacementGroupFactory([bundle] * res.workers, strategy=strategy)
    return tune.with_resources(trainable, group)


def _write_spec(folder: str, spec: SweepSpec, written: str | None, generation: int = 0) -> None:
    """spec.yaml last: its presence says a sweep is here. A grown sweep (generation > 0)
    keeps every spec it ran with under history/<n>/, the first copied there at its growth."""
    fs, root = filesystem(folder)
    fs.create_dir(root, recursive=True)
    if generation > 0:
        first = f"{root}/{HISTORY}/0"
        if fs.get_file_info(first).type == pafs.FileType.NotFound:
            fs.create_dir(first, recursive=True)
            for name in (SPEC_AS_WRITTEN, SPEC_FILE):
                if fs.get_file_info(f"{root}/{name}").type != pafs.FileType.NotFound:
                    fs.copy_file(f"{root}/{name}", f"{first}/{name}")
        fs.create_dir(f"{root}/{HISTORY}/{generation}", recursive=True)
        _write_files(fs, f"{root}/{HISTORY}/{generation}", spec, written)
    _write_files(fs, root, spec, written)


def _write_files(fs: pafs.FileSystem, root: str, spec: SweepSpec, written: str | None) -> None:
    files = [(SPEC_AS_WRITTEN, written)] if written is not None else []
    for name, text in [*files, (SPEC_FILE, spec.to_yaml())]:
        tmp = f"{root}/.{name}.tmp"
        with fs.open_output_stream(tmp) as out:
            out.write(text.encode())
        fs.move(tmp, f"{root}/{name}")


def history(folder: str) -> list[SweepSpec]:
    """Every spec the sweep ran with, oldest first: history/<n>/ once it has grown, else the
    one spec it has."""
    fs, root = filesystem(folder)
    specs: list[SweepSpec] = []
    while True:
        path = f"{root}/{HISTORY}/{len(specs)}/{SPEC_FILE}"
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            break
        with fs.open_input_stream(path) as f:
            specs.append(parse_spec_text(f.read().decode(), path))
    return specs or [read_spec(folder)]


def _first_missing(fs: pafs.FileSystem, path: str) -> str | None:
    """The outermost folder of `path` that does not exist yet (None if `path` exists)."""
    missing = None
    while fs.get_file_info(path).type == pafs.FileType.NotFound:
        missing, parent = path, path.rsplit("/", 1)[0]
        if parent in ("", path):
            break
        path = parent
    return missing


def read_spec(folder: str) -> SweepSpec:
    fs, root = filesystem(folder)
    try:
        with fs.open_input_stream(f"{root}/{SPEC_FILE}") as f:
            text = f.read().decode()
    except (FileNotFoundError, OSError):
        raise SweepError(f"{folder}: no sweep here (no {SPEC_FILE})") from None
    return parse_spec_text(text, f"{folder}/{SPEC_FILE}")


def run(
    spec: SweepSpec,
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    live: bool = True,
    written: str | None = None,
) -> str:
    """Run a whole sweep: search every cell, then confirm each cell's best; returns its folder.
    `written`: the spec file's text, kept beside the resolved spec for the report.

    Where a sweep with a spec that `spec` only adds to exists (see `sweep.growth`), the sweep
    grows: a new generation, in a Ray Tune experiment of its own, runs just the new work."""
    from ray import tune

    folder = sweep_dir(spec)
    fs, root = filesystem(folder)
    try:
        exists = fs.get_file_info(f"{root}/{SPEC_FILE}").type != pafs.FileType.NotFound
    except OSError as e:
        raise SweepError(f"{folder}: cannot use this storage: {e}") from None
    past = history(folder) if exists else []
    # grows: a new generation; else the same spec as the latest one, its Tuner not started
    grows = exists and _compare(folder, spec)
    generation = len(past) if grows else max(len(past) - 1, 0)
    created = None if exists else _first_missing(fs, root)
    try:
        fs.create_dir(root, recursive=True)
    except OSError as e:
        raise SweepError(f"{folder}: cannot write the sweep there: {e}") from None
    try:
        known = _embedded_node(spec, address, num_cpus, num_gpus)
        if known is not None:
            _check_resources(spec, address, known)
        _init_ray(address, num_cpus, num_gpus, spec)
        _check_resources(spec, address)
        if address:
            _check_storage(folder)
        download_journal(folder)
        _write_spec(folder, spec, written, generation)
    except BaseException:
        inside = fs.get_file_info(pafs.FileSelector(created, recursive=True)) if created else []
        if created and all(i.type == pafs.FileType.Directory for i in inside):
            fs.delete_dir(created)  # nothing ran: leave nothing behind, not even folders
        raise
    _allow_pending_trials(spec)
    _no_callback_usage_tag()
    order = cell_order([*past[:generation], spec]) if generation else None
    cells = make_cells(spec, order)  # the sweep's plan, resolved once
    # the results writer first: a report is in the tables before any tracker sees it
    callbacks: list[Any] = [ResultsWriter(spec, folder), *trackers(spec, folder)]
    if live:
        callbacks.append(LiveCells(spec))
    asha = spec.asha
    tuner = tune.Tuner(
        _trainable(spec, folder),
        tune_config=tune.TuneConfig(
            search_alg=CellSearcher(spec, cells, folder),
            scheduler=(
                None if asha is None else CellScheduler(asha, spec.train_config().episodes, folder)
            ),
            num_samples=len(cells) * budget(spec),
            max_concurrent_trials=spec.max_concurrent,
            # A reused trainable would keep its placement group, and with it the workers of
            # a trial the scheduler stopped: data-parallel trials get fresh ones.
            reuse_actors=spec.resources.workers == 1,
            trial_dirname_creator=_trial_dirname,
            trial_name_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=tune_dir(generation),
            storage_path=folder,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=spec.fault_tolerance.max_failures),
            verbose=0,
        ),
    )
    tuner.fit()
    _finish(folder)
    return folder


def _compare(folder: str, spec: SweepSpec) -> bool:
    """Whether `spec` grows the sweep in `folder` (False: the same spec). A change that is
    not growth raises SpecError, one line per changed key."""
    stored = read_spec(folder)
    refused, _ = changes(stored, spec)
    if refused:
        raise SpecError(refusal(folder, refused))
    place = ("storage", "plugin_root")  # where the sweep is, and where its file was read
    old, new = stored.model_dump(mode="json"), spec.model_dump(mode="json")
    return {k: v for k, v in old.items() if k not in place} != {
        k: v for k, v in new.items() if k not in place
    }


def growth(folder: str, spec: SweepSpec) -> list[str]:
    """What `spec` adds to the sweep in `folder`, one line per addition."""
    return changes(read_spec(folder), spec)[1]


def existing(spec: SweepSpec) -> str | None:
    """What `sweep run` finds where `spec`'s sweep goes: None (no sweep there, or the same
    spec whose Tuner never started: run it), "grow" (a sweep that `spec` only adds to: run
    the new work), "resume" (the same spec, started: continue it) or "done" (the same spec,
    nothing left to run). A sweep there with a spec that `spec` changes raises SpecError,
    one line per changed key."""
    folder = sweep_dir(spec)
    fs, root = filesystem(folder)
    try:
        if fs.get_file_info(f"{root}/{SPEC_FILE}").type == pafs.FileType.NotFound:
            return None
    except OSError as e:
        raise SweepError(f"{folder}: cannot use this storage: {e}") from None
    if _compare(folder, spec):
        return "grow"
    if fs.get_file_info(f"{root}/{_latest_tune_dir(folder)}").type == pafs.FileType.NotFound:
        return None
    return "resume" if unfinished(folder, spec) else "done"


def unfinished(folder: str, spec: SweepSpec) -> list[str]:
    """The cells with work left: search trials not yet finished, or confirmation seeds the
    cell's current best (per its Optuna study) has no trials row for."""
    download_journal(folder)
    journal = local_journal(folder)
    trials = read_table(folder, "trials")
    confirmed = trials[trials["phase"] == "confirm"] if len(trials) else trials
    if not journal.exists():
        return cell_ids(spec)
    storage = journal_storage(journal)
    names = set(optuna.get_all_study_names(storage))
    left = []
    for cell in cell_ids(spec):
        if cell not in names:
            left.append(cell)
            continue
        study = optuna.load_study(study_name=cell, storage=storage)
        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        if len(finished) < spec.search.trials_per_cell:
            left.append(cell)
            continue
        best = chosen(study, study.user_attrs.get("goal", "min"))
        if best is None or spec.confirm.seeds == 0:
            continue  # nothing to confirm
        mine = confirmed[(confirmed["cell"] == cell) & (confirmed["optuna_trial"] == best.number)]
        if mine["seed"].nunique() < spec.confirm.seeds:
            left.append(cell)
    return left


def _latest_tune_dir(folder: str) -> str:
    return tune_dir(len(history(folder)) - 1)


def _finish(folder: str) -> None:
    compact(folder)
    upload_journal(folder)
    _check_outcome(folder)


def resume(
    folder: str,
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
) -> str:
    """Finish an interrupted sweep: finished trials stay finished, running ones continue from
    their last checkpoint, the searcher hands out what is left of every cell's budget."""
    from ray import tune

    spec = read_spec(folder)
    fs, root = filesystem(folder)
    latest = _latest_tune_dir(folder)
    if fs.get_file_info(f"{root}/{latest}").type == pafs.FileType.NotFound:
        raise SweepError(f"{folder}: the sweep never started (no {latest}/); run it again")
    _init_ray(address, num_cpus, num_gpus, spec)
    _check_resources(spec, address)
    if address:
        _check_storage(folder)
    download_journal(folder)
    _allow_pending_trials(spec)
    _no_callback_usage_tag()
    tuner = tune.Tuner.restore(
        folder.rstrip("/") + f"/{latest}",
        trainable=_trainable(spec, folder),
        resume_unfinished=True,
        resume_errored=True,
    )
    tuner.fit()
    _finish(folder)
    return folder


def status(folder: str) -> Any:
    """The cells table from storage."""
    spec = read_spec(folder)
    trials, curves = read_table(folder, "trials"), read_table(folder, "curves")
    counts = counts_from_storage(spec, trials, curves)
    return render(counts, f"sweep {spec.name}: {folder}", *task_metric(spec.task))


__all__ = ["SweepError", "SweepFailed", "existing", "read_spec", "resume", "run", "status"]
