"""Everything a GPU must show, in one command: checks, then figures (issue 26).

On any CUDA machine (one H100/H200: under 8 minutes), from the repository root:

    .venv/bin/python benchmarks/gpu_check.py --out DIR
    .venv/bin/python benchmarks/gpu_check.py --out DIR --only plastic sweep   # some steps again
    .venv/bin/python benchmarks/gpu_check.py --dry-run --out DIR   # CPU: every step, tiny sizes

Steps, in order, each in its own process with its own time budget (a step past it is stopped,
reported as timed out with the figures it had printed, and the next step runs):

- device: GPU, driver, torch / CUDA / cuDNN / NCCL versions, memory, the peak memory
  bandwidth (clock x bus width) and a measured device-to-device copy bandwidth.
- cuda_tests: `pytest -m cuda` on the test files that carry the marker (the tests that
  skip without CUDA).
- plastic: the fast plastic path against plain autograd (`plastic_episode.py`'s training
  step) at the paper's full pattern level (N = 1001, T = 106), batch 1 and 16: episodes/s,
  the ratio, peak GPU memory of the step, and the N x N traffic's bandwidth against the peak.
  That bandwidth is a lower bound from a model, not a profiler count: per time step the
  path must read or write `PER_ELEMENT[path]` (B, N, N) float32 tensors (fast: the segment's
  snapshot, read forward and backward; plain: the trace read and written forward, read
  backward with its gradient read and written) plus 4 passes over the shared w and alpha.
- image: the image task at the `paper` level (1025 neurons, 201 steps), plastic network in
  clamp mode, batch 1: seconds per training episode against the paper's "about 15 minutes for
  3,000 episodes on one 2018 GPU" (0.3 s).
- sweep: `examples/quick.yaml` as it is, with `resources.gpu: 0.25` (four trials per GPU),
  by the `sweep` command on embedded Ray: trials per hour against the same sweep on the
  project's 2-core CPU machine (README, "Set-up": 81 trials, the sweep 45 s).
- data_parallel: the data-parallel route's collectives at `workers: 1` with NCCL
  initialised (`sweep.distributed`: rendezvous, the state broadcast, the gradients'
  all-reduce), and with two GPUs or more `data_parallel.py`'s W = 1 against W = 2 sweeps.
- populations: K = 1, 16, 64, 256 members per trial, when `resources.members` exists.

It writes `gpu_check.json`, `gpu_check.md` (the same figures as tables) and `logs/STEP.log`
(each step's output) into --out. Without CUDA (and without --dry-run) it exits 2 with one
line and writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import torch
from machine import cpu_model  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
MARK = "GPU_CHECK_ROW "  # a step's figure row on its stdout: this prefix, then JSON
TOTAL_BUDGET_S = 480.0
KILL_GRACE_S = 10.0  # after SIGINT, before SIGKILL (Ray's atexit shutdown)
# The paper's image task: "about 15 minutes for 3,000 episodes on one 2018 GPU".
PAPER_IMAGE_S_PER_EPISODE = 15 * 60 / 3000
# examples/quick.yaml on the project's 2-core CPU machine, nothing else running (README,
# "Set-up"): 9 cells x (4 search + 5 confirmation) trials, the sweep 45 s.
CPU_QUICK_TRIALS, CPU_QUICK_SECONDS = 81, 45.0
PER_ELEMENT = {"fast": 2, "plain": 5}  # (B, N, N) passes per time step; see the docstring
SHARED = 4  # passes over w and alpha per time step, forward and backward
POPULATIONS = (1, 16, 64, 256)


Row = dict[str, Any]


class NotAvailable(Exception):
    """A step that cannot run on this version or machine: reported, not failed."""


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    budget_s: float  # on a GPU
    dry_budget_s: float  # a safety limit only: a loaded 2-core machine is slow
    run: Callable[[bool, Path], Iterator[Row]]  # (dry run, output folder) -> figure rows


def emit(row: Row) -> None:
    print(MARK + json.dumps(row, default=str), flush=True)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_bandwidth_gbs() -> float | None:
    """The GPU's nominal memory bandwidth: double data rate x memory clock x bus width."""
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    clock_khz = getattr(props, "memory_clock_rate", 0)
    bus_bits = getattr(props, "memory_bus_width", 0)
    return 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9 if clock_khz and bus_bits else None


def peak_memory_mib(before: int) -> float | None:
    """The most GPU memory allocated at once since the last reset, beyond `before`."""
    if not torch.cuda.is_available():
        return None
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def reset_memory() -> int:
    """Start a peak-memory count; returns what is allocated now (0 on the CPU)."""
    if not torch.cuda.is_available():
        return 0
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


# --- the steps: each yields its figure rows, in its own process ---------------------------


def nccl_version() -> str:
    """torch's NCCL version: a tuple in recent torch, an int (e.g. 2708) in older ones."""
    version: Any = torch.cuda.nccl.version()
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def step_device(dry: bool, out: Path) -> Iterator[Row]:
    row: Row = {"torch": torch.__version__, "cpu": cpu_model()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        row |= {
            "gpu": props.name,
            "gpus": torch.cuda.device_count(),
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "driver": smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else "unknown",
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "nccl": nccl_version(),
        }
    else:
        row |= {"gpu": "none (dry run on the CPU)", "gpus": 0, "cuda": torch.version.cuda}
    row["peak_bandwidth_gbs"] = peak_bandwidth_gbs()
    # A copy reads and writes every byte once: 2 x size per copy.
    size = (64 if dry else 2048) << 20
    source = torch.empty(size // 4, dtype=torch.float32, device=device())
    target = torch.empty_like(source)
    target.copy_(source)
    synchronize()
    start, copies = time.perf_counter(), 3 if dry else 20
    for _ in range(copies):
        target.copy_(source)
    synchronize()
    row["copy_bandwidth_gbs"] = 2 * size * copies / (time.perf_counter() - start) / 1e9
    yield row


def cuda_test_files() -> list[str]:
    """The test files that carry the `cuda` marker (collecting only these is seconds, the
    whole suite's collection most of a minute on 2 cores)."""
    return sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").glob("test_*.py")
        if "mark.cuda" in p.read_text()
    )


def step_cuda_tests(dry: bool, out: Path) -> Iterator[Row]:
    files = cuda_test_files()
    report = out / "cuda-tests.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "cuda",
        "-q",
        "-p",
        "no:cacheprovider",
        "-n",
        "0",
    ]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, f"--junitxml={report}", *files], cwd=ROOT, capture_output=True, text=True
    )
    print(done.stdout[-5000:], done.stderr[-5000:], sep="\n")
    if not report.exists():
        raise RuntimeError(f"pytest wrote no report (exit {done.returncode})")
    suites = ET.parse(report).getroot()
    suite = suites if suites.tag == "testsuite" else suites[0]
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    failed = counts["failures"] + counts["errors"]
    yield {
        "files": len(files),
        "selected": counts["tests"],
        "passed": counts["tests"] - failed - counts["skipped"],
        "failed": failed,
        "skipped": counts["skipped"],
        "seconds": time.perf_counter() - start,
    }
    for case in suite.iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            message = (problem.get("message") or "").splitlines()
            yield {
                "failed_test": f"{case.get('classname')}::{case.get('name')}",
                "message": message[0][:200] if message else "",
            }
    if failed:
        raise RuntimeError(f"{failed} CUDA test(s) failed (see the rows and cuda-tests.xml)")


def step_plastic(dry: bool, out: Path) -> Iterator[Row]:
    from plastic_episode import Case, estimated_gib, training_step

    dev = device()
    n, steps = (33, 12) if dry else (1001, 106)
    repeats = 2 if dry else 5
    peak = peak_bandwidth_gbs()
    ratios: list[Row] = []
    for batch in (1, 2) if dry else (1, 16):
        case = Case("patterns, dry run" if dry else "patterns, full", n, steps, batch)
        speed: dict[str, float] = {}
        for path in ("fast", "plain"):
            row: Row = {"case": case.name, "N": n, "T": steps, "B": batch, "path": path}
            free = torch.cuda.mem_get_info()[0] / 2**30 if dev.type == "cuda" else None
            if free is not None and estimated_gib(case, path) > 0.9 * free:
                row["skipped"] = f"needs ~{estimated_gib(case, path):.1f} GiB, {free:.1f} free"
                yield row
                continue
            before = reset_memory()
            train_step, _ = training_step(case, path, str(dev))
            train_step()  # warm-up: Adam's state, the allocator, kernel selection
            synchronize()
            seconds = []
            for _ in range(repeats):
                start = time.perf_counter()
                train_step()
                synchronize()
                seconds.append(time.perf_counter() - start)
            del train_step
            median = sorted(seconds)[len(seconds) // 2]
            speed[path] = batch / median
            traffic = steps * n * n * 4 * (PER_ELEMENT[path] * batch + SHARED)
            row |= {
                "s_per_step": median,
                "episodes_per_s": speed[path],
                "peak_mib": peak_memory_mib(before),
                "nxn_gbs": traffic / median / 1e9,
                "of_peak_bandwidth": traffic / median / 1e9 / peak if peak else None,
            }
            yield row
        if len(speed) == 2:
            ratios.append({"B": batch, "fast_vs_plain": speed["fast"] / speed["plain"]})
    yield from ratios


def step_image(dry: bool, out: Path) -> Iterator[Row]:
    from sweep.tasks import make_task
    from sweep.train import TrainConfig, Trial

    level, every = ("tiny", 2) if dry else ("paper", 5)
    task = make_task("images", level)
    budget_s = 0.5 if dry else 20.0  # of timed training, after a warm-up report
    train = TrainConfig(
        episodes=10**6,
        batch_size=1,
        lr=1e-4,
        eval_every=every,
        eval_episodes=1,
        device=str(device()),
    )
    before = reset_memory()
    trial = Trial(task, "plastic", {"input_mode": "clamp"}, train)
    reports = trial.reports()
    first = next(reports)  # warm-up: the first `every` episodes
    last = first
    for report in reports:
        last = report
        if report.wall_s - first.wall_s > budget_s:
            break
    episodes = last.episodes - first.episodes
    if episodes == 0:
        raise RuntimeError("no episode after the warm-up within the budget")
    per_episode = (last.wall_s - first.wall_s) / episodes
    yield {
        "level": level,
        "neurons": task.input_size,
        "steps": task.sample(1, torch.Generator().manual_seed(0)).inputs.shape[0],
        "B": 1,
        "episodes_timed": episodes,
        "s_per_episode": per_episode,
        "minutes_per_3000": per_episode * 3000 / 60,
        "paper_minutes_per_3000": PAPER_IMAGE_S_PER_EPISODE * 3000 / 60,
        "vs_paper": PAPER_IMAGE_S_PER_EPISODE / per_episode,
        "peak_mib": peak_memory_mib(before),
        "last_erased_mse": last.value,
    }


def sweep_command() -> list[str]:
    script = Path(sys.executable).with_name("sweep")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from sweep.cli import main; main()"]


def run_sweep(spec: dict[str, Any], folder: Path, *options: str) -> Row:
    """`sweep run` on embedded Ray: wall seconds of the command, and what its trials say."""
    import pandas as pd
    import yaml

    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    start = time.perf_counter()
    done = subprocess.run(
        [*sweep_command(), "run", str(path), *options],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines() or ["(nothing on stderr)"]
        raise RuntimeError(f"sweep run exited {done.returncode}: {tail[-1]}")
    trials = pd.read_parquet(Path(spec["storage"]) / spec["name"] / "trials")
    return {
        "trials": len(trials),
        "wall_s": wall,
        "trials_per_hour": len(trials) / wall * 3600,
        "devices": ";".join(sorted(set(trials["device"].astype(str)))),
        "gpu_ids": ";".join(sorted(set(trials["gpu_ids"].astype(str)))),
        "failed": int(trials["error"].notna().sum()),
    }


def quick_spec(dry: bool, storage: Path) -> dict[str, Any]:
    """examples/quick.yaml with gpu: 0.25 (as many at once as the GPUs hold); dry run: one
    level, two models, short trials, on the CPU."""
    import yaml

    spec: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "quick.yaml").read_text())
    spec["storage"] = str(storage)
    if dry:
        spec["difficulties"] = spec["difficulties"][:1]
        spec["models"] = dict(list(spec["models"].items())[:2])
        spec["train"] |= {"episodes": 64, "batch_size": 8, "eval_every": 32, "eval_episodes": 8}
        spec["search"]["trials_per_cell"] = 1
        spec["early_stop"] = "none"
        spec["confirm"] = {"seeds": 1}
        spec["resources"] = {"cpu": 1, "gpu": 0}
        spec["max_concurrent"] = 2
    else:
        spec["resources"] = {"cpu": 1, "gpu": 0.25}
        spec["max_concurrent"] = None  # as many as the GPUs hold: 4 per GPU
    return spec


def step_sweep(dry: bool, out: Path) -> Iterator[Row]:
    with tempfile.TemporaryDirectory() as folder:
        spec = quick_spec(dry, Path(folder) / "results")
        options = ("--num-cpus", "2") if dry else ()
        row = run_sweep(spec, Path(folder), *options)
    cpu = CPU_QUICK_TRIALS / CPU_QUICK_SECONDS * 3600
    yield {
        "spec": "examples/quick.yaml" + (" (cut down: dry run)" if dry else ""),
        "gpu_per_trial": spec["resources"]["gpu"],
        **row,
        "cpu_trials_per_hour": cpu,
        "vs_cpu": row["trials_per_hour"] / cpu,
    }


def step_data_parallel(dry: bool, out: Path) -> Iterator[Row]:
    from sweep.distributed import Rendezvous, broadcast, gather, leave
    from sweep.tasks import make_task
    from sweep.train import TrainConfig, Trial, all_reduce_gradients

    dev = device()
    if dev.type == "cuda":
        dev = torch.device("cuda", 0)
    trial = Trial(
        make_task("patterns", "tiny" if dry else "paper-full"),
        "plastic",
        {},
        TrainConfig(episodes=1, batch_size=1, eval_every=1, eval_episodes=1, device=str(dev)),
    )
    next(trial.reports())  # one step: its gradients are what a rank all-reduces
    parameters = list(trial.model.parameters())
    timings: Row = {}
    start = time.perf_counter()
    rendezvous = Rendezvous.at("127.0.0.1", 1, dev)
    rendezvous.join(0, dev)
    timings["init_s"] = time.perf_counter() - start
    for name, collective in (
        ("broadcast_state_s", lambda: broadcast(trial.state_dict())),
        ("gather_place_s", lambda: gather(str(dev))),
        ("first_all_reduce_s", lambda: all_reduce_gradients(parameters)),
        ("all_reduce_s", lambda: all_reduce_gradients(parameters)),
    ):
        start = time.perf_counter()
        collective()
        synchronize()
        timings[name] = time.perf_counter() - start
    start = time.perf_counter()
    leave()
    timings["leave_s"] = time.perf_counter() - start
    yield {
        "workers": 1,
        "backend": rendezvous.backend,
        "device": str(dev),
        "parameters": sum(p.numel() for p in parameters),
        **timings,
    }
    gpus = torch.cuda.device_count()
    if gpus < 2:
        yield {"workers": 2, "not_run": f"needs 2 GPUs, {gpus} present"}
        return
    from data_parallel import one_sweep

    args = argparse.Namespace(
        task="patterns",
        level="paper-simplified",
        model="plastic",
        episodes=2000,
        batch_size=16,
        trials=2,
        cpus=2,
        gpu=1.0,
    )
    one, two = one_sweep(args, 1), one_sweep(args, 2)
    yield {
        "workers": 2,
        "backend": "nccl",
        "w1_episodes_per_s": one["episodes_per_second"],
        "w2_episodes_per_s": two["episodes_per_second"],
        "speed_up_w2": two["episodes_per_second"] / one["episodes_per_second"],
        "w1_startup_per_trial_s": one["startup_per_trial_s"],
        "w2_startup_per_trial_s": two["startup_per_trial_s"],
        "route_startup_s": two["startup_per_trial_s"] - one["startup_per_trial_s"],
    }


def step_populations(dry: bool, out: Path) -> Iterator[Row]:
    from sweep.spec import Resources

    if "members" not in Resources.model_fields:
        raise NotAvailable("resources.members does not exist in this version (no populations)")
    for members in (2,) if dry else POPULATIONS:
        with tempfile.TemporaryDirectory() as folder:
            spec = quick_spec(dry, Path(folder) / "results")
            spec |= {"name": f"members-{members}", "difficulties": spec["difficulties"][-1:]}
            spec["models"] = {"plastic": {"family": "plastic"}}
            spec["search"]["trials_per_cell"] = members
            spec["confirm"] = {"seeds": 0}
            spec["early_stop"] = "none"  # a population's members are not stopped one by one
            spec["resources"] |= {"members": members, "gpu": 0 if dry else 1}
            row = run_sweep(spec, Path(folder), *(("--num-cpus", "2") if dry else ()))
        yield {"members": members, **row}


STEPS = [
    Step("device", "Device and versions", 20, 60, step_device),
    Step("cuda_tests", "CUDA tests (pytest -m cuda)", 60, 90, step_cuda_tests),
    Step("plastic", "Fast plastic path against plain autograd", 90, 60, step_plastic),
    Step("image", "Image task, paper level, batch 1", 45, 60, step_image),
    Step("sweep", "examples/quick.yaml with gpu: 0.25", 150, 150, step_sweep),
    Step("data_parallel", "Data-parallel route", 60, 60, step_data_parallel),
    Step("populations", "Populations (resources.members)", 50, 60, step_populations),
]
BY_NAME = {step.name: step for step in STEPS}


# --- the driver: one process per step, a budget each -----------------------------------


def child(name: str, dry: bool, out: Path) -> None:
    """Run one step here, printing its rows; a step that cannot run says why and exits 3."""
    torch.manual_seed(0)
    try:
        for row in BY_NAME[name].run(dry, out):
            emit(row)
    except NotAvailable as e:
        emit({"not_available": str(e)})
        sys.exit(3)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the step's process group (Ray shuts down at exit), then SIGKILL to whatever
    is left of the group (it may outlive its leader)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=KILL_GRACE_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_step(step: Step, dry: bool, out: Path, budget: float) -> dict[str, Any]:
    log = out / "logs" / f"{step.name}.log"
    command = [sys.executable, __file__, "--step", step.name, "--out", str(out)]
    start = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command + (["--dry-run"] if dry else []),
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            code: int | None = process.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            code = None
            stop(process)
    seconds = time.perf_counter() - start
    lines = log.read_text(errors="replace").splitlines()
    rows = [json.loads(ln[len(MARK) :]) for ln in lines if ln.startswith(MARK)]
    if code is None:
        status = f"timed out after {budget:.0f} s"
    elif code == 0:
        status = "ok"
    elif code == 3 and rows and "not_available" in rows[-1]:
        status = f"not available: {rows.pop()['not_available']}"
    else:
        said = [ln for ln in lines if ln.strip() and not ln.startswith(MARK)]
        status = f"failed (exit {code}): {said[-1].strip() if said else 'no output'}"
    return {
        "name": step.name,
        "title": step.title,
        "status": status,
        "budget_s": budget,
        "seconds": seconds,
        "rows": rows,
        "log": str(log.relative_to(out)),
    }


def cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value).replace("|", "/")


def markdown(record: dict[str, Any]) -> str:
    lines = [
        f"# GPU check, {record['date']}" + (" (dry run on the CPU)" if record["dry_run"] else ""),
        "",
        f"{record['machine']}; {record['seconds']:.0f} s of {record['budget_s']:.0f} s.",
        "",
        "| step | status | seconds | budget s |",
        "|---|---|---|---|",
    ]
    for step in record["steps"]:
        lines.append(
            f"| {step['name']} | {cell(step['status'])} | {step['seconds']:.1f} "
            f"| {step['budget_s']:.0f} |"
        )
    for step in record["steps"]:
        lines += ["", f"## {step['name']}: {step['title']}", "", f"Status: {step['status']}."]
        for group in _groups(step["rows"]):
            keys = list(dict.fromkeys(k for row in group for k in row))
            lines += ["", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(cell(row.get(k)) for k in keys) + " |" for row in group]
    return "\n".join(lines) + "\n"


def _groups(rows: list[Row]) -> list[list[Row]]:
    """Consecutive rows with the same keys: one table each."""
    groups: list[list[Row]] = []
    for row in rows:
        if groups and set(groups[-1][0]) == set(row):
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"gpu_check: {message}\n")


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the figures")
    parser.add_argument(
        "--dry-run", action="store_true", help="every step on the CPU at a tiny size"
    )
    parser.add_argument("--only", nargs="+", choices=list(BY_NAME), help="only these steps")
    parser.add_argument(
        "--budget", type=float, default=TOTAL_BUDGET_S, help="seconds for all steps at most"
    )
    parser.add_argument("--step", choices=list(BY_NAME), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        child(args.step, args.dry_run, args.out)
        return
    if not args.dry_run and not torch.cuda.is_available():
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU build")
        parser.error(
            f"no CUDA device visible ({build}); run it on a CUDA machine, "
            "or with --dry-run to check the wiring on the CPU"
        )
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: not a folder")
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    record: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "dry_run": args.dry_run,
        "machine": cpu_model()
        + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"),
        "torch": torch.__version__,
        "budget_s": args.budget,
        "steps": [],
    }
    for step in STEPS:
        if args.only and step.name not in args.only:
            continue
        left = args.budget - (time.perf_counter() - start)
        budget = min(step.dry_budget_s if args.dry_run else step.budget_s, left)
        if budget < 5:
            result = {
                "name": step.name,
                "title": step.title,
                "budget_s": 0,
                "seconds": 0,
                "status": "not run: the overall budget is spent",
                "rows": [],
                "log": None,
            }
        else:
            result = run_step(step, args.dry_run, args.out, budget)
        record["steps"].append(result)
        print(f"{step.name}: {result['status']} ({result['seconds']:.1f} s)", flush=True)
    record["seconds"] = time.perf_counter() - start
    (args.out / "gpu_check.json").write_text(json.dumps(record, indent=2, default=str))
    (args.out / "gpu_check.md").write_text(markdown(record))
    print(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}")
    bad = [s["name"] for s in record["steps"] if s["status"].startswith(("failed", "timed"))]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
