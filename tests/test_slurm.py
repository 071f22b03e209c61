"""slurm/sweep.sbatch on a real Slurm: Debian's slurm-wlm and munge, installed here when
missing (root), configured as one node of this machine, started for this module and stopped
at its end."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.support.driver import assert_not_run_again, raw_rows, tapped_rows
from tests.support.sweeps import SWEEP, _free_port, tapped_sweep_on_path, tiny_spec, write_spec

# Ray heads and Slurm daemons on this machine: the xdist group runs them one at a time
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]
SCRIPT = Path(__file__).parents[1] / "slurm" / "sweep.sbatch"
MUNGE_PID = Path("/run/munge/munged.pid")


def _install() -> str | None:
    """Install slurm-wlm and munge from the distribution; why not, or None."""
    if all(shutil.which(t) for t in ("sbatch", "slurmctld", "slurmd", "munged")):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "Slurm is not installed and this is not a root Debian machine to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "slurm-wlm", "munge"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"cannot install slurm-wlm and munge: {done.stderr.strip()[-300:]}"
    return None


def _munge() -> subprocess.Popen[bytes] | None:
    """munged, started unless one already answers; the one started, to stop."""
    if subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0:
        return None
    Path("/run/munge").mkdir(exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["runuser", "-u", "munge", "--", "mungekey", "-c"], check=True)
    return subprocess.Popen(["runuser", "-u", "munge", "--", "munged", "--foreground"])


CONF = """\
ClusterName=sweeptest
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobRequeue=1
# a requeued job is killed 2 s after its SIGTERM, not Slurm's default 30 s (a Ray node
# drains that long): the test waits less, and the sweep must resume from a harder stop
KillWait=2
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName={host} CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment in which sbatch, squeue and scontrol use this test's Slurm. Once a
    session (a pytest-xdist process may run tests of other files between this file's: a
    module fixture would start the daemons again while munged still holds its socket)."""
    why = _install()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = CONF.format(
        host=host, root=root, cpus=os.cpu_count() or 1, ctld_port=_free_port(), d_port=_free_port()
    )
    (root / "slurm.conf").write_text(conf)
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    munged = _munge()
    daemons = [
        subprocess.Popen([d, "-D"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for d in ("slurmctld", "slurmd")
    ]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sinfo = ["sinfo", "-h", "-o", "%T"]
            up = subprocess.run(sinfo, env=env, capture_output=True, text=True)
            if up.stdout.strip() == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"Slurm did not come up: {(root / 'slurmctld.log').read_text()[-2000:]}")
        yield env
    finally:
        for daemon in [*daemons, munged]:
            if daemon is not None:
                daemon.terminate()
                daemon.wait(timeout=30)


def _submit(env: dict[str, str], spec: Path, out: Path, tap: Path | None = None) -> str:
    """`sbatch slurm/sweep.sbatch SPEC` for this machine: one node, its CPUs, no GPU; with
    `tap`, its `sweep` leaves the raw rows before compaction there."""
    cpus = str(os.cpu_count() or 1)
    path = f"{Path(SWEEP).parent}:{env['PATH']}"
    if tap is not None:
        path = f"{tapped_sweep_on_path(tap)}:{path}"
    options = ["--parsable", "--nodes=1", f"--cpus-per-task={cpus}", "--gres=none"]
    done = subprocess.run(
        ["sbatch", *options, f"--output={out}", str(SCRIPT), str(spec)],
        env={**env, "PATH": path, "HOME": str(out.parent)},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().split(";")[0]


def _state(env: dict[str, str], job: str) -> str:
    shown = subprocess.run(
        ["scontrol", "show", "job", job], env=env, capture_output=True, text=True
    ).stdout
    return next((w.split("=")[1] for w in shown.split() if w.startswith("JobState=")), "GONE")


def _wait_done(env: dict[str, str], job: str, log: Path, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _state(env, job) not in ("COMPLETED", "FAILED", "GONE"):
        time.sleep(1)
    state = _state(env, job)
    assert state == "COMPLETED", f"{state}: {log.read_text()[-3000:] if log.exists() else ''}"


def _spec(tmp_path: Path, name: str, trials: int) -> Path:
    spec = tiny_spec(
        tmp_path,
        name=name,
        difficulties=["tiny"],
        models={"lstm": {"family": "lstm", "hidden": 16}},
        # about half a second a trial (rows are written as trials end, 5 trials one at a
        # time): the test sees the first row while the others are still to run, on a fast
        # machine too (at 300 episodes all 5 ended between two of its looks)
        train={"episodes": 2400, "batch_size": 8, "eval_every": 800, "eval_episodes": 16},
        search={"trials_per_cell": trials, "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}}},
        confirm={"seeds": 1},
        max_concurrent=1,
        fault_tolerance={"checkpoint_every_s": 0},
    )
    return write_spec(tmp_path, spec)


def test_sbatch_runs_the_sweep_and_a_requeued_job_finishes_it_exactly(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    """One job serves both checks (each job costs a Ray start): `sbatch` runs the sweep to
    its end, and requeued mid-sweep it continues to the budget, nothing run twice."""
    log = tmp_path / "job.out"
    folder, tap = tmp_path / "results" / "requeued", tmp_path / "raw"
    job = _submit(slurm, _spec(tmp_path, "requeued", 4), log, tap)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(raw_rows(folder, "trials")) < 1:
        time.sleep(0.5)
    before = raw_rows(folder, "trials")
    assert 1 <= len(before) < 5, "the sweep finished before it could be requeued"
    subprocess.run(["scontrol", "requeue", job], env=slurm, check=True)
    # Slurm holds a requeued job back (BeginTime, about 2 min) once it is pending again; this
    # test need not wait for that
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _state(slurm, job) != "PENDING":
        time.sleep(0.2)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=slurm, check=True)
    _wait_done(slurm, job, log)
    text = log.read_text()
    assert "(run 1)" in text and "continuing the sweep there (same spec)" in text
    assert "finished in" in text
    # the budget exactly: 4 search trials and 1 confirmation, each once, none run twice
    # (counted before compaction, which keeps one row per trial), and the rows written
    # before the requeue are the ones kept
    trials = pd.read_parquet(folder / "trials")
    assert sorted(trials["phase"]) == ["confirm"] + ["search"] * 4, text[-3000:]
    assert set(trials["status"]) == {"completed"}
    assert set(tapped_rows(tap, "trials")["seed"]) == set(trials["seed"])
    assert trials["seed"].is_unique
    assert_not_run_again(before, tap, trials)
