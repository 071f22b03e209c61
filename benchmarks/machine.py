"""What every benchmark records about the machine it ran on."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name and core count ("unknown CPU" where /proc/cpuinfo is absent)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next(
        (ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "unknown CPU"
    )
    return f"{model}, {os.cpu_count()} cores"
