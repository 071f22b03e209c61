"""Plastic episodes: the fast path against plain autograd and the per-element reference.

Times one training step (forward, loss on the last step, backward, Adam) per case and path,
each (case, path) in a fresh subprocess, and measures its memory two ways:
- tensor peak: the most tensor memory allocated at once during one step, beyond what was
  allocated before it (torch profiler allocation events; includes the new gradients and
  Adam's temporaries, excludes the model and Adam's state, which exist before the step);
- RSS growth: the process's peak resident memory (ru_maxrss) minus its resident memory just
  before the first step (model, inputs and optimizer built): includes Adam's state, created in
  the first step, and the allocator's slack. Peak RSS: ru_maxrss itself (torch and the rest of
  the process included), after the timed steps, before the profiled one.
A path whose estimated memory does not fit in the available memory is skipped, with the reason.
The clamp case is the image task's input mode (`input_mode="clamp"`) on its paper protocol.
The modulation cases are Backpropamine's variants at the full pattern level (N = 1001, T = 106,
batch 1): "fast" is `forward` (the hand-derived kernels without modulation and for retroactive
modulation, the generic checkpointed path for simple modulation), "generic" the generic
checkpointed path for every variant; the summary compares each with the non-modulated fast path.

    .venv/bin/python benchmarks/plastic_episode.py --cases modulation  # the three variants
    .venv/bin/python benchmarks/plastic_episode.py --cases modulation --paths fast generic

    .venv/bin/python benchmarks/plastic_episode.py [--repeats 5] [--threads 2] [--json out.json]
    .venv/bin/python benchmarks/plastic_episode.py --cases image  # the cases named "image..."

Old against new, side by side: `--baseline DIR` runs the fast path of every chosen case with
the code in DIR (e.g. a git worktree of main at the commit a change started from) and with this
checkout, `--rounds` times each, alternating which goes first, each run in a fresh subprocess
(DIR first on its PYTHONPATH), and reports the median step time of each and their ratio, and
the ratios of their fastest steps and of their median CPU seconds per step (both less
disturbed by other work on a loaded machine; CPU seconds mean most with --threads 1).

    git worktree add --detach /tmp/before <commit>
    .venv/bin/python benchmarks/plastic_episode.py --baseline /tmp/before --cases "patterns, full"

Time to solution: train the plastic network on the full 1000-bit level (Trial, Adam, batch B,
after every gradient step one evaluation on B fresh episodes) until the mean error of the last
10 evaluations is <= 0.02; report training episodes and wall seconds (model construction and
evaluations included).

    .venv/bin/python benchmarks/plastic_episode.py --time-to-solution [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from machine import cpu_model  # benchmarks/machine.py, beside this script

from plastic_models import PlasticConfig, PlasticNetwork, reference_forward
from plastic_models.checkpointed import unroll
from plastic_models.config import InputMode, ModulationName
from sweep.tasks import make_task
from sweep.tasks.base import show_sequence
from sweep.tasks.images import LEVELS as IMAGE_LEVELS
from sweep.train import TrainConfig, Trial

PATHS = ("reference", "plain", "generic", "fast")
# Time to solution's target: the bit error the paper's curves settle at (0.01-0.02), 20 wrong
# bits per 1000-bit pattern; the task's own solved criterion (1 wrong bit) is stricter.
PAPER_SOLVED = 0.02


@dataclass(frozen=True)
class Case:
    name: str
    n: int  # neurons (direct architecture: one per input channel)
    steps: int
    batch: int
    input_mode: InputMode = "add"
    modulation: ModulationName = "none"


CASES = [
    Case("patterns, full", 1001, 106, 1),
    Case("patterns, full", 1001, 106, 16),
    Case("patterns, first quarter", 1001, 26, 16),  # where plain autograd fits at B = 16
    Case("image size", 1025, 201, 1),
    Case("image task, clamp", 1025, 201, 1, "clamp"),
    Case("modulation: none", 1001, 106, 1),
    Case("modulation: simple", 1001, 106, 1, modulation="simple"),
    Case("modulation: retroactive", 1001, 106, 1, modulation="retroactive"),
]


def image_episode(case: Case, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The image task's paper protocol (3 images, each shown for 20 steps then 2 blank ones, 3
    cycles; then one of them with half its pixels blank for 3 steps; a bias channel at 1) with
    random zero-mean images instead of photographs (no image decoding in the measured process;
    the values do not change the cost)."""
    level = IMAGE_LEVELS["paper"]
    k, pixels = level["num_images"], case.n - 1
    images = torch.rand(case.batch, k, pixels, generator=generator) * 2 - 1
    images -= images.mean(-1, keepdim=True)
    target = images[:, 0]
    cue = target.clone()
    cue[:, : pixels // 2] = 0.0  # the erased half: free neurons, the rest clamped
    cycles, prestime, delay, test = (
        level[key] for key in ("cycles", "prestime", "delay", "test_time")
    )
    x = show_sequence(images, cue, cycles, prestime, delay, test, generator)
    assert x.shape == (case.steps, case.batch, case.n), x.shape
    return x, target


def inputs(case: Case, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The task's own episodes at its size; random ones of the image task's shape (clamp mode:
    of its protocol)."""
    if case.input_mode == "clamp":
        return image_episode(case, generator)
    if case.n == 1001:
        task = make_task("patterns", "paper-full")
        episode = task.sample(case.batch, generator)
        return episode.inputs[: case.steps], episode.targets
    x = torch.rand(case.steps, case.batch, case.n, generator=generator) * 2 - 1
    return x, torch.sign(torch.randn(case.batch, case.n - 1, generator=generator))


def machine() -> str:
    """CPU model, core count, memory and torch version, for the record."""
    return f"{cpu_model()}, {available_gib():.0f} GiB free, torch {torch.__version__}"


def estimated_gib(case: Case, path: str) -> float:
    """Memory the path keeps for its backward pass: N x N tensors per step and batch element."""
    per_step = {"reference": 4, "plain": 3, "generic": 0, "fast": 0}[path]
    if case.modulation == "retroactive":  # two traces, each kept per step
        per_step *= 2
    return (per_step * case.steps + 24) * case.batch * case.n**2 * 4 / 2**30


def available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) / 2**20
    return float("inf")


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def training_step(
    case: Case, path: str, device: str = "cpu"
) -> tuple[Callable[[], None], torch.optim.Optimizer]:
    """One training step of the case on the path (forward, squared error on the last step,
    backward, Adam), and its optimizer; network, episode and optimizer built on `device`."""
    generator = torch.Generator().manual_seed(0)
    config = PlasticConfig(input_mode=case.input_mode, modulation=case.modulation)
    net = PlasticNetwork(case.n, case.n - 1, config)
    net.reset_parameters(generator)
    net.to(device)
    x, targets = (t.to(device) for t in inputs(case, generator))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-4)
    forwards: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "fast": net,
        "plain": net.forward_autograd,
        "generic": lambda v: generic_forward(net, v),
        "reference": lambda v: reference_forward(net, v),
    }
    forward = forwards[path]

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = (forward(x)[-1] - targets).square().sum(-1).mean()
        loss.backward()
        optimizer.step()

    return train_step, optimizer


def worker(case: Case, path: str, repeats: int, threads: int, profile: bool) -> dict[str, Any]:
    """Run in the subprocess: time `repeats` training steps after a warm-up, then profile one
    (unless not `profile`)."""
    torch.set_num_threads(threads)
    train_step, optimizer = training_step(case, path)
    before = _rss_kib("VmRSS")
    train_step()  # warm-up: Adam's state, the allocator
    seconds, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        train_step()
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    rss_growth = (_rss_kib("VmHWM") - before) / 2**10
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux
    seconds.sort()
    timed = {"seconds": seconds, "median_s": seconds[len(seconds) // 2], "cpu_seconds": cpu}
    if not profile:
        return timed
    optimizer.zero_grad(set_to_none=True)
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        train_step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return {
        **timed,
        "tensor_peak_mib": peak / 2**20,
        "rss_growth_mib": rss_growth,
        "peak_rss_mib": peak_rss,
    }


def generic_forward(net: PlasticNetwork, inputs: torch.Tensor) -> torch.Tensor:
    """`forward` on the generic checkpointed path, whatever kernel the network has."""
    drive = net.drive(inputs)
    state = net.initial_state(drive.shape[1], drive.device, drive.dtype)
    return net.readout(unroll(net.cell, drive, state, list(net.parameters())))


def run_case(case: Case, path: str, repeats: int, threads: int) -> dict[str, Any]:
    row: dict[str, Any] = {**asdict(case), "path": path, "threads": threads}
    need, have = estimated_gib(case, path), available_gib()
    if path == "reference" and case.batch > 1:
        row["skipped"] = "the per-element reference is plain autograd one element at a time"
        return row
    if need > 0.8 * have:
        row["skipped"] = f"needs ~{need:.1f} GiB for its graph, {have:.1f} GiB available"
        return row
    done = run_worker(case, path, repeats, threads)
    if "failed" in done:
        row["skipped"] = f"failed: {done['failed']}"
        return row
    row.update(done)
    row["episodes_per_s"] = case.batch / row["median_s"]
    return row


def run_worker(
    case: Case, path: str, repeats: int, threads: int, tree: Path | None = None
) -> dict[str, Any]:
    """`worker` in a fresh subprocess; tree: run the code there (first on PYTHONPATH), not
    profiled. {"failed": the last line of stderr} if it fails."""
    spec = {"case": asdict(case), "path": path, "repeats": repeats, "threads": threads}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if tree is not None:
        spec["profile"] = False
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(":")
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        return {"failed": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(case: Case, baseline: Path, rounds: int, repeats: int, threads: int) -> dict[str, Any]:
    """The fast path of `case` with the code in `baseline` and with this checkout, `rounds`
    fresh runs each, alternating which goes first: median step times and their ratio."""
    here = Path(__file__).resolve().parent.parent
    row: dict[str, Any] = {**asdict(case), "threads": threads, "baseline": str(baseline)}
    seconds: dict[str, list[float]] = {"baseline": [], "this": []}
    cpu: dict[str, list[float]] = {"baseline": [], "this": []}
    ratios = []
    for r in range(rounds):
        order = ["baseline", "this"] if r % 2 == 0 else ["this", "baseline"]
        medians = {}
        for side in order:
            done = run_worker(
                case, "fast", repeats, threads, baseline if side == "baseline" else here
            )
            if "failed" in done:
                row["skipped"] = f"{side} failed: {done['failed']}"
                return row
            seconds[side] += done["seconds"]
            cpu[side] += done["cpu_seconds"]
            medians[side] = done["median_s"]
        ratios.append(medians["this"] / medians["baseline"])
    for side, values in seconds.items():
        row[f"{side}_s"], row[f"{side}_min_s"] = statistics.median(values), min(values)
    row["ratio"] = row["this_s"] / row["baseline_s"]
    row["ratio_min"] = row["this_min_s"] / row["baseline_min_s"]  # the least disturbed steps
    # CPU seconds: time spent waiting for a core on a loaded machine left out (1 thread)
    row["ratio_cpu"] = statistics.median(cpu["this"]) / statistics.median(cpu["baseline"])
    row["round_ratios"] = ratios
    return row


def markdown_table(
    columns: list[str],
    keys: list[str],
    rows: list[dict[str, Any]],
    cells: Callable[[dict[str, Any]], str],
    skipped: str = "",
) -> str:
    """A markdown table of `columns`, one row per case: its `keys`, then `cells(row)` (the
    rest of the row), or for a skipped case why (after `skipped`) and blank cells."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        head = "| " + " | ".join(str(row[k]) for k in keys) + " |"
        if "skipped" in row:
            blanks = " |" * (len(columns) - len(keys) - 1)
            lines.append(f"{head} {skipped}{row['skipped']} |{blanks}")
        else:
            lines.append(f"{head} {cells(row)}")
    return "\n".join(lines)


def comparison_table(rows: list[dict[str, Any]]) -> str:
    columns = ["case", "T", "B", "baseline s / step", "this s / step", "this / baseline"]
    columns += ["per round", "fastest step, this / baseline", "CPU s, this / baseline"]

    def cells(row: dict[str, Any]) -> str:
        rounds = " ".join(f"{r:.2f}" for r in row["round_ratios"])
        return (
            f"{row['baseline_s']:.3f} | {row['this_s']:.3f} | **{row['ratio']:.2f}** "
            f"| {rounds} | {row['this_min_s']:.3f} / {row['baseline_min_s']:.3f} = "
            f"{row['ratio_min']:.2f} | {row['ratio_cpu']:.2f} |"
        )

    return markdown_table(columns, ["name", "steps", "batch"], rows, cells)


def table(rows: list[dict[str, Any]]) -> str:
    columns = ["case", "T", "B", "path", "s / step", "episodes/s", "vs plain", "tensor peak MiB"]
    columns += ["vs plain", "RSS growth MiB", "peak RSS MiB"]

    def cells(row: dict[str, Any]) -> str:
        plain = next(
            (
                r
                for r in rows
                if r["path"] == "plain"
                and "skipped" not in r
                and (r["name"], r["steps"], r["batch"]) == (row["name"], row["steps"], row["batch"])
            ),
            None,
        )
        speed = f"{row['episodes_per_s'] / plain['episodes_per_s']:.1f}×" if plain else "–"
        memory = f"1/{plain['tensor_peak_mib'] / row['tensor_peak_mib']:.0f}" if plain else "–"
        return (
            f"{row['median_s']:.3f} | {row['episodes_per_s']:.2f} | {speed} "
            f"| {row['tensor_peak_mib']:.0f} | {memory} | {row['rss_growth_mib']:.0f} "
            f"| {row['peak_rss_mib']:.0f} |"
        )

    return markdown_table(columns, ["name", "steps", "batch", "path"], rows, cells, "skipped: ")


def modulation_summary(rows: list[dict[str, Any]]) -> str:
    """Each modulated variant's `forward` (and generic path) against the non-modulated fast
    path, same run."""
    done = [r for r in rows if r["path"] in ("fast", "generic") and "skipped" not in r]
    base = next((r for r in done if r["name"] == "modulation: none" and r["path"] == "fast"), None)
    if base is None:
        return ""
    lines = [
        "| variant | path | s / step | vs none | peak RSS MiB | tensor peak MiB |",
        "|---|---|---|---|---|---|",
    ]
    for row in done:
        if row["name"].startswith("modulation: "):
            lines.append(
                f"| {row['name'].removeprefix('modulation: ')} | {row['path']} "
                f"| {row['median_s']:.3f} | {row['median_s'] / base['median_s']:.2f}× "
                f"| {row['peak_rss_mib']:.0f} | {row['tensor_peak_mib']:.0f} |"
            )
    return "\n".join(lines)


def time_to_solution(
    seed: int, path: str, lr: float, batch: int, budget_s: float
) -> dict[str, Any]:
    """Episodes and wall seconds until the mean of the last 10 evaluations is <= 0.02."""
    start = time.perf_counter()
    task = make_task("patterns", "paper-full")
    train = TrainConfig(
        episodes=10_000, batch_size=batch, lr=lr, eval_every=batch, eval_episodes=batch, seed=seed
    )
    trial = Trial(task, "plastic", {}, train)
    if path == "plain":
        trial.model.forward = trial.model.forward_autograd  # type: ignore[attr-defined]
    errors: list[float] = []
    for report in trial.reports():
        errors.append(report.value)
        wall = time.perf_counter() - start
        if len(errors) >= 10 and sum(errors[-10:]) / 10 <= PAPER_SOLVED:
            return {
                "seed": seed,
                "path": path,
                "lr": lr,
                "batch": batch,
                "episodes": report.episodes,
                "wall_s": wall,
                "solved": True,
            }
        if wall > budget_s:
            break
    return {
        "seed": seed,
        "path": path,
        "lr": lr,
        "batch": batch,
        "episodes": len(errors) * batch,
        "wall_s": time.perf_counter() - start,
        "solved": False,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per case and path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--cases", nargs="+", help="only cases whose name contains one of these")
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=PATHS,
        default=["reference", "plain", "fast"],
        help="the paths to time (default: all but generic)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout to compare the fast path with (a git worktree of main, say): each "
        "case runs there and here, interleaved, and the ratios are reported",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="with --baseline: fresh runs per side and case"
    )
    parser.add_argument("--time-to-solution", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--path", choices=("fast", "plain"), default="fast")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=1, help="episodes per gradient step")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per seed at most")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        case = Case(**spec["case"])
        profile = spec.get("profile", True)
        result = worker(case, spec["path"], spec["repeats"], spec["threads"], profile)
        print(json.dumps(result))
        return

    record: dict[str, Any] = {"machine": machine(), "threads": args.threads}
    if args.time_to_solution:
        torch.set_num_threads(args.threads)
        runs = []
        for seed in args.seeds:
            runs.append(time_to_solution(seed, args.path, args.lr, args.batch, args.budget))
            print(json.dumps(runs[-1]), flush=True)
        record["time_to_solution"] = runs
    elif args.baseline:
        if not (args.baseline / "plastic_models").is_dir():
            parser.error(f"--baseline {args.baseline}: no plastic_models/ there; give a checkout")
        rows = []
        cases = [c for c in CASES if not args.cases or any(p in c.name for p in args.cases)]
        for case in cases:
            rows.append(compare(case, args.baseline, args.rounds, args.repeats, args.threads))
            print(json.dumps({k: v for k, v in rows[-1].items()}), flush=True)
        record["comparison"] = rows
        print(f"\n{record['machine']}, {args.threads} threads\n\n{comparison_table(rows)}")
    else:
        rows = []
        cases = [c for c in CASES if not args.cases or any(p in c.name for p in args.cases)]
        for case in cases:
            for path in [p for p in PATHS if p in args.paths]:
                rows.append(run_case(case, path, args.repeats, args.threads))
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "seconds"}), flush=True)
        record["episodes"] = rows
        print(f"\n{record['machine']}, {args.threads} threads\n\n{table(rows)}")
        summary = modulation_summary(rows)
        if summary:
            print(f"\n{summary}")
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
