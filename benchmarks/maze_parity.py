"""The maze against the Backpropamine reference code itself, one after the other, same settings.

The reference is not part of this project (its licence forbids copying it): fetch
uber-research/backpropamine, copy `maze/batch.py` somewhere outside this repository and
switch its device to the CPU (replace `.cuda()` by `.cpu()`; on torch >= 2,
`clip_grad_norm(` by `clip_grad_norm_(`). Then

    python benchmarks/maze_parity.py --reference /path/to/cpu_batch.py --iterations 250

runs, for each seed, the reference at its README's published settings (13 x 13, 200 steps,
hidden 100, batch 30, simple neuromodulation `modplast`, additive clip `addpw 3`, Adam lr 1e-4
eps 1e-4, clip 4, Simpson exploration 0.03, value 0.1, reward 10, no wall penalty) for
`iterations` iterations, then `sweep train --task maze --difficulty backpropamine` at the same
settings for the same number of episodes, and prints per run the reward per episode and the
training episodes per second. The reference's reward: the mean training reward of its last
`--window` iterations (what it prints); ours: the final evaluation's mean reward on fresh
episodes, the policy sampled as in training.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HIDDEN, BATCH, LR, EPS, CLIP, ENTROPY, VALUE = 100, 30, 1e-4, 1e-4, 4.0, 0.03, 0.1


def reference(script: Path, iterations: int, seed: int, window: int) -> dict[str, float]:
    args = (
        f"--eplen 200 --hs {HIDDEN} --lr {LR} --l2 0 --addpw 3 --pe {window} --blossv {VALUE}"
        f" --bent {ENTROPY} --rew 10 --save_every 100000 --rsp 1 --type modplast --da tanh"
        f" --nbiter {iterations} --msize 13 --wp 0.0 --bs {BATCH} --gc {CLIP} --rngseed {seed}"
    ).split()
    with tempfile.TemporaryDirectory() as folder:  # it writes its files to the cwd
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, str(script.resolve()), *args],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        wall = time.perf_counter() - start
    rewards = [float(r) for r in re.findall(r"Mean reward \(across batch[^:]*:\s*(\S+)", out)]
    return {"reward": rewards[-1], "episodes_per_second": iterations * BATCH / wall}


def ours(iterations: int, seed: int, eval_episodes: int) -> dict[str, float]:
    episodes = iterations * BATCH
    command = (
        "sweep train --task maze --difficulty backpropamine --model plastic"
        f" --param modulation=simple --hidden {HIDDEN} --batch-size {BATCH} --lr {LR}"
        f" --adam-eps {EPS} --grad-clip {CLIP} --entropy simpson --entropy-coef {ENTROPY}"
        f" --value-coef {VALUE} --episodes {episodes} --eval-every {episodes}"
        f" --eval-episodes {eval_episodes} --seed {seed} --json"
    ).split()
    bin_dir = Path(sys.executable).parent
    start = time.perf_counter()
    out = subprocess.run(
        [str(bin_dir / command[0]), *command[1:]], capture_output=True, text=True, check=True
    ).stdout
    wall = time.perf_counter() - start
    record = json.loads(out)
    return {
        "reward": record["final_reward"],
        "episodes_per_second": record["episodes_per_second"],
        "command_episodes_per_second": episodes / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=250)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--runs",
        nargs="+",
        choices=["reference", "ours"],
        default=["reference", "ours"],
        help="which side to run (the speed ratio needs both in one quiet run)",
    )
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--eval-episodes", type=int, default=300)
    args = parser.parse_args()
    if not args.reference.is_file():
        parser.exit(2, f"maze_parity: {args.reference}: no such file\n")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in args.runs}
    for name in args.runs:
        for seed in args.seeds:
            if name == "reference":
                result = reference(args.reference, args.iterations, seed, args.window)
            else:
                result = ours(args.iterations, seed, args.eval_episodes)
            runs[name].append(result)
            print(name, seed, result, flush=True)
    print(f"\n{args.iterations * BATCH} training episodes, seeds {args.seeds}, medians:")
    for name, found in runs.items():
        reward = statistics.median(r["reward"] for r in found)
        speed = statistics.median(r["episodes_per_second"] for r in found)
        spread = [round(r["reward"], 2) for r in found]
        print(f"  {name:<9} reward {reward:7.2f} {spread}  training episodes/s {speed:6.1f}")
    if len(runs) < 2:
        return
    ratio = statistics.median(r["episodes_per_second"] for r in runs["ours"]) / statistics.median(
        r["episodes_per_second"] for r in runs["reference"]
    )
    print(f"  ours / reference, episodes per second: {ratio:.2f}x")


if __name__ == "__main__":
    main()
