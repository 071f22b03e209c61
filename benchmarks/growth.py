"""A grown sweep runs only the new work: trials run and wall time, grown against from scratch.

    python benchmarks/growth.py [--episodes 2000]

Runs, one after the other, in a temporary folder:
1. `first`: examples/quick.yaml cut down to 2 levels (tiny, small) x 2 models (plastic, rnn)
   and 3 confirmation seeds;
2. `grown`: the same sweep, grown to quick.yaml's 3 levels x 3 models and 5 seeds
   (`sweep run` into the first's folder);
3. `scratch`: the grown spec as a new sweep.
and prints the trials each run added to the trials table and its wall time. Run it on a
quiet machine (nothing else running); the counts do not depend on that, the times do.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
SWEEP = str(Path(sys.executable).with_name("sweep"))


def run(spec: dict[str, Any], where: Path, label: str) -> tuple[int, float]:
    path = where / f"{label}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    folder = Path(spec["storage"]) / spec["name"]
    before = len(pd.read_parquet(folder / "trials")) if (folder / "trials").exists() else 0
    start = time.perf_counter()
    done = subprocess.run([SWEEP, "run", str(path)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{label}: sweep run failed:\n{done.stderr}")
    return len(pd.read_parquet(folder / "trials")) - before, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=2000)
    args = parser.parse_args()
    quick = yaml.safe_load((ROOT / "examples" / "quick.yaml").read_text())
    quick["train"]["episodes"] = args.episodes
    quick["train"]["eval_every"] = args.episodes // 4
    quick["early_stop"]["grace_episodes"] = args.episodes // 4
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        grown = copy.deepcopy(quick) | {"storage": str(where / "results")}
        first = copy.deepcopy(grown)
        first["difficulties"] = ["tiny", "small"]
        first["models"] = {k: v for k, v in grown["models"].items() if k != "lstm"}
        first["confirm"] = {"seeds": 3}
        rows = []
        for label, spec in [
            ("first", first),
            ("grown", grown),
            ("scratch", grown | {"name": "scratch"}),
        ]:
            trials, wall = run(spec, where, label)
            rows.append((label, trials, wall))
            print(f"{label:8s} trials run {trials:3d}  wall {wall:6.1f} s", flush=True)
    (_, _, w_first), (_, t_grown, w_grown), (_, t_scratch, w_scratch) = rows
    print(
        f"grown: {t_grown} of the {t_scratch} trials a new sweep runs, "
        f"{w_grown / w_scratch:.2f}x its wall time (first + grown: "
        f"{(w_first + w_grown) / w_scratch:.2f}x)"
    )


if __name__ == "__main__":
    main()
