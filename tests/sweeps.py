"""Helpers for tests that run real sweeps: specs in a temporary folder, `sweep` subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

SWEEP = str(Path(sys.executable).with_name("sweep"))
RAY = str(Path(sys.executable).with_name("ray"))


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


def write_spec(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / f"{spec.get('name', 'spec')}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep(*args: str, timeout: float = 600, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SWEEP, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kw,
    )


def status_rows(stdout: str) -> dict[str, list[str]]:
    """The cells table `sweep status` prints: cell -> [done, failed, running, pending, search
    best, confirmed median, confirmed solved]."""
    rows = [line for line in stdout.splitlines() if "/" in line and "│" in line]
    cells = [[c.strip() for c in row.strip("│ ").split("│")] for row in rows]
    return {c[0]: c[1:] for c in cells}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """Ray nodes started with `ray start --block` on this machine, each in its own process
    group, so a node can be killed alone and teardown never touches other Ray instances."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", **(env or {})}
        self.port = _free_port()
        self.nodes: list[subprocess.Popen[bytes]] = []
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
        node = subprocess.Popen(
            command,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.nodes.append(node)
        return node

    def wait_for(self, alive: int, timeout: float = 120) -> None:
        script = (
            "import ray, time, sys\n"
            f"ray.init(address={self.address!r}, log_to_driver=False)\n"
            f"end = time.time() + {timeout}\n"
            f"while sum(n['Alive'] for n in ray.nodes()) != {alive} and time.time() < end:\n"
            "    time.sleep(0.5)\n"
            f"sys.exit(sum(n['Alive'] for n in ray.nodes()) != {alive})\n"
        )
        subprocess.run(
            [sys.executable, "-c", script],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=timeout + 60,
        )

    def node_with(self, resource: str) -> str:
        """The id of the node that offers `resource`."""
        script = (
            "import ray\n"
            f"ray.init(address={self.address!r}, log_to_driver=False)\n"
            f"print([n['NodeID'] for n in ray.nodes() if {resource!r} in n['Resources']][0])\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.stdout.strip().splitlines()[-1]

    def kill(self, node: subprocess.Popen[bytes]) -> None:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait()

    def stop(self) -> None:
        for node in self.nodes:
            if node.poll() is None:
                self.kill(node)

    def start_head(self) -> None:
        self.start("--head", f"--port={self.port}", "--include-dashboard=false")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError("the head node did not start")


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


def kill_node_mid_trial(
    cluster: LocalCluster,
    node: subprocess.Popen[bytes],
    node_id: str,
    folder: str | Path,
    driver: subprocess.Popen[bytes],
    timeout: float = 300,
) -> str | None:
    """Kill `node` as soon as the sweep at `folder` has curve rows of a trial running there
    that is not about to finish (step < 4); the id of that trial, or None if none ran there."""
    from sweep.results import read_table

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and driver.poll() is None:
        curves = read_table(folder, "curves")
        there = curves[(curves["node"] == node_id) & (curves["step"] < 4)]
        if len(there):
            cluster.kill(node)
            return str(there["trial_id"].iloc[0])
        time.sleep(0.3)
    return None
