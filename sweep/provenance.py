"""Which code runs: the git commit and the package versions, for results rows and
`sweep --version`. Imports nothing heavy, so `sweep --version` answers at once."""

from __future__ import annotations

import dataclasses
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweep.rows import Versions


def git_commit() -> str:
    """The commit of the code that runs, '+dirty' when it has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", "-C", str(here), *a], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        return commit + ("+dirty" if run("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> Versions:
    """The version of every package a trials row records (`sweep.rows.Versions`), read from
    the installed distributions' metadata (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    from sweep.rows import Versions

    found: dict[str, str] = {}
    for f in dataclasses.fields(Versions):
        if f.name == "python":
            found["python"] = platform.python_version()
            continue
        try:
            found[f.name] = version(f.name)
        except PackageNotFoundError:
            found[f.name] = "not installed"
    return Versions(**found)


def platform_name() -> str:
    """Operating system and machine, as `platform.platform()`."""
    return platform.platform()
