"""Trackers (the spec's `tracking:`): real sweeps logging to TensorBoard, MLflow (a folder and a
loopback server) and W&B offline, read back with each tool's own reader."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sweep.spec import SpecError, parse_spec
from sweep.tracking import PACKAGES
from tests.support.driver import Driver
from tests.support.sweeps import MLflowServer, sweep, tiny_spec, write_spec

# The module's sweeps (the `local` one, read by three tests) and its MLflow server, once:
# pytest-xdist runs the module's tests in one process, not each of its fixtures in two.
pytestmark = pytest.mark.xdist_group("tracking")
METRIC = "bit_error"  # the patterns task's
TAGS = ["timesteps_total", METRIC, f"best_{METRIC}", "loss", "episodes_per_second"]


def _spec(tmp: Path, name: str, tracking: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """2 models x (1 search trial + 1 confirmation seed): 4 trials of 2 evaluations."""
    models = {"plastic": {"family": "plastic"}, "lstm": {"family": "lstm", "hidden": 16}}
    changes.setdefault("search", {**tiny_spec(tmp)["search"], "trials_per_cell": 1})
    return tiny_spec(
        tmp,
        name=name,
        difficulties=["trivial"],
        models=models,
        confirm={"seeds": 1},
        tracking=tracking,
        **changes,
    )


def _tables(folder: Path, count: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    trials = pd.read_parquet(folder / "trials")
    assert len(trials) == count and set(trials["status"]) == {"completed"}
    return trials, pd.read_parquet(folder / "curves")


def _curve(curves: pd.DataFrame, trial_id: str) -> pd.DataFrame:
    return curves[curves["trial_id"] == trial_id].sort_values("episodes")


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("tracking:")]


# -- the spec ------------------------------------------------------------------------------


def test_tracking_is_off_by_default_and_true_turns_a_tracker_on_with_its_defaults() -> None:
    plain = parse_spec(tiny_spec(Path("/nonexistent")))
    assert plain.tracking.names() == []
    spec = parse_spec(
        tiny_spec(Path("/nonexistent"), tracking={"wandb": True, "mlflow": True, "tensorboard": 1})
    )
    assert spec.tracking.names() == ["tensorboard", "mlflow", "wandb"]
    assert spec.tracking.mlflow is not None and spec.tracking.mlflow.tracking_uri is None
    assert spec.tracking.wandb is not None and spec.tracking.wandb.mode == "offline"


def test_bad_tracking_settings_are_one_line_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking = {"tensorbord": True, "wandb": {"mode": "sometimes"}, "mlflow": {"tracking_url": "x"}}
    with pytest.raises(SpecError) as e:
        parse_spec(tiny_spec(Path("/nonexistent"), tracking=tracking))
    assert sorted(e.value.errors) == [
        "tracking.mlflow.tracking_url: unknown key; did you mean 'tracking_uri'?",
        "tracking.tensorbord: unknown key; did you mean 'tensorboard'?",
        "tracking.wandb.mode: 'sometimes': Input should be 'offline' or 'online'",
    ]
    remote = tiny_spec(Path("/x"), storage="s3://bucket/sweeps", tracking={"mlflow": True})
    with pytest.raises(SpecError) as e:
        parse_spec(remote)
    assert e.value.errors == [
        "tracking.mlflow.tracking_uri: missing: the sweep's storage 's3://bucket/sweeps' is not "
        "a local folder, so give a server (http://HOST:PORT) or set MLFLOW_TRACKING_URI"
    ]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert parse_spec(remote).tracking.names() == ["mlflow"]


BLOCK = """\
import sys


class Absent:
    '''These packages cannot be imported, as if they were not installed.'''

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, Absent())
"""


@pytest.mark.slow
def test_a_tracker_whose_package_is_missing_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path,
) -> None:
    """The real validator in a real `sweep run`, with the packages made unimportable by a
    `sitecustomize` on PYTHONPATH."""
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "sitecustomize.py").write_text(BLOCK.format(BLOCKED=sorted(PACKAGES.values())))
    tracking = {"tensorboard": True, "mlflow": {"experiment": "x"}, "wandb": {"project": "p"}}
    spec = _spec(tmp_path, "missing", tracking)
    done = sweep("run", str(write_spec(tmp_path, spec)), env={**_env(), "PYTHONPATH": str(blocked)})
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"sweep: error: tracking.{name}: package {package!r} is not installed; "
        f"pip install -e '.[{name}]' (or '.[tracking]' for all three)"
        for name, package in PACKAGES.items()
    ]
    assert not (tmp_path / "results").exists()


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


# -- TensorBoard, an MLflow folder and W&B offline in one sweep ------------------------------


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("trackers")
    tracking = {"tensorboard": True, "mlflow": True, "wandb": {"mode": "offline"}}
    # WANDB_BASE_URL: had anything been sent, it would have gone nowhere
    env = {**_env(), "WANDB_BASE_URL": "http://127.0.0.1:9"}
    done = sweep("run", str(write_spec(tmp, _spec(tmp, "local", tracking))), env=env)
    return tmp / "results" / "local", done


@pytest.mark.slow
def test_tensorboard_has_every_trial_curve_and_identity(local: tuple[Path, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    folder, done = local
    assert done.returncode == 0, done.stderr[-3000:]
    assert _warnings(done.stderr) == []
    trials, curves = _tables(folder)
    runs = sorted(p.parent for p in (folder / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(runs) == len(trials)
    for _, trial in trials.iterrows():
        run = f"{trial['difficulty']}/{trial['model']}/{trial['phase']}-seed{trial['seed']}"
        events = EventAccumulator(str(folder / "tensorboard" / f"{run}-{trial['trial_id']}"))
        events.Reload()
        assert sorted(events.Tags()["scalars"]) == sorted(f"ray/tune/{t}" for t in TAGS)
        curve = _curve(curves, trial["trial_id"])
        logged = events.Scalars(f"ray/tune/{METRIC}")
        assert [e.step for e in logged] == curve["episodes"].tolist()
        assert [e.value for e in logged] == pytest.approx(curve["value"].tolist())
        start = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
        hparams = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.hparams
        for key in ("cell", "difficulty", "model", "phase", "trial_id"):
            assert hparams[key].string_value == trial[key]
        assert hparams["seed"].string_value == str(trial["seed"])
        assert hparams["lr"].number_value == pytest.approx(trial["hp.lr"])


@pytest.mark.slow
def test_an_mlflow_folder_has_one_run_per_trial_with_params_and_history(
    local: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    folder, done = local
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    _check_mlflow(MlflowClient((folder / "mlruns").as_uri()), "local", *_tables(folder))


def _check_mlflow(client: Any, experiment: str, trials: pd.DataFrame, curves: pd.DataFrame) -> None:
    found = client.get_experiment_by_name(experiment)
    runs = {r.data.tags["trial_id"]: r for r in client.search_runs([found.experiment_id])}
    assert sorted(runs) == sorted(trials["trial_id"])
    for _, trial in trials.iterrows():
        run = runs[trial["trial_id"]]
        assert run.info.status == "FINISHED"
        assert run.info.run_name.startswith(f"{trial['cell']} {trial['phase']} seed")
        for key in ("cell", "difficulty", "model", "phase", "sweep"):
            assert run.data.tags[key] == trial[key]
        assert run.data.tags["goal"] == "min" and run.data.tags["metric"] == METRIC
        params = run.data.params
        for column in [c for c in trials.columns if c.startswith("hp.") and pd.notna(trial[c])]:
            name = column.removeprefix("hp.")  # every resolved hyperparameter is a param
            logged = params.get(f"train/{name}", params.get(f"model_params/{name}"))
            assert logged is not None, column
            expected = trial[column]
            if isinstance(expected, str | bool | np.bool_):
                assert logged == str(expected)
            else:
                assert float(logged) == pytest.approx(float(expected))
        curve = _curve(curves, trial["trial_id"])
        for metric, column in [(METRIC, "value"), ("loss", "loss")]:
            history = sorted(client.get_metric_history(run.info.run_id, metric), key=_step)
            assert [m.step for m in history] == curve["episodes"].tolist()
            assert [m.value for m in history] == pytest.approx(curve[column].tolist())


def _step(metric: Any) -> int:
    return int(metric.step)


def _wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf `Record`s of a W&B run file: a 7-byte header, then LevelDB's log format
    (32 KiB blocks of chunks, each with a 7-byte header: CRC32C, length, type)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending = 32 * 1024, 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the end of a block is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if kind == 0:
            break
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
            record.ParseFromString(pending)
            yield record
            pending = b""


@pytest.mark.slow
def test_wandb_offline_writes_one_run_folder_per_trial(local: tuple[Path, Any]) -> None:
    import json

    folder, done = local
    assert done.returncode == 0, done.stderr[-3000:]
    trials, curves = _tables(folder)
    files = {
        p.name.removeprefix("run-").removesuffix(".wandb"): p
        for p in (folder / "wandb").glob("offline-run-*/run-*.wandb")
    }
    assert sorted(files) == sorted(trials["trial_id"])  # W&B's run id is the trial's
    for _, trial in trials.iterrows():
        records = list(_wandb_records(files[trial["trial_id"]]))
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        assert (run.project, run.run_group, run.job_type) == ("local", "local", trial["phase"])
        assert run.display_name.startswith(f"{trial['cell']} {trial['phase']} seed")
        config = {item.key: json.loads(item.value_json) for item in run.config.update}
        for key in ("cell", "difficulty", "model", "phase", "seed"):
            assert config[key] == trial[key]
        assert list(run.tags) == [trial[k] for k in ("cell", "difficulty", "model", "phase")]
        logged = [
            {_key(item): json.loads(item.value_json) for item in r.history.item}
            for r in records
            if r.WhichOneof("record_type") == "history"
        ]
        curve = _curve(curves, trial["trial_id"])
        assert [h[METRIC] for h in logged] == pytest.approx(curve["value"].tolist())
        assert [h["timesteps_total"] for h in logged] == curve["episodes"].tolist()


def _key(item: Any) -> str:
    return str(item.key or "/".join(item.nested_key))


# -- an MLflow server on loopback ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
    """One server for the tests below; the last one kills it."""
    running = MLflowServer(tmp_path_factory.mktemp("mlflow"))
    yield running
    running.stop()


@pytest.mark.slow
def test_an_mlflow_server_gets_one_run_per_trial(server: MLflowServer, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    tracking = {"mlflow": {"tracking_uri": server.uri, "experiment": "plasticity"}}
    done = sweep("run", str(write_spec(tmp_path, _spec(tmp_path, "served", tracking))))
    assert done.returncode == 0, done.stderr[-3000:]
    assert _warnings(done.stderr) == []
    folder = tmp_path / "results" / "served"
    _check_mlflow(MlflowClient(server.uri), "plasticity", *_tables(folder))


@pytest.mark.slow
def test_an_mlflow_server_that_dies_mid_sweep_is_one_warning_and_loses_no_row(
    server: MLflowServer, tmp_path: Path
) -> None:
    """The server is killed once the sweep's first run is there; the sweep finishes, its
    tables whole, and TensorBoard (another tracker) still has every trial."""
    from mlflow import MlflowClient

    tracking = {"tensorboard": True, "mlflow": {"tracking_uri": server.uri, "experiment": "dies"}}
    train = {"episodes": 600, "batch_size": 8, "eval_every": 200, "eval_episodes": 16}
    search = {**tiny_spec(tmp_path)["search"], "trials_per_cell": 2}  # 6 trials: time to die
    path = write_spec(tmp_path, _spec(tmp_path, "dies", tracking, train=train, search=search))
    client = MlflowClient(server.uri)

    def first_run_seen() -> bool:
        found = client.get_experiment_by_name("dies")
        return found is not None and bool(client.search_runs([found.experiment_id]))

    with Driver("run", str(path), logs=tmp_path) as driver:
        if driver.wait_until(first_run_seen):
            server.stop()
        assert driver.finish() == 0, driver.stderr[-3000:]
    assert server.process.poll() is not None, "the sweep ended before its first run was seen"
    stderr = driver.stderr
    (warning,) = _warnings(stderr)
    assert warning.startswith("tracking: mlflow failed (")
    assert warning.endswith(
        "it is off for the rest of this sweep, which goes on (the Parquet tables are complete)"
    )
    folder = tmp_path / "results" / "dies"
    trials, curves = _tables(folder, count=6)
    assert len(curves) == 3 * len(trials)  # every evaluation of every trial
    assert len(list((folder / "tensorboard").rglob("events.out.tfevents.*"))) == len(trials)
