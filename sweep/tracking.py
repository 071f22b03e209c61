"""Following a sweep live in TensorBoard, MLflow or Weights & Biases (the spec's `tracking:`).

Each tracker is Ray Tune's own logger callback for that tool, on the driver, fed one view of
every report (`tracked_result`: the task's metric under its name, its best so far, the loss,
episodes per second; stepped by training episodes) and told each trial's identity (sweep,
cell, difficulty, model, phase, seed) as tags, so the tool's own UI groups runs by cell and
compares models. Every callback is wrapped (`Tracker`): an exception in it is one warning
line and that tracker stays off for the rest of the sweep; trials and the Parquet tables
never see it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback

from sweep.errors import one_line
from sweep.extras import PACKAGES as PACKAGES  # the trackers' packages, named here too
from sweep.records import TrialConfig, TrialResult
from sweep.store import filesystem

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from sweep.spec import SweepSpec

log = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"  # W&B itself puts its run folders in a `wandb/` folder of the dir given
MLFLOW_DIR = "mlruns"


def identity(sweep: str, config: TrialConfig, trial_id: str) -> dict[str, str]:
    """A trial's identity as tags: the identity columns of the tables, and what its metric
    measures."""
    return {
        "sweep": sweep,
        "trial_id": trial_id,
        "cell": config.cell,
        "difficulty": config.difficulty,
        "model": config.model,
        "family": config.family,
        "phase": config.phase,
        "seed": str(config.seed),
        "task": config.task,
        "metric": config.descriptor.metric,
        "goal": config.descriptor.goal,  # min: lower is better; max: higher is better
    }


def hyperparameters(config: TrialConfig) -> dict[str, Any]:
    """Every resolved hyperparameter of a trial (training, learner, model), scalars only."""
    values = {**config.train, **config.learner_settings, **config.model_params}
    return {k: v for k, v in values.items() if isinstance(v, str | bool | int | float)}


def tracked_result(config: TrialConfig, report: TrialResult) -> dict[str, Any]:
    """What every tracker logs at one evaluation. Tune's loggers step by `timesteps_total`
    (TensorBoard, MLflow: training episodes) or `training_iteration` (W&B: evaluations)."""
    return {
        "timesteps_total": report.episodes,
        "training_iteration": report.step,
        config.descriptor.metric: report.value,
        f"best_{config.descriptor.metric}": report.best_value,
        "loss": report.loss,
        "episodes_per_second": report.episodes_per_second,
    }


def run_name(config: TrialConfig, trial_id: str) -> str:
    """A trial's run name in the trackers: its cell, phase and seed, then its id."""
    return f"{config.cell} {config.phase} seed {config.seed} ({trial_id})"


class Tracker(Callback):
    """One tracker's Tune callback behind a guard: it gets `tracked_result`s instead of raw
    results, and the first exception it raises is one warning line and turns it off."""

    def __init__(self, name: str, inner: Callback):
        self.name = name
        self.inner = inner
        self.failed = False

    def _call(self, hook: str, *args: Any, **info: Any) -> None:
        if self.failed:
            return
        try:
            getattr(self.inner, hook)(*args, **info)
        except Exception as e:
            self.failed = True
            log.warning(
                "tracking: %s failed (%s); it is off for the rest of this sweep, "
                "which goes on (the Parquet tables are complete)",
                self.name,
                one_line(e),
            )

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        self._call("setup", stop, num_samples, total_num_samples, **info)

    def on_trial_start(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self._call("on_trial_start", iteration, trials, trial, **info)

    def on_trial_restore(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self._call("on_trial_restore", iteration, trials, trial, **info)

    def on_trial_save(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self._call("on_trial_save", iteration, trials, trial, **info)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Trial, result: dict, **info: Any
    ) -> None:
        report = TrialResult.from_dict(result)
        if report is None:
            return
        tracked = tracked_result(TrialConfig.from_dict(trial.config), report)
        self._call("on_trial_result", iteration, trials, trial, tracked, **info)

    def on_trial_complete(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self._call("on_trial_complete", iteration, trials, trial, **info)

    def on_trial_error(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self._call("on_trial_error", iteration, trials, trial, **info)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._call("on_experiment_end", trials, **info)


def trackers(spec: SweepSpec, folder: str) -> list[Tracker]:
    """The spec's trackers for the sweep in `folder`, each behind its guard."""
    tracking = spec.tracking
    found: list[Tracker] = []
    if tracking.tensorboard:
        found.append(Tracker("tensorboard", _tensorboard(spec, folder)))
    if tracking.mlflow is not None:
        uri = tracking.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        uri = uri or f"{folder}/{MLFLOW_DIR}"  # validation saw that `folder` is local then
        experiment = tracking.mlflow.experiment or spec.name
        found.append(Tracker("mlflow", _mlflow(spec.name, uri, experiment)))
    if tracking.wandb is not None:
        found.append(Tracker("wandb", _wandb(spec, folder)))
    return found


def _tensorboard(spec: SweepSpec, folder: str) -> Callback:
    """Ray Tune's TensorBoard callback, writing one run folder per trial under
    `<sweep>/tensorboard/<difficulty>/<model>/<phase>-seed<seed>-<trial id>/` (on object
    storage: written locally, copied there when the trial ends)."""
    from ray.tune.logger import TBXLoggerCallback

    class TensorBoard(TBXLoggerCallback):
        def __init__(self, sweep: str, folder: str):
            super().__init__()
            self.sweep, self.folder = sweep, folder
            self.staging: str | None = None  # a local folder when the sweep's is remote
            self.runs: dict[Trial, str] = {}

        def log_trial_start(self, trial: Trial) -> None:
            # Ray's, but into the sweep's tensorboard/ folder instead of Tune's trial folder
            if trial in self._trial_writer:
                self._trial_writer[trial].close()
            self._trial_writer[trial] = self._summary_writer_cls(self._logdir(trial), flush_secs=30)
            self._trial_result[trial] = {}

        def _logdir(self, trial: Trial) -> str:
            config = TrialConfig.from_dict(trial.config)
            run = f"{config.difficulty}/{config.model}/{config.phase}-seed{config.seed}"
            self.runs[trial] = run = f"{run}-{trial.trial_id}"
            fs, root = filesystem(self.folder)
            if fs.type_name == "local":
                return f"{root}/{TENSORBOARD_DIR}/{run}"
            self.staging = self.staging or tempfile.mkdtemp(prefix="sweep-tensorboard-")
            return f"{self.staging}/{run}"

        def _try_log_hparams(self, trial: Trial, result: dict) -> None:
            # The identity and the resolved hyperparameters, for TensorBoard's HParams tab
            # (Ray's would log the searcher's nested config, which it cannot show).
            from tensorboardX.summary import hparams

            config = TrialConfig.from_dict(trial.config)
            values = {**identity(self.sweep, config, trial.trial_id), **hyperparameters(config)}
            for summary in hparams(hparam_dict=values, metric_dict=result):
                self._trial_writer[trial].file_writer.add_summary(summary)

        def log_trial_end(self, trial: Trial, failed: bool = False) -> None:
            super().log_trial_end(trial, failed)
            run = self.runs.pop(trial, None)
            if self.staging is not None and run is not None:
                import pyarrow.fs as pafs

                fs, root = filesystem(self.folder)
                pafs.copy_files(
                    f"{self.staging}/{run}",
                    f"{root}/{TENSORBOARD_DIR}/{run}",
                    source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs,
                )

    return TensorBoard(spec.name, folder)


def _mlflow(sweep: str, uri: str, experiment: str) -> Callback:
    """Ray Tune's MLflow callback: one run per trial with its config as params and the
    trial's identity as tags."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    if "://" not in uri or uri.startswith("file:"):
        # MLflow 3 keeps its folder store in maintenance mode and refuses it unless asked;
        # a folder named in the spec is asking.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = Path(uri.removeprefix("file://")).absolute().as_uri()
    # A server that is down is found out in seconds, not after MLflow's minutes of retries
    # (the driver waits on every call); the user's own settings win.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    # not two lines of links per trial between the sweep's own output
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

    class MLflow(MLflowLoggerCallback):
        def __init__(self, sweep: str, **kwargs: Any):
            super().__init__(**kwargs)
            self.sweep = sweep

        def log_trial_start(self, trial: Trial) -> None:
            # Ray's callback gives every run the same tags: add this trial's identity (the
            # run's name is the trial's, `run_name`)
            shared = self.tags
            config = TrialConfig.from_dict(trial.config)
            self.tags = {**(shared or {}), **identity(self.sweep, config, trial.trial_id)}
            try:
                super().log_trial_start(trial)
            finally:
                self.tags = shared

    return MLflow(sweep, tracking_uri=uri, experiment_name=experiment)


def _wandb(spec: SweepSpec, folder: str) -> Callback:
    """Ray Tune's W&B callback: one run per trial (in a logging actor of its own on the
    driver's node), grouped by sweep, with the trial's identity as tags and its config."""
    import ray
    from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

    settings = spec.tracking.wandb
    assert settings is not None
    project = settings.project or os.environ.get("WANDB_PROJECT") or spec.name
    fs, root = filesystem(folder)
    kwargs: dict[str, Any] = {"mode": settings.mode}
    if settings.entity is not None:
        kwargs["entity"] = settings.entity
    if fs.type_name == "local":  # otherwise where W&B puts them (WANDB_DIR, say)
        os.makedirs(root, exist_ok=True)
        kwargs["dir"] = root

    class Logger(_WandbLoggingActor):
        def run(self) -> None:
            super().run()
            # `finish()` returns before W&B's service has written the run, and the callback
            # kills this actor as soon as `run` returns: under load, an offline run's file
            # was left empty. `teardown` waits for the service to finish writing.
            self._wandb.teardown()

    class Wandb(WandbLoggerCallback):
        _logger_actor_cls = Logger

        def __init__(self, sweep: str, **kwargs: Any):
            super().__init__(**kwargs)
            self.sweep = sweep

        def setup(self, *args: Any, **kwargs: Any) -> None:
            # Ray's looks for an API key and fails without one; offline sends nothing
            if self.kwargs.get("mode") != "offline":
                super().setup(*args, **kwargs)

        def log_trial_start(self, trial: Trial) -> None:
            config = TrialConfig.from_dict(trial.config)
            tags = identity(self.sweep, config, trial.trial_id)
            shared = self.kwargs
            self.kwargs = {
                **shared,
                "job_type": config.phase,
                "tags": [tags[k] for k in ("cell", "difficulty", "model", "phase")],
            }
            try:
                super().log_trial_start(trial)
            finally:
                self.kwargs = shared

        def _cleanup_logging_actor(self, trial: Trial) -> None:
            # Ray's callback drops a logging actor's error (no run, say, for want of a key):
            # raise it, so that it is reported.
            future = self._trial_logging_futures[trial]
            ready, _ = ray.wait([future], timeout=0)
            super()._cleanup_logging_actor(trial)
            if ready:
                ray.get(future)

    return Wandb(spec.name, project=project, group=spec.name, **kwargs)
