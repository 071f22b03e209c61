"""Sweep specs: every error found before Ray starts or anything is written."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from plastic_models.rules import REGISTRY as RULES
from sweep.models import FAMILIES
from sweep.plan import confirm_seed, make_cells, search_seed
from sweep.spec import SEEDS_PER_CELL, SEEDS_PER_SWEEP, SpecError, load_spec, parse_spec
from sweep.tasks import TASKS, levels
from tests.support.cli import sweep_here
from tests.support.sweeps import tiny_spec, write_spec

ROOT = Path(__file__).resolve().parents[1]
# the valid names each error lists, as the registries hold them (a plugin's part included)
TASK_NAMES = ", ".join(TASKS)
PATTERN_LEVELS = ", ".join(levels("patterns"))
FAMILY_NAMES = ", ".join(FAMILIES)
RULE_NAMES = ", ".join(RULES)


@pytest.mark.parametrize("example", sorted(p.stem for p in (ROOT / "examples").glob("*.yaml")))
def test_examples_validate(example: str) -> None:
    spec = load_spec(ROOT / "examples" / f"{example}.yaml")
    assert len(make_cells(spec)) == len(spec.difficulties) * len(spec.models)


def _broken(change: str) -> dict[str, Any]:
    s = copy.deepcopy(tiny_spec(Path("/nonexistent")))
    models, space = s["models"], s["search"]["space"]
    if change == "unknown key":
        s["schedular"] = "asha"
    elif change == "misspelled key":
        s["max_concurent"] = 2
    elif change == "misspelled nested key":
        s["train"]["episdoes"] = 100
    elif change == "misspelled section key":
        s["search"]["trials_per_cel"] = 3
    elif change == "wrong type":
        s["train"]["episodes"] = "many"
    elif change == "unknown task":
        s["task"] = "bandit"
    elif change == "misspelled task":
        s["task"] = "pattern"
    elif change == "unknown level":
        s["difficulties"] = ["trivial", "impossible"]
    elif change == "misspelled level":
        s["difficulties"] = ["trivial", "tyni"]
    elif change == "level of a custom difficulty":
        s["difficulties"] = ["trivial", {"mine": {"level": "smal", "pattern_size": 20}}]
    elif change == "difficulty not a name":
        s["difficulties"] = ["trivial", 3]
    elif change == "unknown family":
        models["lstm"]["family"] = "transformer"
    elif change == "misspelled family":
        models["lstm"]["family"] = "lstn"
    elif change == "misspelled rule":
        models["plastic"]["rule"] = "hebian"
        del space["rule"]
    elif change == "misspelled hyperparameter":
        models["plastic"]["etta"] = 0.1
    elif change == "unknown sampler":
        s["search"]["sampler"] = "bayes"
    elif change == "no models":
        s["models"] = {}
    elif change == "non-positive budget":
        s["search"]["trials_per_cell"] = 0
    elif change == "parameter no model has":
        space["momentum"] = {"uniform": [0.1, 0.9]}
    elif change == "misspelled parameter":
        space["lrr"] = {"uniform": [0.1, 0.9]}
    elif change == "log bound <= 0":
        space["lr"] = {"loguniform": [0, 0.01]}
    elif change == "low >= high":
        space["eta"] = {"uniform": [0.5, 0.1]}
    elif change == "integer searched as a float":
        space["hidden"] = {"uniform": [8, 64]}
        models["lstm"] = {"family": "lstm"}
        models["rnn"] = {"family": "rnn"}
    elif change == "choice that is not a value":
        space["rule"] = {"choice": [{"hebb": 1}]}
    elif change == "match_neurons target missing":
        models["rnn"] = {"family": "rnn", "match_neurons": "plastik"}
    elif change == "both match keys":
        models["rnn"]["match_neurons"] = "plastic"
    elif change == "hidden and a match key":
        models["rnn"]["hidden"] = 32
    elif change == "match target itself matched":
        models["gru"] = {"family": "gru", "match_parameters": "rnn"}
    elif change == "fixed and searched":
        models["plastic"]["eta"] = 0.1
    elif change == "seed set by the sweep":
        s["train"]["seed"] = 3
    elif change == "too many trials per cell":
        s["search"]["trials_per_cell"] = 1001
    elif change == "confirm seeds beyond the seed block":
        s["confirm"]["seeds"] = 999_000
    elif change == "early stop not a mapping":
        s["early_stop"] = "sometimes"
    elif change == "a clamped plastic network with hidden neurons":
        models["plastic"] = {"family": "plastic", "input_mode": "clamp", "hidden": 8}
    return s


BAD = {
    "unknown key": "schedular: unknown key",
    "misspelled key": "max_concurent: unknown key; did you mean 'max_concurrent'?",
    "misspelled nested key": "train.episdoes: unknown key; did you mean 'episodes'?",
    "misspelled section key": "search.trials_per_cel: unknown key; did you mean 'trials_per_cell'?",
    "wrong type": "train.episodes: 'many': Input should be a valid integer",
    "unknown task": f"task: unknown task 'bandit'; valid: {TASK_NAMES}",
    "misspelled task": f"task: unknown task 'pattern'; valid: {TASK_NAMES}; did you mean",
    "unknown level": f"difficulties[1]: unknown level 'impossible'; valid: {PATTERN_LEVELS}",
    "misspelled level": f"difficulties[1]: unknown level 'tyni'; valid: {PATTERN_LEVELS}",
    "level of a custom difficulty": "difficulties[1].mine.level: unknown level 'smal'; valid:",
    "difficulty not a name": "difficulties[1]: 3: must be a level name or {NAME: {level:",
    "unknown family": f"models.lstm.family: unknown family 'transformer'; valid: {FAMILY_NAMES}",
    "misspelled family": f"models.lstm.family: unknown family 'lstn'; valid: {FAMILY_NAMES}",
    "misspelled rule": f"models.plastic.rule: unknown rule 'hebian'; valid: {RULE_NAMES}",
    "misspelled hyperparameter": "models.plastic.etta: family 'plastic' has no such hyperparam",
    "unknown sampler": "search.sampler: 'bayes': Input should be 'tpe', 'random' or 'grid'",
    "no models": "models: Dictionary should have at least 1 item",
    "non-positive budget": "search.trials_per_cell: 0: Input should be greater than 0",
    "parameter no model has": "search.space.momentum: no model in this sweep has it; valid:",
    "misspelled parameter": "search.space.lrr: no model in this sweep has it; valid: ",
    "log bound <= 0": "search.space.lr.loguniform: low must be > 0",
    "low >= high": "search.space.eta.uniform: low (0.5) must be < high (0.1)",
    "integer searched as a float": "search.space.hidden.uniform: 25.8253",
    "choice that is not a value": "search.space.rule.choice: {'hebb': 1}: a choice must be",
    "match_neurons target missing": "models.rnn.match_neurons: 'plastik' is not another model",
    "both match keys": "models.rnn: give either match_parameters or match_neurons, not both",
    "hidden and a match key": "models.rnn: give either hidden or match_parameters, not both",
    "match target itself matched": "models.gru.match_parameters: 'rnn' is itself sized by match",
    "fixed and searched": "models.plastic.eta: also searched (search.space.eta)",
    "seed set by the sweep": "train.seed: set by the sweep",
    "too many trials per cell": "search.trials_per_cell: 1001: Input should be less than or equal",
    "confirm seeds beyond the seed block": "confirm.seeds: 999000: with 6 cells of 2 search tr",
    "early stop not a mapping": "early_stop: 'sometimes': must be a mapping of keys to values",
    "a clamped plastic network with hidden neurons": "models.plastic: input_mode 'clamp' needs",
}
SUGGESTS = {
    "misspelled task": "patterns",
    "misspelled level": "tiny",
    "level of a custom difficulty": "small",
    "misspelled family": "lstm",
    "misspelled rule": "hebb",
    "misspelled hyperparameter": "eta",
    "misspelled parameter": "lr",
    "match_neurons target missing": "plastic",
}


@pytest.mark.parametrize("change", BAD)
def test_each_bad_spec_names_its_path(change: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_broken(change))
    assert any(line.startswith(BAD[change]) for line in info.value.errors), info.value.errors
    if change in SUGGESTS:
        assert any(f"did you mean {SUGGESTS[change]!r}?" in e for e in info.value.errors)


def _error_paths(spec: dict[str, Any]) -> list[str]:
    """Where each of the spec's errors is (`models.rnn`, `train.episdoes`), in their order."""
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return [line.split(":")[0] for line in info.value.errors]


def test_every_error_is_listed_at_once_in_the_order_of_the_spec() -> None:
    s = _broken("unknown family")
    s["models"]["rnn"]["match_parameters"] = "gru"
    s["models"]["plastic"]["match_neurons"] = "nobody"
    s["train"]["eval_every"] = -1
    s["train"]["episdoes"] = 10
    s["search"]["space"]["momentum"] = {"uniform": [0.1, 0.9]}
    s["search"]["sampler"] = "bayes"
    s["max_concurent"] = 3
    assert _error_paths(s) == [
        "models.plastic.match_neurons",
        "models.rnn.match_parameters",
        "models.lstm.family",
        "train.eval_every",
        "train.episdoes",
        "search.sampler",
        "search.space.momentum",
        "max_concurent",
    ]


def test_a_bad_section_hides_no_error_in_the_others() -> None:
    """The search section fails on its own; the models' and the train's errors still show."""
    s = _broken("misspelled family")
    s["search"]["sampler"] = "bayes"
    s["train"]["batch_size"] = 0
    s["models"]["plastic"]["rule"] = "oja-ish"
    del s["search"]["space"]["rule"]
    s["models"]["rnn"] = 5  # one bad entry: the other models are still checked
    assert _error_paths(s) == [
        "models.rnn",
        "models.plastic.rule",
        "models.lstm.family",
        "train.batch_size",
        "search.sampler",
    ]


def test_one_bad_difficulty_hides_no_error_in_the_others() -> None:
    s = _broken("unknown level")
    s["difficulties"] = [{"mine": {"level": "tyni"}, "yours": {"level": "tiny"}}, 3, "hard"]
    assert _error_paths(s) == [
        "difficulties[0].mine.level",
        "difficulties[1]",
        "difficulties[2]",
    ]


def test_the_seed_limits_are_those_of_the_plan() -> None:
    """At the largest budgets validation allows, every trial still gets its own seed."""
    spec = parse_spec(tiny_spec(Path("/nonexistent"), early_stop="none"))
    cells = make_cells(spec)
    limit = SEEDS_PER_SWEEP - (len(cells) - 1) * SEEDS_PER_CELL - SEEDS_PER_CELL
    search = {**tiny_spec(Path("/n"))["search"], "trials_per_cell": SEEDS_PER_CELL}
    widest = parse_spec(tiny_spec(Path("/n"), search=search, confirm={"seeds": limit}))
    searched = {search_seed(widest, c, n) for c in cells for n in range(SEEDS_PER_CELL)}
    confirmed = {confirm_seed(widest, k) for k in range(limit)}
    assert len(searched) == len(cells) * SEEDS_PER_CELL and len(confirmed) == limit
    assert not searched & confirmed
    with pytest.raises(SpecError, match=r"confirm\.seeds"):
        parse_spec(tiny_spec(Path("/n"), search=search, confirm={"seeds": limit + 1}))


def test_early_stop_none_means_no_scheduler() -> None:
    for off in ("none", None, {"scheduler": "none"}):
        assert parse_spec(tiny_spec(Path("/n"), early_stop=off)).asha is None
    assert parse_spec(tiny_spec(Path("/n"), early_stop={"scheduler": "asha"})).asha is not None


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("change", ["unknown key", "log bound <= 0", "unknown family"])
def test_run_with_a_bad_spec_exits_2_and_writes_nothing(change: str, tmp_path: Path) -> None:
    spec = _broken(change)
    spec["storage"] = str(tmp_path / "results")
    done = sweep_here("run", str(write_spec(tmp_path, spec)))
    assert done.returncode == 2
    assert BAD[change] in done.stderr
    assert all(line.startswith("sweep: error: ") for line in done.stderr.strip().splitlines())
    assert not (tmp_path / "results").exists()


def test_validate_accepts_a_good_spec(tmp_path: Path) -> None:
    done = sweep_here("validate", str(write_spec(tmp_path, tiny_spec(tmp_path))))
    assert done.returncode == 0, done.stderr
    assert "6 cells x 4 trials" in done.stdout
    assert not (tmp_path / "results").exists()


def test_an_image_sweep_validates_and_its_levels_are_checked() -> None:
    spec = tiny_spec(Path("/nonexistent"), task="images", difficulties=["tiny", "medium"])
    spec["search"]["space"] = {"lr": {"loguniform": [1.0e-4, 1.0e-2]}}
    assert len(make_cells(parse_spec(spec))) == 6
    spec["difficulties"] = ["tiny", "paper-full"]
    with pytest.raises(SpecError, match=r"difficulties\[1\]: unknown level 'paper-full'"):
        parse_spec(spec)
