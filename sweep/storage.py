"""Where a sweep lives: a local folder, a folder every node mounts (NFS, EFS), or object
storage (`s3://`, `gs://`, anything pyarrow's filesystems resolve, credentials and endpoint
from the standard environment, e.g. `AWS_ENDPOINT_URL`).

Ray Tune's experiment state and checkpoints, the Parquet tables and the spec go to the
sweep's folder directly. The Optuna journal is written by the driver alone and needs a
local file (Optuna locks it): for a sweep in object storage it lives in a local cache
(`$SWEEP_CACHE`, default `~/.cache/plasticity-sweeps`) and a current copy is kept at
`<sweep>/optuna/journal.log`, so analysis and optuna-dashboard can read the studies and a
fresh driver can resume the sweep.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow.fs as pafs

from sweep.store import JOURNAL, filesystem


def is_local(folder: str) -> bool:
    return isinstance(filesystem(folder)[0], pafs.LocalFileSystem)


def cache_dir() -> Path:
    return Path(os.environ.get("SWEEP_CACHE") or Path.home() / ".cache" / "plasticity-sweeps")


def local_journal(folder: str) -> Path:
    """The journal the driver writes: in the sweep folder when that is local (or a shared
    mount), else in the local cache, under a name derived from the folder's URI."""
    fs, root = filesystem(folder)
    if isinstance(fs, pafs.LocalFileSystem):
        return Path(root, JOURNAL)
    slug = hashlib.sha256(folder.rstrip("/").encode()).hexdigest()[:16]
    return cache_dir() / f"{root.rstrip('/').rsplit('/', 1)[-1]}-{slug}" / JOURNAL


def upload_journal(folder: str) -> None:
    """Copy the driver's journal into the sweep's object storage (nothing to do for a local
    folder). Written under a temporary name, then moved, so a reader sees a whole copy."""
    if is_local(folder):
        return
    source = local_journal(folder)
    if not source.exists():
        return
    fs, root = filesystem(folder)
    target = f"{root}/{JOURNAL}"
    fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(f"{target}.tmp") as out:
        out.write(source.read_bytes())
    fs.move(f"{target}.tmp", target)


def download_journal(folder: str) -> None:
    """Before resuming a sweep in object storage: fetch its journal copy into the local
    cache, unless the cache already holds at least as much (the journal only grows; a
    driver that resumes on the machine it ran on may hold more than its last upload)."""
    if is_local(folder):
        return
    fs, root = filesystem(folder)
    info = fs.get_file_info(f"{root}/{JOURNAL}")
    if info.type == pafs.FileType.NotFound:
        return
    target = local_journal(folder)
    if target.exists() and target.stat().st_size >= (info.size or 0):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with fs.open_input_stream(f"{root}/{JOURNAL}") as f:
        data = f.read()
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)


def sees(path: str) -> str | None:
    """None when `path` exists as this process sees it; else why not. Runs on every node
    of a cluster to check that each sees the driver's storage (Ray's own check, done before
    any trial starts)."""
    try:
        fs, root = filesystem(path)
        found = fs.get_file_info(root).type != pafs.FileType.NotFound
    except OSError as e:
        return " ".join(str(e).split())
    return None if found else "not there"
