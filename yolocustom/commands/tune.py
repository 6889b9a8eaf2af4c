"""``yolocustom tune``: sweep recipe values on Ray Tune, locally or on a cluster (``yolocustom.tune``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from yolocustom.commands._common import fail, user_errors_exit_1

if TYPE_CHECKING:
    from yolocustom.tune.runner import Sweep
    from yolocustom.tune.space import Space


def register(app: typer.Typer) -> None:
    """Add the ``tune`` command to ``app``."""

    @app.command("tune")
    @user_errors_exit_1
    def tune(
        recipe_file: Path | None = typer.Argument(None, help="The base recipe YAML (not needed with --resume)."),
        space_file: Path | None = typer.Option(
            None, "--space", help="Space YAML: dotted recipe path -> {choice|grid|uniform|loguniform|randint|quniform}."
        ),
        trials: int = typer.Option(
            1, "--trials", min=1, help="Ray Tune num_samples: random draws; each one runs every grid point."
        ),
        scheduler: str = typer.Option("asha", "--scheduler", help="asha (stops poor trials early) or fifo."),
        metric: str = typer.Option("fitness", "--metric", help="Reported metric to optimise (the recipe's fitness)."),
        mode: str | None = typer.Option(None, "--mode", help="max or min (default: min for losses, else max)."),
        address: str | None = typer.Option(
            None, "--address", help="Ray cluster: 'auto' or 'ray://host:10001'. Default: a local Ray for the sweep."
        ),
        gpus_per_trial: float = typer.Option(0, "--gpus-per-trial", min=0, help="GPUs each trial reserves."),
        cpus_per_trial: float = typer.Option(1, "--cpus-per-trial", min=0.01, help="CPUs each trial reserves."),
        grace_period: int = typer.Option(1, "--grace-period", min=1, help="ASHA: epochs before a trial can stop."),
        reduction_factor: float = typer.Option(3, "--reduction-factor", min=1.01, help="ASHA: keep 1/factor."),
        name: str | None = typer.Option(None, "--name", help="Sweep name (default: the recipe's file name)."),
        project: Path = typer.Option(Path("runs/tune"), "--project", help="Folder that holds the sweep folders."),
        resume: bool = typer.Option(False, "--resume", help="Continue the interrupted sweep --name (Tuner.restore)."),
    ) -> None:
        """Sweep recipe values (features included) on Ray Tune; each trial is a normal yolocustom run."""
        from yolocustom.tune import require_ray

        require_ray()
        from yolocustom.tune import runner

        project = project.expanduser().resolve()
        if resume:
            if name is None:
                raise fail("--resume needs --name, the sweep to continue (a folder under --project)")
            sweep = runner.Sweep.load(project / name)
            space_data = None
            print(f"Resuming sweep {sweep.folder} ({sweep.metric}, {sweep.mode}) through Ray Tune's restore")
        else:
            if recipe_file is None or space_file is None:
                raise fail("give a recipe and a space file: yolocustom tune configs/demo.yaml --space space.yaml")
            if scheduler not in ("asha", "fifo"):
                raise fail(f"--scheduler: expected 'asha' or 'fifo', found {scheduler!r}")
            if mode not in (None, "max", "min"):
                raise fail(f"--mode: expected 'max' or 'min', found {mode!r}")
            sweep, space = _prepare(recipe_file, space_file, trials, metric, mode, name, project)
            sweep.scheduler, sweep.grace_period, sweep.reduction_factor = scheduler, grace_period, reduction_factor
            sweep.cpus_per_trial, sweep.gpus_per_trial = cpus_per_trial, gpus_per_trial
            _check_device(sweep)
            space_data = space.ray_space()
        hint = f"yolocustom tune --resume --name {sweep.name} --project {sweep.path.parent}"
        try:
            rows = runner.tune_sweep(sweep, space_data, resume, address)
        except KeyboardInterrupt:  # a second Ctrl-C: Ray Tune skips its last state save, which may lose an epoch
            sys.stderr.write(f"\nInterrupted. Resume with:\n  {hint}\n")
            raise typer.Exit(130) from None
        _print_table(sweep, rows)
        left = runner.unfinished(rows)
        if left:  # the first Ctrl-C: Ray Tune stopped the trials and saved the sweep's state
            sys.stderr.write(f"\nInterrupted: {left} trial(s) unfinished. Resume with:\n  {hint}\n")
            raise typer.Exit(130)
        if not any(row[f"best {sweep.metric}"] is not None for row in rows):
            raise fail(f"every trial failed; see the error column of {sweep.path / runner.TRIALS_CSV}")
        print(f"\nSweep folder: {sweep.folder}\n{runner.TRIALS_CSV}, {runner.BEST_RECIPE}, {runner.PLOT}")


def _prepare(
    recipe_file: Path, space_file: Path, trials: int, metric: str, mode: str | None, name: str | None, project: Path
) -> tuple[Sweep, Space]:
    """Load and validate the recipe, the space and every sampled combination; pick the sweep folder."""
    from yolocustom.errors import UserError
    from yolocustom.recipe import load_recipe
    from yolocustom.tune import runner
    from yolocustom.tune.space import check_space, load_space

    recipe = load_recipe(recipe_file)
    if recipe.train.get("val") is False:
        raise UserError(f"{recipe_file}: train.val: a sweep needs validation every epoch, found false")
    mode = runner.check_metric(metric, mode)
    space = load_space(space_file)
    base = recipe.resolved_dict()
    checked = check_space(space, base, samples=max(trials, 16))
    print(f"Space {space_file}: {len(space.params)} swept value(s); {checked} complete recipes validated")
    name = name or recipe_file.stem
    if not re.fullmatch(r"[\w.-]+", name):
        raise UserError(f"--name: expected letters, digits, '.', '-' or '_', found {name!r}")
    folder = project / name
    n = 2
    while folder.exists():  # never mix two sweeps in one folder: a new name, as Ultralytics does for runs
        folder = project / f"{name}{n}"
        n += 1
    sweep = runner.Sweep(
        name=folder.name,
        folder=str(folder),
        recipe_file=str(recipe_file),
        space_file=str(space_file),
        base=base,
        space=space.to_data(),
        metric=metric,
        mode=mode,
        samples=trials,
        epochs=recipe.train_epochs(),
        params=[p.path for p in space.params],
    )
    print(f"Sweep {sweep.folder}: {space.trial_count(trials)} trial(s), {sweep.epochs} epoch(s) each")
    return sweep, space


def _check_device(sweep: Sweep) -> None:
    """A recipe on GPUs needs GPUs reserved per trial (Ray hides the others from the trial's process)."""
    from yolocustom.errors import UserError

    device = sweep.base.get("device")
    on_gpu = isinstance(device, int | list) or (isinstance(device, str) and device[:1].isdigit())
    if on_gpu and sweep.gpus_per_trial == 0:
        raise UserError(
            f"device: {device!r} trains on GPUs, but --gpus-per-trial is 0; reserve them with --gpus-per-trial N "
            "(Ray then shows each trial its own GPUs as 0..N-1)"
        )


def _print_table(sweep: Sweep, rows: list[dict[str, Any]]) -> None:
    """The ranked trials as a rich table."""
    from rich.console import Console
    from rich.table import Table

    key = f"best {sweep.metric}"
    table = Table(title=f"yolocustom tune {sweep.name}: ranked by {sweep.metric} ({sweep.mode})")
    for column in ("#", "trial", "status", key, "epochs", *sweep.params):
        table.add_column(column, justify="right" if column in ("#", key, "epochs") else "left")
    for rank, row in enumerate(rows, 1):
        best = row[key]
        table.add_row(
            str(rank),
            row["trial"],
            row["status"] + (f": {row['error'][:60]}" if row["error"] else ""),
            "-" if best is None else f"{best:.4f}",
            str(row["epochs"]),
            *(repr(row[p]) for p in sweep.params),
        )
    Console(width=200).print(table)
