"""Which code runs: the git commit and the package versions, for results rows and
`sweep --version`. Imports nothing heavy, so `sweep --version` answers at once."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


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


def versions() -> dict[str, str]:
    """`version.<package>` of every package in `sweep.store.VERSIONED`, and `platform`,
    read from the installed distributions' metadata (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    from sweep.store import VERSIONED

    found: dict[str, str] = {}
    for package in VERSIONED:
        if package == "python":
            found["version.python"] = platform.python_version()
            continue
        try:
            found[f"version.{package}"] = version(package)
        except PackageNotFoundError:
            found[f"version.{package}"] = "not installed"
    found["platform"] = platform.platform()
    return found
