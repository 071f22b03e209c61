"""The `sweep` command line.

Parsing comes first and the heavy libraries (torch, Ray, pandas) are imported inside the
commands, so `sweep --help` and a usage error answer at once.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from sweep import runner
    from sweep.learners import Learner
    from sweep.spec import SweepSpec
    from sweep.tasks import Task
    from sweep.train import Report, TrainConfig

CONTEXT = {"help_option_names": ["-h", "--help"]}


class BadInput(click.ClickException):
    """A one-line error about the user's input; exit status 2."""

    exit_code = 2


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        # Click's usage errors are also bad input: one line, exit 2, nothing run.
        click.echo(f"sweep: error: {' '.join(e.format_message().split())}", err=True)
        sys.exit(2 if isinstance(e, click.UsageError) else e.exit_code)


def _version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import version

    from sweep.provenance import git_commit

    click.echo(f"sweep (plasticity-sweeps) {version('plasticity-sweeps')}, commit {git_commit()}")
    ctx.exit()


@click.group(context_settings=CONTEXT)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Show the version and git commit, and exit.",
)
def cli() -> None:
    """Sweeps comparing plastic networks with RNNs and LSTMs on memory tasks.

    \b
    Shell completion (bash; zsh and fish alike, see the README):
        eval "$(_SWEEP_COMPLETE=bash_source sweep)"
    """


def choices() -> list[tuple[str, str]]:
    """(term, description) rows of every valid choice, read from the registries: each task
    with its levels, each model family with its hyperparameters (and their choices)."""
    from plastic_models.rules import REGISTRY as RULES
    from sweep.errors import annotation_at
    from sweep.models import FAMILIES
    from sweep.tasks import TASKS, levels

    def described(config: Any, param: str) -> str:
        found = annotation_at(config, [param])
        if typing.get_origin(found) is typing.Literal:
            return f"{param} ({' | '.join(map(str, typing.get_args(found)))})"
        return param

    rows = [(f"task {task}", "levels: " + ", ".join(levels(task))) for task in TASKS]
    for name, family in FAMILIES.items():
        params = ", ".join(described(family.config, p) for p in family.parameters)
        rows.append((f"model {name}", "hyperparameters: " + params))
    rows.append(("rules", ", ".join(RULES)))  # the `rule` of the plastic families
    return rows


class _WithChoices(click.Command):
    """A command whose help ends with the valid tasks, levels, families and their
    hyperparameters; the registries (and torch) are imported only when that help is shown."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Valid choices"):
            formatter.write_dl(choices())
        with formatter.section("Defaults: the published method's (sweep.defaults)"):
            formatter.write_dl(DEFAULTS_HELP)
        super().format_epilog(ctx, formatter)


def _complete_task(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from sweep.tasks import TASKS

    return [t for t in TASKS if t.startswith(incomplete)]


def _complete_level(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from sweep.tasks import levels

    try:
        found = levels(ctx.params.get("task") or "patterns")
    except ValueError:
        return []
    return [level for level in found if level.startswith(incomplete)]


def _complete_family(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from sweep.models import FAMILIES

    return [f for f in FAMILIES if f.startswith(incomplete)]


def _parse_params(items: tuple[str, ...], flag: str) -> dict[str, Any]:
    import yaml

    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"{flag} {item!r} is not KEY=VALUE")
        params[key] = yaml.safe_load(value)
    return params


# What an unset setting resolves to (sweep.defaults; README "Parity with the reference code")
DEFAULTS_HELP = [
    (
        "plastic",
        "patterns, images: the 2018 code's (rule hebb, init normal, direct architecture); "
        "modulation simple: rule additive (clip 1), init uniform; retroactive: rule hebb "
        "for the eligibility trace, clip(PW + M E) at 1, init uniform",
    ),
    (
        "plastic (maze, cue_reward)",
        "Backpropamine's: rule additive, clip 1, init uniform, eta 0.01 (maze) or 0.1 "
        "(cue_reward), hidden 100 at maze 13x13 and 200 at cue_reward 4x20 bits, scaled "
        "to the level",
    ),
    (
        "plastic_lstm",
        "the language model's: rule additive, clip 2, fanout, alpha per neuron ~ "
        "1e-4 U[0,1), alpha_grad_scale 1/hidden",
    ),
    (
        "training (maze)",
        "batch 30, lr 1e-3 (the reference: 1e-4), adam_eps 1e-4, grad_clip 4, "
        "entropy simpson 0.03, value 0.1",
    ),
    (
        "training (cue_reward)",
        "batch 30, lr 1e-3 (the reference: 1e-4), adam_eps 1e-6, grad_clip 2, "
        "entropy simpson 0.1, value 0.1",
    ),
]

# `sweep train`'s own defaults, below the task's reference and above TrainConfig's
CLI_TRAIN = {"batch_size": 16, "lr": 1e-3}


def _resolve_trial(
    task: str,
    difficulty: str,
    task_params: dict[str, Any],
    model: str,
    params: dict[str, Any],
    train: dict[str, Any],
) -> tuple[Task, TrainConfig, Learner, dict[str, Any]]:
    """Validate everything a trial needs (datasets included) before any training starts;
    what is unset takes the published method's value (`sweep.defaults`)."""
    from pydantic import ValidationError

    from sweep.defaults import method_of, resolve_model, resolve_train
    from sweep.learners import all_settings, learner_of, make_learner, owner, settings_names
    from sweep.models import make_config
    from sweep.tasks import make_task
    from sweep.train import TRAIN_FIELDS, TrainConfig

    try:
        made = make_task(task, difficulty, task_params)
        method = method_of(made)
        resolved = resolve_model(method, model, params)
        make_config(model, resolved)
    except ValueError as e:
        raise BadInput(str(e)) from None
    learner = learner_of(made)
    for key in sorted(set(train) & set(all_settings()) - set(settings_names(learner))):
        raise BadInput(
            f"--{key.replace('_', '-')}={train[key]!r}: a setting of the {owner(key)} learner; "
            f"task {task!r} learns by {learner}"
        )
    try:
        settings = {**CLI_TRAIN, **resolve_train(method, train)}
        common = {k: v for k, v in settings.items() if k in TRAIN_FIELDS}
        return made, TrainConfig(**common), make_learner(learner, settings), resolved
    except ValidationError as e:
        err = e.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-")
        raise BadInput(f"{flag}={err['input']!r}: {err['msg']}") from None


def run_with_progress(
    task: Task, model: str, params: dict[str, Any], train: TrainConfig, learner: Learner
) -> Report:
    """Train one trial with a progress bar on stderr; returns the final report."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from sweep.train import train_trial

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{task.metric} {{task.fields[value]}}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task(f"{model} on {task.level}", total=train.episodes, value="-")
        for report in train_trial(task, model, params, train, learner):
            progress.update(bar, completed=report.episodes, value=f"{report.value:.4f}")
    return report


@cli.command(cls=_WithChoices)
@click.option(
    "--task",
    default="patterns",
    show_default=True,
    shell_complete=_complete_task,
    help="A task (valid choices below).",
)
@click.option(
    "--difficulty",
    required=True,
    shell_complete=_complete_level,
    help="A named level of the task's ladder (below).",
)
@click.option(
    "--model", required=True, shell_complete=_complete_family, help="A model family (below)."
)
@click.option("--hidden", type=int, help="Neurons (plastic: omit for the direct architecture).")
@click.option("--episodes", type=int, default=16_000, show_default=True)
@click.option("--batch-size", type=int, help="Episodes per step (default: the task's, else 16).")
@click.option("--lr", type=float, help="Adam learning rate (default: the task's, else 1e-3).")
@click.option("--adam-eps", type=float, help="Adam's epsilon (default: the task's, else 1e-8).")
@click.option("--grad-clip", type=float, help="Max gradient norm (default: the task's, else none).")
@click.option("--eval-every", type=int, default=1000, show_default=True)
@click.option("--eval-episodes", type=int, default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--gamma", type=float, help="Reward tasks: discount of the returns (0.9).")
@click.option(
    "--entropy",
    type=click.Choice(["shannon", "simpson"]),
    help="Reward tasks: exploration term, entropy bonus or sum p^2 penalty (the task's).",
)
@click.option("--entropy-coef", type=float, help="Reward tasks: its weight (the task's).")
@click.option("--value-coef", type=float, help="Reward tasks: value loss weight (0.1).")
@click.option(
    "--param", "params", multiple=True, help="Model hyperparameter KEY=VALUE, repeatable."
)
@click.option(
    "--task-param",
    "task_params",
    multiple=True,
    help="Task protocol parameter KEY=VALUE (e.g. cifar_path=DIR), repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the final record as JSON on stdout.")
def train(
    task: str,
    difficulty: str,
    model: str,
    hidden: int | None,
    params: tuple[str, ...],
    task_params: tuple[str, ...],
    as_json: bool,
    **train: Any,
) -> None:
    """Train one model on one task level and report its errors."""
    model_params = _parse_params(params, "--param")
    if hidden is not None:
        model_params["hidden"] = hidden
    protocol = _parse_params(task_params, "--task-param")
    given = {k: v for k, v in train.items() if v is not None}  # unset: the task's, TrainConfig's
    made, config, learner, resolved = _resolve_trial(
        task, difficulty, protocol, model, model_params, given
    )
    report = run_with_progress(made, model, resolved, config, learner)
    record = {"task": task, "difficulty": difficulty, "model": model, "seed": config.seed}
    record["model_params"] = resolved  # the settings in effect, the reference's defaults included
    settings = {**dataclasses.asdict(config), **dataclasses.asdict(learner.settings)}
    record["train"] = {k: v for k, v in settings.items() if k != "seed"}
    record |= {
        "metric": made.metric,  # what the value, best_value and final_value measure
        "goal": made.goal,  # min: lower is better; max: higher is better
        "chance": made.chance,
        "solved_threshold": made.solved_threshold,
        # the final and best values again, under the metric's own name
        f"final_{made.metric}": report.final_value,
        f"best_{made.metric}": report.best_value,
    }
    record |= report.to_dict()
    if as_json:  # NaN (a diverged trial's missing metrics) is not JSON: null
        click.echo(json.dumps({k: None if v != v else v for k, v in record.items()}))
    else:
        for key, value in record.items():
            click.echo(f"{key:>20}  {value}")


def _spec_or_exit(path: str) -> SweepSpec:
    from sweep.spec import SpecError, load_spec

    try:
        return load_spec(path)
    except SpecError as e:
        for line in e.errors:
            click.echo(f"sweep: error: {line}", err=True)
        sys.exit(2)


def _memory_or_exit(spec: SweepSpec, cpus: int | None = None, address: str | None = None) -> None:
    """A population (`resources.members` > 1) must fit the memory a trial gets: one line per
    cell that cannot, exit 2. Where this machine cannot tell (a cluster, or a GPU trial and no
    GPU here), each population checks in its trial."""
    members = spec.resources.members
    if members == 1:
        return
    from sweep.memory import population_errors, trial_budget

    budget = None if address else trial_budget(spec, cpus)
    if budget is None:
        why = "on a cluster" if address else "with no GPU here"
        click.echo(
            f"sweep: note: resources.members: {members}: {why}, each population checks its "
            "memory in its trial, before it starts",
            err=True,
        )
        return
    errors = population_errors(spec, budget)
    for line in errors:
        click.echo(f"sweep: error: {line}", err=True)
    if errors:
        sys.exit(2)


_address = click.option(
    "--address", help="Join a running Ray cluster (auto, or HOST:PORT); default: embedded Ray."
)
_num_cpus = click.option("--num-cpus", type=int, help="Embedded Ray: CPUs to offer trials.")
_num_gpus = click.option(
    "--num-gpus", type=int, help="Embedded Ray: GPUs to declare (default: those detected)."
)


@cli.command()
@click.argument("spec_path", metavar="SPEC")
def validate(spec_path: str) -> None:
    """Validate a sweep spec; print every problem with its path in the spec (the valid
    tasks, levels and families: `sweep train -h`)."""
    spec = _spec_or_exit(spec_path)
    _memory_or_exit(spec)
    from sweep.plan import make_cells
    from sweep.progress import budget

    cells = make_cells(spec)
    click.echo(f"{spec_path}: ok: {len(cells)} cells x {budget(spec)} trials")


def _print_cells(folder: str) -> None:
    """The cells table from storage, whole: a pipe or a file gets it at its full width (a
    terminal gets what fits in it)."""
    from rich.console import Console
    from rich.measure import Measurement

    from sweep import runner

    table = runner.status(folder)
    console = Console()
    if not console.is_terminal:
        unbounded = console.options.update_width(10_000)  # measures are clamped to it
        width = Measurement.get(console, unbounded, table).maximum
        console = Console(width=max(console.width, width))
    console.print(table)


def _finished(folder: str, started: float) -> None:
    """The cells table from storage, once, then how long it took and what to run next."""
    _print_cells(folder)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    out = " --out DIR" if "://" in folder else ""  # the report is written to a local folder
    click.echo(
        f"finished in {minutes} min {seconds} s; next: python -m analysis report {folder}{out}"
    )


@cli.command(name="run")
@click.argument("spec_path", metavar="SPEC")
@_address
@_num_cpus
@_num_gpus
def run_command(
    spec_path: str, address: str | None, num_cpus: int | None, num_gpus: int | None
) -> None:
    """Run a sweep: every (difficulty, model) cell searched with the same budget, then each
    cell's best configuration confirmed on fresh seeds.

    Safe to run again (a requeued cluster job does): where the sweep exists with the same
    spec it is continued as `sweep resume` would, or, when nothing is left to do, its cells
    are printed. A spec that only adds to it (difficulties, models, choice entries, more
    trials_per_cell or confirm.seeds) grows it: just the new work runs. Any other change
    under the same name is refused."""
    started = time.monotonic()
    spec = _spec_or_exit(spec_path)
    _memory_or_exit(spec, num_cpus, address)
    from sweep import runner
    from sweep.spec import SpecError

    try:
        found = runner.existing(spec)
        folder = runner.sweep_dir(spec)
        if found == "done":
            click.echo(f"{folder}: this sweep is finished (same spec); nothing left to run")
            _print_cells(folder)
            return
        if found == "resume":
            click.echo(f"{folder}: continuing the sweep there (same spec), as `sweep resume`")
            runner.resume(folder, address, num_cpus, num_gpus)
        else:
            if found == "grow":
                added = runner.growth(folder, spec) or ["only how it runs changed"]
                click.echo(f"{folder}: growing the sweep there; {'; '.join(added)}")
            written = Path(spec_path).read_text()  # read once already: it validated
            folder = runner.run(spec, address, num_cpus, num_gpus, written=written)
    except SpecError as e:
        for line in e.errors:
            click.echo(f"sweep: error: {line}", err=True)
        sys.exit(2)
    except runner.SweepError as e:
        raise BadInput(str(e)) from None
    except runner.SweepFailed as e:
        _failed(e)
    _finished(folder, started)


def _failed(e: runner.SweepFailed) -> NoReturn:
    """What the sweep wrote, then one line naming what went wrong; exit status 1."""
    _print_cells(e.folder)
    click.echo(f"sweep: error: {e}", err=True)
    sys.exit(1)


@cli.command()
@click.argument("folder", metavar="DIR")
@_address
@_num_cpus
@_num_gpus
def resume(folder: str, address: str | None, num_cpus: int | None, num_gpus: int | None) -> None:
    """Finish an interrupted sweep without re-running finished trials."""
    started = time.monotonic()
    from sweep import runner
    from sweep.spec import SpecError

    try:
        runner.resume(folder, address, num_cpus, num_gpus)
    except (runner.SweepError, SpecError) as e:
        raise BadInput(str(e)) from None
    except runner.SweepFailed as e:
        _failed(e)
    _finished(folder, started)


@cli.command()
@click.argument("folder", metavar="DIR")
def status(folder: str) -> None:
    """Print the cells of a sweep from storage: done, running, pending trials, the search's
    best value and the confirmation's median and solved seeds."""
    from sweep import runner
    from sweep.spec import SpecError

    try:
        _print_cells(folder)
    except (runner.SweepError, SpecError) as e:
        raise BadInput(str(e)) from None
