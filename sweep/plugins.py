"""A researcher's own modules: imported before a spec is checked, shipped to every Ray worker.

A spec's `plugins: [mylab.rules, extra/covariance.py]` names Python modules that register
plasticity rules (`plastic_models.register_rule`), model families
(`sweep.models.register_family`) or tasks (`sweep.tasks.register_task`). Each entry is a
module name or a `.py` path, looked up first relative to the spec's folder (`plugin_root`),
then among the installed packages. The driver imports them when it validates the spec; Ray
ships each one's top-level package to every worker (runtime_env `py_modules`, local and
cluster alike) and a worker setup hook imports them before any trial is built.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from sweep.errors import one_line

ENV_VAR = "SWEEP_PLUGINS"  # the modules a Ray worker imports at start, comma-separated


def module_name(entry: str) -> str:
    """`mylab.rules` as it is; `extra/covariance.py` -> `extra.covariance`."""
    return entry.removesuffix(".py").replace("/", ".") if entry.endswith(".py") else entry


def load(entries: Sequence[str], root: str | None) -> list[str]:
    """Import every plugin; one `plugins[i]: ...` line per one that fails (none: all loaded)."""
    if root is not None and root not in sys.path:
        sys.path.insert(0, root)  # a plugin beside the spec wins over an installed namesake
    errors = []
    for i, entry in enumerate(entries):
        name = module_name(entry)
        where = f"plugins[{i}]: {entry!r}"
        if not all(part.isidentifier() for part in name.split(".")):
            errors.append(f"{where}: not a module name or a .py path")
            continue
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is None or not name.startswith(e.name):
                errors.append(f"{where}: importing it failed: {one_line(e)}")
            else:
                looked = f"{root} or " if root else ""
                errors.append(f"{where}: no module {e.name!r} in {looked}the installed packages")
        except Exception as e:  # a registration error or any other failure of the module
            errors.append(f"{where}: importing it failed: {one_line(e)}")
    return errors


def _top_level(name: str) -> ModuleType:
    return sys.modules[name.split(".")[0]]


def runtime_env(entries: Sequence[str]) -> dict[str, Any]:
    """Ray's runtime_env that ships the (already imported) plugins and imports them on every
    worker; empty without plugins."""
    if not entries:
        return {}
    names = [module_name(e) for e in entries]
    shipped = {id(m): m for m in map(_top_level, names)}
    return {
        "py_modules": list(shipped.values()),
        "env_vars": {ENV_VAR: ",".join(names)},
        "worker_process_setup_hook": f"{__name__}.setup_worker",
    }


def setup_worker() -> None:
    """Ray worker start: import the plugins the driver named."""
    for name in filter(None, os.environ.get(ENV_VAR, "").split(",")):
        importlib.import_module(name)


def spec_root(path: Path) -> str:
    return str(path.resolve().parent)
