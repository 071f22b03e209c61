"""The packages of the project's optional extras that a spec can ask for (`tracking:`), and
whether each imports here. Ray-free: the spec's validation asks before anything starts."""

from __future__ import annotations

import importlib

from sweep.errors import one_line

# tracker -> (the package its Ray Tune callback imports, the project's extra that installs it)
PACKAGES = {"tensorboard": "tensorboardX", "mlflow": "mlflow", "wandb": "wandb"}


def missing_package(tracker: str) -> str | None:
    """Why `tracker` cannot run here (its package is absent or does not import), or None.
    Imports the package: only call it for a tracker the spec names."""
    package = PACKAGES[tracker]
    try:
        importlib.import_module(package)
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.split(".")[0] != package.split(".")[0]:
            return f"package {package!r} does not import: {one_line(e)}"
        return (
            f"package {package!r} is not installed; pip install -e '.[{tracker}]' "
            "(or '.[tracking]' for all three)"
        )
    except Exception as e:  # a broken install fails in any way
        return f"package {package!r} does not import: {one_line(e)}"
    return None
