"""``yolocustom validate-config``: check recipes before any compute is spent.

Diagnostics print the way compilers and linters print them, so terminals, editors and CI jump to the spot:

* ``text`` (default): ``path:line:col: field.path: message`` per error, ``path:line:col: warning: field.path: message``
  per warning, and ``path: ok`` for a valid file.
* ``json``: one JSON object per file and line (JSON Lines): ``{"path", "ok", "errors", "warnings", "notes"}``, each
  error/warning ``{"line", "col", "field", "message", "origin"}``.
* ``github``: GitHub Actions workflow commands (``::error file=...,line=...,col=...::...``), shown inline on the diff.

Never imports torch or Ultralytics, and never downloads (``--check-data`` says what a train would download).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from yolocustom.commands._common import problem_at, recipe_warnings
from yolocustom.errors import Problem, RecipeError, UserError

if TYPE_CHECKING:
    from yolocustom.recipe import Recipe


class OutputFormat(StrEnum):
    """How diagnostics are printed."""

    text = "text"
    json = "json"
    github = "github"


@dataclass
class FileReport:
    """What ``validate-config`` found in one recipe file."""

    path: Path
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the file is valid (warnings do not count)."""
        return not self.errors


def check_recipe_file(
    recipe_path: Path, overrides: list[str], check_data: bool = False, strict: bool = False
) -> FileReport:
    """Validate one recipe; with ``check_data``, also its dataset (offline) and class names in ``class_weights``.

    Args:
        recipe_path (Path): The recipe YAML.
        overrides (list[str]): ``--set`` items.
        check_data (bool): Resolve the dataset too (no download: a dataset that a train would fetch gets a note).
        strict (bool): Report warnings as errors.
    """
    from yolocustom.recipe import load_recipe

    report = FileReport(recipe_path)
    try:
        recipe = load_recipe(recipe_path, overrides)
    except RecipeError as e:
        report.errors = list(e.problems)
        return report
    except UserError as e:
        report.errors = [Problem(str(e))]
        return report
    report.warnings = recipe_warnings(recipe, recipe_path, overrides)
    if check_data:
        try:
            report.notes += check_dataset(recipe_path, overrides, recipe)
        except RecipeError as e:
            report.errors += e.problems
        except UserError as e:
            report.errors.append(problem_at(recipe_path, overrides, ("data",), str(e)))
    if strict:
        report.errors, report.warnings = report.errors + report.warnings, []
    return report


def check_dataset(recipe_path: Path, overrides: list[str], recipe: Recipe) -> list[str]:
    """Resolve the recipe's dataset offline and check the class names of ``class_weights``, ``fitness.classes`` and
    ``thresholds.classes`` against it; return notes.

    Raises:
        RecipeError: For class_weights keys, fitness classes or threshold rules the dataset lacks.
        DataError: For a dataset that cannot be resolved, or data missing with nothing to download it from.
    """
    from yolocustom.resolve import dataset_status

    spec, note = dataset_status(recipe.data)
    cw = recipe.features.class_weights
    if cw is not None and cw.enabled and cw.weights:
        from yolocustom.features.class_weights import map_explicit_weights

        try:
            map_explicit_weights(cw.weights, spec.names)
        except ValueError as e:
            path: tuple[str | int, ...] = ("features", "class_weights", "weights")
            at = path
            for key, weight in cw.weights.items():  # place the error at the first key the dataset lacks
                try:
                    map_explicit_weights({key: weight}, spec.names)
                except ValueError:
                    at = (*path, key)
                    break
            raise RecipeError(str(recipe_path), [problem_at(recipe_path, overrides, path, str(e), at)]) from None
    from yolocustom.features.class_weights import class_id

    feats = recipe.features.enabled()
    named: dict[tuple[str | int, ...], list[tuple[str | int, int | str]]] = {}
    if getattr(feats.get("fitness"), "classes", None):  # a list: placed at its index
        named[("features", "fitness", "classes")] = list(enumerate(feats["fitness"].classes))  # type: ignore[attr-defined]
    if getattr(feats.get("thresholds"), "classes", None):  # a mapping: placed at its key
        named[("features", "thresholds", "classes")] = [(k, k) for k in feats["thresholds"].classes]  # type: ignore[attr-defined]
    for classes, keys in named.items():
        for where, key in keys:
            try:
                class_id(key, spec.names)
            except ValueError as e:
                problem = problem_at(recipe_path, overrides, classes, str(e), (*classes, where))
                raise RecipeError(str(recipe_path), [problem]) from None
    return [note] if note else []


def render(report: FileReport, fmt: OutputFormat) -> str:
    """The lines printed for one file in ``fmt``."""
    source = str(report.path)
    if fmt is OutputFormat.json:
        return (
            json.dumps(
                {
                    "path": source,
                    "ok": report.ok,
                    "errors": [p.as_dict() for p in report.errors],
                    "warnings": [p.as_dict() for p in report.warnings],
                    "notes": report.notes,
                },
                ensure_ascii=False,
            )
            + "\n"
        )
    if fmt is OutputFormat.github:
        lines = [_annotation("error", source, p) for p in report.errors]
        lines += [_annotation("warning", source, p) for p in report.warnings]
        lines += [f"::notice file={_escape_property(source)}::{_escape_data(n)}" for n in report.notes]
        if report.ok:
            lines.append(f"{source}: ok")
        return "".join(f"{line}\n" for line in lines)
    lines = [p.format(source) for p in report.errors]
    lines += [p.format(source, "warning") for p in report.warnings]
    lines += [f"{source}: note: {n}" for n in report.notes]
    if report.ok:
        lines.append(f"{source}: ok")
    return "".join(f"{line}\n" for line in lines)


def _escape_data(text: str) -> str:
    """Escape a workflow command's message (GitHub's rules: %, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """Escape a workflow command's property value (also ':' and ',', which separate properties)."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _annotation(kind: str, source: str, problem: Problem) -> str:
    """``::error file=...,line=...,col=...,title=...::message`` for one problem."""
    props = [f"file={_escape_property(source)}"]
    if problem.line is not None:
        props += [f"line={problem.line}", f"col={problem.col}"]
    if problem.field:
        props.append(f"title={_escape_property(problem.field)}")
    message = ": ".join(p for p in (problem.origin, problem.message) if p)  # the field is the annotation's title
    return f"::{kind} {','.join(props)}::{_escape_data(message)}"


def register(app: typer.Typer) -> None:
    """Add the ``validate-config`` command to ``app``."""

    @app.command("validate-config")
    def validate_config(
        recipes: list[Path] = typer.Argument(..., help="Recipe YAML files to check."),
        check_data: bool = typer.Option(
            False,
            "--check-data",
            help="Also resolve each dataset (never downloads: says when a train would) and check class names.",
        ),
        overrides: list[str] = typer.Option([], "--set", help="Override a value, e.g. --set train.epochs=5."),
        strict: bool = typer.Option(False, "--strict", help="Treat warnings as errors (exit 1)."),
        fmt: OutputFormat = typer.Option(
            OutputFormat.text,
            "--format",
            help="text (path:line:col: field: message), json (one object per file and line) or github (annotations).",
        ),
    ) -> None:
        """Validate recipes: errors as path:line:col: field: message; exit 1 if any file is invalid.

        Warnings (e.g. freeze on a model built from a YAML) never change the exit code unless --strict.
        """
        failed = 0
        for path in recipes:
            report = check_recipe_file(path, overrides, check_data, strict)
            failed += not report.ok
            sys.stdout.write(render(report, fmt))
        if failed:
            raise typer.Exit(1)
