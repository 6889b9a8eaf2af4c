"""``yolocustom validate-config``: check recipes before any compute is spent."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from yolocustom.errors import UserError


def validate_with_data(recipe_path: Path, overrides: list[str]) -> None:
    """Validate one recipe and, with ``--check-data``, its dataset's class names against ``class_weights``."""
    from yolocustom.datasets import resolve_dataset
    from yolocustom.errors import RecipeError
    from yolocustom.recipe import load_recipe

    recipe = load_recipe(recipe_path, overrides)
    spec = resolve_dataset(recipe.data)
    cw = recipe.features.class_weights
    if cw is not None and cw.enabled and cw.weights:
        from yolocustom.features.class_weights import map_explicit_weights

        try:
            map_explicit_weights(cw.weights, spec.names)
        except ValueError as e:
            raise RecipeError(str(recipe_path), [f"features.class_weights.weights: {e}"]) from None


def register(app: typer.Typer) -> None:
    """Add the ``validate-config`` command to ``app``."""

    @app.command("validate-config")
    def validate_config(
        recipes: list[Path] = typer.Argument(..., help="Recipe YAML files to check."),
        check_data: bool = typer.Option(
            False, "--check-data", help="Also resolve each dataset (no download) and check class names in recipes."
        ),
        overrides: list[str] = typer.Option([], "--set", help="Override a value, e.g. --set train.epochs=5."),
    ) -> None:
        """Validate recipes: one line per file, 'ok' or its errors; exit 1 if any is invalid."""
        from yolocustom.recipe import load_recipe

        failed = 0
        for path in recipes:
            try:
                if check_data:
                    validate_with_data(path, overrides)
                else:
                    load_recipe(path, overrides)
            except UserError as e:
                failed += 1
                sys.stdout.write(f"{e if str(e).startswith(str(path)) else f'{path}: {e}'}\n")
            else:
                sys.stdout.write(f"{path}: ok\n")
        if failed:
            raise typer.Exit(1)
