"""The `sweep` command run in this test process: its console script's `main` with these
arguments, output captured, exit status kept. For the many checks of what bad input prints,
which would otherwise each pay a new interpreter's imports (seconds); the tests that run the
console script as a subprocess check its wiring."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

from sweep.cli import main


def sweep_here(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`sweep <args>` as `main()` runs it, in `cwd` if given; an uncaught exception (a
    traceback, for a user) propagates and fails the test."""
    out, err = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, ["sweep", *args]
    code: int | str | None = 0
    try:
        with (
            contextlib.chdir(cwd or Path.cwd()),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            main()
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    status = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess(["sweep", *args], status, out.getvalue(), err.getvalue())
