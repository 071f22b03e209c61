"""The `sweep` and `python -m analysis` commands run in this test process: their `main` with
these arguments, output captured, exit status kept. For the many checks of what bad input
prints, which would otherwise each pay a new interpreter's imports (seconds); the tests that
run the console script or the module as a subprocess check their wiring."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from analysis.__main__ import main as analysis_main
from sweep.cli import main as sweep_main


def _here(
    main: Callable[[], object], command: list[str], cwd: Path | None
) -> subprocess.CompletedProcess[str]:
    """`command` as `main()` runs it, in `cwd` if given; an uncaught exception (a traceback,
    for a user) propagates and fails the test. What `main` sets for its process (where
    warnings go, the arguments) is put back."""
    out, err = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, command
    shown = warnings.showwarning
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
        warnings.showwarning = shown
    status = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess(command, status, out.getvalue(), err.getvalue())


def sweep_here(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`sweep <args>`, in this process."""
    return _here(sweep_main, ["sweep", *args], cwd)


def analysis_here(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m analysis <args>`, in this process."""
    return _here(analysis_main, ["python -m analysis", *args], None)
