"""User-facing error types: the CLI prints these as one paragraph, without a traceback, and exits 1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from yolocustom.yaml_source import Position


class UserError(Exception):
    """A mistake in the user's input (recipe, dataset, paths, flags) rather than a bug in yolocustom."""


@dataclass(frozen=True)
class Problem:
    """One diagnostic about a recipe, kept structured so every output format (text, JSON, GitHub) reads the same data.

    Attributes:
        message (str): What is wrong: ``expected ..., found ...`` with a "did you mean" where one helps.
        field (str): Dotted field path (``train.epochs``), or empty for file-level problems (YAML syntax...).
        line (int | None): 1-based line in the recipe file, when the problem has a place there.
        col (int | None): 1-based column.
        origin (str): The ``--set key=value`` override the value came from, when it did not come from the file.
    """

    message: str
    field: str = ""
    line: int | None = None
    col: int | None = None
    origin: str = ""

    @classmethod
    def at(cls, position: Position | None, field: str, message: str, origin: str = "") -> Problem:
        """A problem placed at a recipe ``Position`` (or at no place, when there is none)."""
        line, col = (position.line, position.col) if position is not None else (None, None)
        return cls(message, field, line, col, origin)

    def format(self, source: str, severity: str = "") -> str:
        """Return ``source:line:col: [severity: ][origin: ]field: message`` (the form ruff, mypy and gcc print)."""
        where = f"{source}:{self.line}:{self.col}" if self.line is not None else source
        return ": ".join(p for p in (where, severity, self.origin, self.field, self.message) if p)

    def as_dict(self) -> dict[str, object]:
        """The JSON form: line, col, field, message (and origin for ``--set`` overrides)."""
        return {"line": self.line, "col": self.col, "field": self.field, "message": self.message, "origin": self.origin}


class RecipeError(UserError):
    """A recipe is invalid: unreadable, malformed YAML, or values that fail validation.

    Attributes:
        source (str): The recipe file the problems come from.
        problems (list[Problem]): Every problem found, each with its location and field path.
    """

    def __init__(self, source: str, problems: Sequence[Problem | str]):
        self.source = source
        self.problems = [p if isinstance(p, Problem) else Problem(message=p) for p in problems]
        super().__init__(self.lines())

    def lines(self) -> str:
        """One ``path:line:col: field: message`` line per problem."""
        return "\n".join(p.format(self.source) for p in self.problems)


class DataError(UserError):
    """A dataset cannot be resolved or read (missing YAML, missing folders, unusable labels)."""
