"""``yolocustom train``: train a recipe, explain it (``--dry-run``), or resume a run."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from yolocustom.commands._common import fail, print_warnings, recipe_warnings, user_errors_exit_1


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""

    @app.command("train")
    @user_errors_exit_1
    def train(
        source: Path | None = typer.Argument(
            None, help="A recipe YAML; with --resume, a last.pt to resume (or a recipe whose latest run to resume)."
        ),
        overrides: list[str] = typer.Option([], "--set", help="Override a recipe value, e.g. --set train.epochs=5."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Build model and trainer, print the plan, don't train."),
        resume: bool = typer.Option(False, "--resume", help="Resume from a last.pt (SOURCE), or the latest run."),
        verbose: bool = typer.Option(
            False, "--verbose", "-v", help="With --dry-run: also show Ultralytics' set-up output (hidden by default)."
        ),
    ) -> None:
        """Train with the features the recipe enables."""
        from yolocustom import training
        from yolocustom.recipe import load_recipe

        resume_from: Path | None = None
        if resume:
            if overrides:
                raise fail("--set cannot change a resumed run; the checkpoint's recipe is used as it was")
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
                # exit 0: the state --resume asks for (a finished run) holds, so a job that re-runs its command
                # after a preemption or a kill succeeds instead of failing on a run that is already done
                print(state.complete_message(resume_from))
                return
            print(f"Resuming {resume_from} with its recipe (sha256 {recipe.digest()[:12]})")
        elif source is None:
            raise fail("give a recipe file, e.g. 'yolocustom train configs/demo.yaml'")
        else:
            recipe = load_recipe(source, overrides)
            print_warnings(recipe_warnings(recipe, source, overrides), str(source))
        if dry_run:
            sys.stdout.write(training.dry_run(recipe, verbose))
            return
        try:
            outcome = training.train(recipe, resume_from)
        except KeyboardInterrupt:
            sys.stderr.write(f"\nInterrupted. {training.stop_hint()}\n")
            raise typer.Exit(130) from None
        except OSError as e:  # disk full, file too large, read-only or vanished folder: the disk, not a bug
            if e.errno not in training.DISK_ERRNOS:
                raise
            raise fail(f"training stopped by a file-system error: {e}. {training.stop_hint()}") from None
        print(f"\nRun folder: {outcome.save_dir}\nbest.pt: {outcome.best}")
        shown = {k: v for k, v in outcome.metrics.items() if k.startswith("metrics/")}
        if shown:
            print("Final metrics (best.pt): " + ", ".join(f"{k[8:]}={float(v):.3f}" for k, v in shown.items()))
        from yolocustom.thresholds import run_summary

        print("\n" + run_summary(outcome.save_dir))
