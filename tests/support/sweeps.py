"""Real sweeps for tests: specs in a temporary folder, `sweep` subprocesses, local Ray
clusters, an S3 server and an MLflow server on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
import yaml

SWEEP = str(Path(sys.executable).with_name("sweep"))
RAY = str(Path(sys.executable).with_name("ray"))
ROOT = Path(__file__).resolve().parents[2]
RAW = "SWEEP_TEST_RAW"  # where `tests.support.tap` copies the rows it finds before compaction


def tiny_spec(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """2 difficulties x 3 models x 2 trials + 2 confirmation seeds; each trial well under 1 s."""
    spec: dict[str, Any] = {
        "name": "tiny",
        "storage": str(tmp_path / "results"),
        "task": "patterns",
        "difficulties": ["trivial", "tiny"],
        "models": {
            "plastic": {"family": "plastic"},
            "rnn": {"family": "rnn", "match_parameters": "plastic"},
            "lstm": {"family": "lstm", "hidden": 16},
        },
        "train": {"episodes": 200, "batch_size": 8, "eval_every": 100, "eval_episodes": 16},
        "search": {
            "trials_per_cell": 2,
            "sampler": "tpe",
            "seed": 0,
            "space": {
                "lr": {"loguniform": [1.0e-4, 1.0e-2]},
                "eta": {"loguniform": [1.0e-3, 0.5]},
                "rule": {"choice": ["hebb", "oja"]},
            },
        },
        "early_stop": "none",
        "confirm": {"seeds": 2},
        "resources": {"cpu": 1, "gpu": 0},
        "max_concurrent": 2,
    }
    spec.update(changes)
    return spec


NODE_LOSS_EPISODES = 6000  # a node-loss trial's: 6 evaluations of 1000


def node_loss_spec(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """3 plastic trials of 6 evaluations, a checkpoint at each, long enough (about half a
    second an evaluation, quiet) that a node can be killed mid-trial (before step 4, with
    at least three evaluations to go) and the trial retried elsewhere."""
    spec = {
        "name": "nodeloss",
        "difficulties": ["paper-simplified"],
        "models": {"plastic": {"family": "plastic"}},
        "train": {
            "episodes": NODE_LOSS_EPISODES,
            "batch_size": 8,
            "eval_every": NODE_LOSS_EPISODES // 6,
            "eval_episodes": 16,
        },
        "search": {"trials_per_cell": 3, "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}}},
        "confirm": {"seeds": 0},
        "fault_tolerance": {"max_failures": 3, "checkpoint_every_s": 0},
    }
    return tiny_spec(tmp_path, **{**spec, **changes})


def one_cell_spec(tmp_path: Path, name: str, **changes: Any) -> dict[str, Any]:
    """One cell, the plastic network at `small`, no confirmation: with `changes` (its
    `train` and `search`, say) a sweep that checks one behaviour of the runner."""
    spec = {
        "name": name,
        "difficulties": ["small"],
        "models": {"plastic": {"family": "plastic"}},
        "confirm": {"seeds": 0},
    }
    return tiny_spec(tmp_path, **{**spec, **changes})


def asha_search(trials: int, lr_high: float, grace_episodes: int) -> dict[str, Any]:
    """Spec settings: a random search of `trials` learning rates from 1e-6 (too low to learn)
    to `lr_high`, ASHA stopping the poor ones from `grace_episodes` on, one trial at a time."""
    return {
        "search": {
            "trials_per_cell": trials,
            "sampler": "random",
            "space": {"lr": {"loguniform": [1.0e-6, lr_high]}},
        },
        "early_stop": {
            "scheduler": "asha",
            "grace_episodes": grace_episodes,
            "reduction_factor": 2,
        },
        "max_concurrent": 1,
    }


# a killed sweep's trial evaluates at these episodes (6 evaluations)
KILLED_EVALUATIONS = list(range(96, 577, 96))  # multiples of the batch size (8)


KILLED_TRIALS = 2 * (3 + 1)  # a killed sweep's: 2 cells x (3 search + 1 confirmation)


def killed_spec(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """2 cells (plastic, LSTM) x 3 search trials + 1 confirmation seed (`KILLED_TRIALS`), 6
    evaluations a trial (`KILLED_EVALUATIONS`) with a checkpoint at each: a sweep whose
    driver is killed once some trials have ended, then continued."""
    spec = {
        "name": "killed",
        "difficulties": ["small"],
        "models": {"plastic": {"family": "plastic"}, "lstm": {"family": "lstm", "hidden": 32}},
        "train": {
            "episodes": KILLED_EVALUATIONS[-1],
            "batch_size": 8,
            "eval_every": KILLED_EVALUATIONS[0],
            "eval_episodes": 16,
        },
        "search": {"trials_per_cell": 3, "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}}},
        "confirm": {"seeds": 1},
        "fault_tolerance": {"checkpoint_every_s": 0},  # a checkpoint at every report
    }
    return tiny_spec(tmp_path, **{**spec, **changes})


def write_spec(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / f"{spec.get('name', 'spec')}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def command(args: Sequence[str], tap: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment changes for `sweep <args>`; with `tap`, the same
    command through `tests.support.tap`, which leaves the raw rows in that folder."""
    if tap is None:
        return [SWEEP, *args], {}
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return [sys.executable, "-m", "tests.support.tap", *args], {RAW: str(tap), "PYTHONPATH": path}


def tapped_sweep_on_path(tap: Path) -> Path:
    """A folder holding a `sweep` command that runs the real one through the tap (for
    scripts that call `sweep` from PATH, as a Slurm job does): put it first on PATH."""
    line, changes = command([], tap)
    folder = tap / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in changes.items())
    script = folder / "sweep"
    script.write_text(f'#!/bin/sh\n{exports}exec {shlex.join(line)} "$@"\n')
    script.chmod(0o755)
    return folder


def sweep(
    *args: str,
    timeout: float = 600,
    tap: Path | None = None,
    env: Mapping[str, str] | None = None,
    **kw: Any,
) -> subprocess.CompletedProcess[str]:
    """`sweep <args>` to the end; with `tap`, its raw rows before compaction left there."""
    line, changes = command(args, tap)
    if changes:
        env = {**(env or os.environ), **changes}
    return subprocess.run(
        line,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kw,
    )


def bound_by_permissions(command: list[str]) -> list[str]:
    """`command` run so that file permissions bind it. As root (CI runs as root), without
    the capabilities that let root read anything (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
    still uid 0, so the project and its virtual environment stay readable wherever they
    are, but a folder of mode 000 is closed to it as to any user."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]


def status_rows(stdout: str) -> dict[str, list[str]]:
    """The cells table `sweep status` prints: cell -> [done, failed, running, pending, search
    best, confirmed median, confirmed solved]."""
    rows = [line for line in stdout.splitlines() if "/" in line and "│" in line]
    cells = [[c.strip() for c in row.strip("│ ").split("│")] for row in rows]
    return {c[0]: c[1:] for c in cells}


def kill_session(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL `process` and every other process of the session it leads (started with
    `start_new_session`), then reap it (its exit status stays its own). Killing its process
    group is not enough: Ray's raylet starts each worker in a process group of its own, and
    a worker that outlives its raylet goes on training (and writing rows and checkpoints)
    until it notices, 1.7 s measured, which once let a "killed" node's trial finish there."""
    if process.poll() is None:
        process.kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rest = [
            p
            for p in psutil.process_iter()
            if p.pid != process.pid and _session(p.pid) == process.pid and still_running(p)
        ]
        if not rest:
            break
        for member in rest:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        time.sleep(0.02)
    process.wait()


def still_running(process: psutil.Process) -> bool:
    """Whether `process` still runs (a zombie, dead and not yet reaped by its new parent, does
    not: its reaping can take seconds here)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _session(pid: int) -> int | None:
    """The session id of process `pid`, or None when it is gone."""
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_address_file() -> Path:
    """Where `ray start --head` records the cluster a plain `ray.init()` joins."""
    from ray._common.utils import get_ray_address_file

    return Path(get_ray_address_file(None))


class LocalCluster:
    """Ray nodes started with `ray start --block` on this machine, each in its own process
    group, so a node can be killed alone and teardown never touches other Ray instances."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        # Token authentication, with this cluster's own token: `ray start --head` does not
        # create one (only `ray.init` of a new local instance does, in ~/.ray), so on a
        # fresh machine a head started before any embedded sweep refused to start.
        token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.env = {**os.environ, **token, **(env or {})}
        self.port = _free_port()
        self.nodes: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}
        import ray._private.services as services

        self.address = f"{services.get_node_ip_address()}:{self.port}"

    def start(self, *args: str, hide: Path | None = None) -> subprocess.Popen[bytes]:
        """A node; with `hide`, in its own mount namespace with an empty tmpfs over that
        folder, so the node cannot see the files there (as on another machine)."""
        command = [RAY, "start", "--block", "--disable-usage-stats", "--num-cpus=1", *args]
        if hide is not None:
            mount = 'mount -t tmpfs tmpfs "$0" && exec "$@"'
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount]
            command += [str(hide), *[RAY, "start", "--block", "--disable-usage-stats"]]
            command += ["--num-cpus=1", *args]
        with tempfile.NamedTemporaryFile("wb", prefix="ray-node-", delete=False) as log:
            node = subprocess.Popen(
                command,
                env=self.env,
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.logs[node.pid] = Path(log.name)
        self.nodes.append(node)
        return node

    def output(self, node: subprocess.Popen[bytes]) -> str:
        """What `ray start` printed for `node` (its last lines)."""
        return self.logs[node.pid].read_text(errors="replace")[-2000:]

    def wait_for(self, alive: int, timeout: float = 120) -> None:
        """Wait until `alive` nodes are up; their resources are then known (`node_with`)."""
        script = (
            "import json, ray, time, sys\n"
            f"ray.init(address={self.address!r}, log_to_driver=False)\n"
            f"end = time.time() + {timeout}\n"
            f"while sum(n['Alive'] for n in ray.nodes()) != {alive} and time.time() < end:\n"
            "    time.sleep(0.5)\n"
            "nodes = [n for n in ray.nodes() if n['Alive']]\n"
            "print(json.dumps({n['NodeID']: list(n['Resources']) for n in nodes}))\n"
            f"sys.exit(len(nodes) != {alive})\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout + 60,
        )
        self.resources: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])

    def node_with(self, resource: str) -> str:
        """The id of the node that offers `resource` (of those `wait_for` found)."""
        return next(node for node, names in self.resources.items() if resource in names)

    def kill(self, node: subprocess.Popen[bytes]) -> None:
        """Every process of `node`, as a machine's death would kill them (`kill_session`)."""
        kill_session(node)

    def stop(self) -> None:
        """Kill every node, and forget the head's address as `ray stop` does: `ray start
        --head` records it in Ray's temp folder, where a plain `ray.init()` on this machine
        would later try to join the dead head."""
        for node in self.nodes:
            if node.poll() is None:
                self.kill(node)
        for log in self.logs.values():
            log.unlink(missing_ok=True)
        if self.address_recorded():
            _ray_address_file().unlink(missing_ok=True)

    def address_recorded(self) -> bool:
        """Whether Ray's record of the current cluster on this machine names this head."""
        recorded = _ray_address_file()
        return recorded.is_file() and recorded.read_text().strip() == self.address

    def start_head(self, tries: int = 3) -> None:
        """The head, listening on `self.port`. A head that exits before it listens is started
        again on a new port (in case its port, free when chosen, was taken meanwhile: a guess;
        the failure once seen was a missing Ray token, fixed in `__init__`); a head that never
        comes up fails naming what `ray start` printed."""
        for _ in range(tries):
            head = self.start("--head", f"--port={self.port}", "--include-dashboard=false")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and head.poll() is None:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", self.port)) == 0:
                        return
                time.sleep(0.2)
            if head.poll() is None:
                break
            self.nodes.remove(head)
            self.port = _free_port()
            self.address = f"{self.address.rsplit(':', 1)[0]}:{self.port}"
        raise RuntimeError(f"the head node did not start:\n{self.output(head)}")


class S3Server:
    """moto's standalone S3 server on loopback: the S3 HTTP API, spoken to by pyarrow's real
    S3 client (and so by Ray Tune's storage); `env` points a process at it."""

    def __init__(self, bucket: str = "sweeps") -> None:
        self.port = _free_port()
        self.bucket = bucket
        self.env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}",
        }
        server = str(Path(sys.executable).with_name("moto_server"))
        self.process = subprocess.Popen(
            [server, "-H", "127.0.0.1", "-p", str(self.port)],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the S3 server did not start")
            time.sleep(0.2)
        import pyarrow.fs as pafs

        pafs.S3FileSystem(
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
            endpoint_override=self.env["AWS_ENDPOINT_URL"],
            allow_bucket_creation=True,
        ).create_dir(bucket)

    def uri(self, path: str) -> str:
        return f"s3://{self.bucket}/{path}"

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class MLflowServer:
    """`mlflow server` on loopback with a folder as its store (MLflow's own client, server and
    REST API); `uri` is its tracking URI."""

    def __init__(self, store: Path) -> None:
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        server = str(Path(sys.executable).with_name("mlflow"))
        command = [server, "server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--workers", "1", "--backend-store-uri", store.absolute().as_uri()]
        command += ["--default-artifact-root", (store / "artifacts").absolute().as_uri()]
        env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}
        self.process = subprocess.Popen(
            command,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import urllib.request

        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("the MLflow server did not start")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
