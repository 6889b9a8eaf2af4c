"""Helpers shared by the subcommands: user errors become one stderr paragraph and exit code 1."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from yolocustom.errors import Problem, UserError

if TYPE_CHECKING:
    from yolocustom.recipe import Recipe

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> typer.Exit:
    """Print ``message`` to stderr as an error (each line of a multi-line one) and return the ``typer.Exit(1)``."""
    sys.stderr.write("".join(f"error: {line}\n" for line in message.split("\n")))
    return typer.Exit(1)


def user_errors_exit_1(func: F) -> F:
    """Decorate a command so a ``UserError`` prints without a traceback and exits with code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as e:
            raise fail(str(e)) from None

    return wrapper  # type: ignore[return-value]


def problem_at(
    recipe_path: Path,
    overrides: list[str],
    field: tuple[str | int, ...],
    message: str,
    at: tuple[str | int, ...] | None = None,
) -> Problem:
    """A ``Problem`` about ``field`` of a recipe that loaded fine: placed at its ``--set`` override, or its line:col.

    Args:
        recipe_path (Path): The recipe file (read again for positions; it parsed a moment ago).
        overrides (list[str]): The ``--set`` items the recipe was loaded with.
        field (tuple): The field path named in the message, e.g. ``("features", "freeze")``.
        message (str): What to say.
        at (tuple, optional): A deeper path to place the problem at (e.g. the one offending key under ``field``).
    """
    from yolocustom.recipe import find_position
    from yolocustom.yaml_source import parse_document, read_text

    at = at or field
    dotted = ".".join(str(p) for p in field)
    positions = parse_document(read_text(recipe_path))[1]
    keys = [(item, tuple(item.partition("=")[0].strip().split("."))) for item in overrides]
    # an override of the field (or a parent) wins; one of a child only when the file does not have the field at all
    origin = next((item for item, key in keys if at[: len(key)] == key), None)
    if origin is None and at not in positions:
        origin = next((item for item, key in keys if key[: len(at)] == at), None)
    if origin is not None:
        return Problem(message, dotted, origin=f"--set {origin}")
    pos = find_position(positions, at)
    return Problem.at(pos, dotted, message)


def recipe_warnings(recipe: Recipe, recipe_path: Path | None, overrides: list[str]) -> list[Problem]:
    """The recipe's warnings (fine-tuning features on a model YAML...), placed in the file when it is known."""
    from yolocustom.resolve import finetune_warnings

    found = finetune_warnings(recipe)
    if recipe_path is None:
        return [Problem(message, ".".join(field)) for field, message in found]
    return [problem_at(recipe_path, overrides, field, message) for field, message in found]


def print_warnings(warnings: list[Problem], source: str) -> None:
    """Print warnings on stderr as ``path:line:col: warning: field: message``; they never change the exit code."""
    for w in warnings:
        sys.stderr.write(w.format(source, "warning") + "\n")
