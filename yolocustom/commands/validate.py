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
            where = _weights_position(recipe_path, overrides, cw.weights, spec.names)
            raise RecipeError(str(recipe_path), [f"{where}features.class_weights.weights: {e}"]) from None


def _weights_position(recipe_path: Path, overrides: list[str], weights: dict, names: dict[int, str]) -> str:
    """``"line:col: "`` of the first class_weights key the dataset lacks (or of the mapping, or its --set)."""
    from yolocustom.features.class_weights import map_explicit_weights
    from yolocustom.recipe import find_position
    from yolocustom.yaml_source import parse_document, read_text

    path: tuple[str | int, ...] = ("features", "class_weights", "weights")
    for item in overrides:
        key = tuple(item.partition("=")[0].strip().split("."))
        if path[: len(key)] == key or key[: len(path)] == path:
            return f"--set {item}: "
    for key, weight in weights.items():
        try:
            map_explicit_weights({key: weight}, names)
        except ValueError:
            path = (*path, key)
            break
    pos = find_position(parse_document(read_text(recipe_path))[1], path)  # the file parsed fine a moment ago
    return f"{pos}: " if pos else ""


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
                message = " ".join(str(e).split("\n"))  # one line per file, whatever the error text holds
                sys.stdout.write(f"{message if message.startswith(str(path)) else f'{path}: {message}'}\n")
            else:
                sys.stdout.write(f"{path}: ok\n")
        if failed:
            raise typer.Exit(1)
