"""``yolocustom train``: train a recipe, explain it (``--dry-run``), or resume a run; alone or as one rank of a
launcher's group (torchrun, SLURM ``srun``, PyTorchJob)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import typer

from yolocustom.commands._common import fail, print_warnings, recipe_warnings, user_errors_exit_1
from yolocustom.errors import UserError

AUTO = "auto"


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""

    @app.command("train")
    @user_errors_exit_1
    def train(
        source: Path | None = typer.Argument(
            None, help="A recipe YAML; with --resume, a last.pt to resume (or a recipe whose latest run to resume)."
        ),
        mode: str | None = typer.Argument(None, hidden=True, help="'auto' after --resume (see --resume)."),
        overrides: list[str] = typer.Option([], "--set", help="Override a recipe value, e.g. --set train.epochs=5."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Build model and trainer, print the plan, don't train."),
        resume: bool = typer.Option(
            False,
            "--resume",
            help="Resume from a last.pt (SOURCE), or the latest run. '--resume auto' with a recipe: resume its latest "
            "run if its last.pt has this recipe's sha256, else train it fresh (what a torchrun restart does).",
        ),
        verbose: bool = typer.Option(
            False, "--verbose", "-v", help="With --dry-run: also show Ultralytics' set-up output (hidden by default)."
        ),
    ) -> None:
        """Train with the features the recipe enables (under torchrun/srun: as one rank of the group)."""
        from yolocustom import launcher

        world = launcher.World.from_env()
        launcher.export_env(world)  # before anything imports Ultralytics, which reads RANK/LOCAL_RANK at import
        from yolocustom import runplan

        # under a launcher every rank reads the recipe, and all of them say why it is wrong before any exits
        inputs = launcher.preflight(
            world, lambda: _inputs(source, mode, overrides, resume, world), fail, "reading the recipe"
        )
        if inputs is None:
            return
        recipe, resume_from, auto = inputs
        if not world.distributed:
            _run(runplan.make_plan(recipe, resume_from, auto, world), dry_run, verbose)
            return
        try:
            _run(runplan.make_group_plan(recipe, resume_from, auto, world), dry_run, verbose)
        except UserError as e:  # every rank of the group says it and exits 1 (launcher.agree), none hangs
            fail(str(e))
            _finish(world, 1)
            raise
        except typer.Exit as e:
            _finish(world, int(e.exit_code))
            raise


def _inputs(
    source: Path | None, mode: str | None, overrides: list[str], resume: bool, world: Any
) -> tuple[Any, Path | None, bool] | None:
    """The recipe to train, the checkpoint to resume (or None) and whether ``--resume auto`` was given; None when the
    run to resume has already finished (said so)."""
    from yolocustom import training
    from yolocustom.recipe import load_recipe

    auto = resume and AUTO in (str(source), mode)
    if auto and str(source) == AUTO:
        source, mode = (Path(mode) if mode else None), None
    elif mode is not None and not auto:
        raise UserError(f"unexpected argument {mode!r} (did you mean '--resume auto'?)")
    if resume and not auto:
        if overrides:
            raise UserError("--set cannot change a resumed run; the checkpoint's recipe is used as it was")
        if source is not None and source.suffix == ".pt":
            resume_from = source
        else:
            search = None
            if source is not None:
                recipe = load_recipe(source)
                from yolocustom.tasks import resolve_task

                task = resolve_task(recipe, training.resolve_model(recipe.model))
                search = training.run_folder(recipe, task).parent  # where Ultralytics put the recipe's runs
            resume_from = training.latest_checkpoint(search)
        recipe = training.recipe_from_checkpoint(resume_from)
        state = training.resume_state(resume_from)
        if state.stage == "complete":
            # None (exit 0): the state --resume asks for (a finished run) holds, so a job that re-runs its command
            # after a preemption or a kill succeeds instead of failing on a run that is already done
            print(state.complete_message(resume_from))
            return None
        print(f"Resuming {resume_from} with its recipe (sha256 {recipe.digest()[:12]})")
        return recipe, resume_from, auto
    if source is None:
        raise UserError("give a recipe file, e.g. 'yolocustom train configs/demo.yaml'")
    recipe = load_recipe(source, overrides)
    if world.writer:
        print_warnings(recipe_warnings(recipe, source, overrides), str(source))
    return recipe, None, auto


def _run(plan: Any, dry_run: bool, verbose: bool) -> None:
    """Dry-run, report a finished run, or train the plan."""
    from yolocustom import training

    world = plan.world
    if dry_run:
        sys.stdout.write(training.dry_run(plan.recipe, verbose, plan))
        _finish(world, 0)
        return
    if plan.note and world.writer:
        print(plan.note)
    if plan.stage == "complete":
        print(training.resume_state(Path(plan.model)).complete_message(Path(plan.model)))
        _finish(world, 0)
        return
    if plan.stage == "validate" and world.distributed:
        raise UserError(
            f"every epoch of {plan.model} was trained but its closing validation was not; run it in one process: "
            f"yolocustom train --resume {plan.model}"
        )
    _train(plan, world)


def _train(plan: Any, world: Any) -> None:
    """Train the plan; turn interrupts, disk errors and a lost peer into one message and an exit code."""
    from yolocustom import launcher, training

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        outcome = training.train_plan(plan)
    except KeyboardInterrupt as e:
        terminated = isinstance(e, training.Terminated)
        sys.stderr.write(
            f"\n{launcher.rank_prefix(world)}{'Terminated (SIGTERM)' if terminated else 'Interrupted'}. "
            f"{training.stop_hint()}\n"
        )
        raise typer.Exit(143 if terminated else 130) from None
    except OSError as e:  # disk full, file too large, read-only or vanished folder: the disk, not a bug
        if e.errno not in training.DISK_ERRNOS:
            raise
        raise fail(f"training stopped by a file-system error: {e}. {training.stop_hint()}") from None
    except Exception as e:
        if not (world.distributed and launcher.interrupted_by_peer(e)):
            raise
        raise fail(
            f"{launcher.rank_prefix(world)}stopped: another rank of the group failed or left "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); its own message says why. "
            f"{training.stop_hint()}"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if world.writer:
        print(f"\nRun folder: {outcome.save_dir}\nbest.pt: {outcome.best}")
        shown = {k: v for k, v in outcome.metrics.items() if k.startswith("metrics/")}
        if shown:
            print("Final metrics (best.pt): " + ", ".join(f"{k[8:]}={float(v):.3f}" for k, v in shown.items()))
        from yolocustom.thresholds import run_summary

        print("\n" + run_summary(outcome.save_dir))
    _finish(world, 0)


def _terminated(signum: int, frame: Any) -> None:
    """SIGTERM (SLURM preemption, Kubernetes eviction, torchrun stopping a group): unwind like Ctrl-C, so atomic
    writes in progress discard their temporary file and a half-written file never replaces a whole one."""
    from yolocustom.training import Terminated

    raise Terminated()


def _finish(world: Any, code: int) -> None:
    """End a rank of a group: leave the group, then exit without the interpreter teardown (see ``flush_and_exit``)."""
    if world.distributed:
        from yolocustom import launcher

        launcher.leave()
        launcher.flush_and_exit(code)
