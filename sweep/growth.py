"""Growing a sweep: a spec that only adds to the one a sweep ran with runs just the new work.

What may change, and how:

- added: difficulties, models, plugins, entries at the end of a `choice` (the cells that
  search it continue their studies over the larger set);
- raised: `search.trials_per_cell` (existing studies continue, TPE sees their past trials),
  `confirm.seeds` (the added seeds run for each cell's current best);
- free: how the sweep runs, not what its trials mean (`resources` but `workers`: `members`
  too, a member trains as it would alone; `max_concurrent`, `fault_tolerance`, `tracking`).

Anything else would make finished trials mean something else (the training budget, the task,
a difficulty's protocol, a search range, a model's fixed settings, the sampler or its seed,
early stopping) and is refused, one line per changed key.

Every spec a sweep has run with is kept: `<sweep>/history/<n>/spec.yaml` and
`spec-as-written.yaml`, n = 0, 1, ... (written when the sweep first grows). Generation n
runs in its own Ray Tune experiment, `tune` for 0 and `tune-<n>` after; the studies, tables
and checkpoints are shared. This module reads specs only; `sweep.runner` writes.
"""

from __future__ import annotations

from typing import Any

from sweep.errors import quote
from sweep.spec import SweepSpec

TUNE_DIR = "tune"

# Keys whose change only affects how a sweep runs (resources.workers does change training).
FREE = (
    "resources.cpu",
    "resources.gpu",
    "resources.one_node",
    "resources.members",
    "max_concurrent",
)
FREE_SECTIONS = ("fault_tolerance", "tracking")
# Keys that only grow: their new value must be at least the old one.
RAISED = ("search.trials_per_cell", "confirm.seeds")
# Where the sweep is and what it is called: the same by construction, or the folder's to say.
PLACE = ("name", "storage", "plugin_root")


def tune_dir(generation: int) -> str:
    """The Ray Tune experiment of a generation (a folder of the sweep)."""
    return TUNE_DIR if generation == 0 else f"{TUNE_DIR}-{generation}"


def changes(old: SweepSpec, new: SweepSpec) -> tuple[list[str], list[str]]:
    """(refused, grown): one line per change that would make finished trials mean something
    else, and one per addition. Neither: the same sweep."""
    refused: list[str] = []
    grown: list[str] = []
    a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
    _difficulties(old, new, refused, grown)
    _models(a["models"], b["models"], refused, grown)
    _space(a["search"]["space"], b["search"]["space"], refused, grown)
    for key in RAISED:
        before, after = _get(a, key), _get(b, key)
        if after < before:
            refused.append(f"{key}: {before} -> {after} (it may only grow)")
        elif after > before:
            grown.append(f"{key}: {before} -> {after}")
    added = [p for p in b["plugins"] if p not in a["plugins"]]
    if any(p not in b["plugins"] for p in a["plugins"]):
        refused.append(f"plugins: {quote(a['plugins'])} -> {quote(b['plugins'])} (may only add)")
    elif added:
        grown.append(f"plugins: added {', '.join(added)}")
    skip = ("difficulties", "models", "search.space", "plugins", *RAISED, *PLACE, *FREE)
    old_flat, new_flat = _flat(a), _flat(b)
    for key in sorted(set(old_flat) | set(new_flat)):
        if _under(key, (*skip, *FREE_SECTIONS)):
            continue
        if old_flat.get(key, _UNSET) != new_flat.get(key, _UNSET):
            refused.append(_changed(key, old_flat, new_flat))
    return refused, grown


def refusal(folder: str, lines: list[str]) -> list[str]:
    """The refused changes as error lines, each saying what to do."""
    return [
        f"{folder}: a sweep ran there with another spec; changed: {line}; a sweep can only "
        "grow (add difficulties, models, choice entries; raise trials_per_cell or "
        "confirm.seeds): to run this spec as a new sweep, give it a new `name`"
        for line in lines
    ]


def cell_order(history: list[SweepSpec]) -> list[str]:
    """Every cell of a sweep's specs, by first appearance: a cell keeps its index (and with
    it its trials' seeds) however the sweep grows."""
    from sweep.plan import cell_ids

    order: list[str] = []
    for spec in history:
        order += [c for c in cell_ids(spec) if c not in order]
    return order


# -- the parts ---------------------------------------------------------------------------------
def _difficulties(old: SweepSpec, new: SweepSpec, refused: list[str], grown: list[str]) -> None:
    before = {name: (level, params) for name, level, params in old.difficulty_items()}
    after = {name: (level, params) for name, level, params in new.difficulty_items()}
    for name, definition in before.items():
        if name not in after:
            refused.append(f"difficulties: {name} removed (a sweep can only add)")
        elif after[name] != definition:
            refused.append(
                f"difficulties.{name}: {quote(_level(*definition))} -> "
                f"{quote(_level(*after[name]))}"
            )
    added = [name for name in after if name not in before]
    if added:
        grown.append(f"difficulties: added {', '.join(added)}")


def _level(level: str | None, params: dict[str, Any]) -> dict[str, Any]:
    return {"level": level, **params}


def _models(
    before: dict[str, Any], after: dict[str, Any], refused: list[str], grown: list[str]
) -> None:
    for name, entry in before.items():
        if name not in after:
            refused.append(f"models: {name} removed (a sweep can only add)")
            continue
        old_flat, new_flat = _flat(entry, f"models.{name}"), _flat(after[name], f"models.{name}")
        for key in sorted(set(old_flat) | set(new_flat)):
            if old_flat.get(key, _UNSET) != new_flat.get(key, _UNSET):
                refused.append(_changed(key, old_flat, new_flat))
    added = [name for name in after if name not in before]
    if added:
        grown.append(f"models: added {', '.join(added)}")


def _space(
    before: dict[str, Any], after: dict[str, Any], refused: list[str], grown: list[str]
) -> None:
    for name in sorted(set(before) | set(after)):
        key = f"search.space.{name}"
        old, new = before.get(name), after.get(name)
        if old is None or new is None:
            what = "added" if old is None else "removed"
            refused.append(f"{key}: {what} (finished trials did not search it the same way)")
            continue
        old_choice, new_choice = old.get("choice"), new.get("choice")
        if old_choice is not None and new_choice is not None:
            if new_choice[: len(old_choice)] != old_choice:
                refused.append(
                    f"{key}.choice: {quote(old_choice)} -> {quote(new_choice)} (entries may "
                    "only be added at the end)"
                )
            elif len(new_choice) > len(old_choice):
                grown.append(f"{key}.choice: added {quote(new_choice[len(old_choice) :])}")
        else:
            before_flat, after_flat = _flat(old, key), _flat(new, key)
            for k in sorted(set(before_flat) | set(after_flat)):
                if before_flat.get(k, _UNSET) != after_flat.get(k, _UNSET):
                    refused.append(_changed(k, before_flat, after_flat))


_UNSET = object()


def _changed(key: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    def show(flat: dict[str, Any]) -> str:
        return quote(flat[key]) if key in flat else "(not set)"

    return f"{key}: {show(old)} -> {show(new)}"


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _get(tree: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        tree = tree[part]
    return tree


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'search.space.lr.loguniform': [...], ...}: a spec's values by dotted key."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out |= _flat(inner, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: value}
