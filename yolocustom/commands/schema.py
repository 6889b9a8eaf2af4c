"""``yolocustom schema``: print the recipe JSON Schema (committed as configs/recipe.schema.json)."""

from __future__ import annotations

import json
import sys

import typer


def schema_text() -> str:
    """The schema as the exact text committed to ``configs/recipe.schema.json``."""
    from yolocustom.recipe import recipe_json_schema

    return json.dumps(recipe_json_schema(), indent=2, sort_keys=True) + "\n"


def register(app: typer.Typer) -> None:
    """Add the ``schema`` command to ``app``."""

    @app.command("schema")
    def schema() -> None:
        """Print the recipe's JSON Schema (for editor completion and checks)."""
        sys.stdout.write(schema_text())
