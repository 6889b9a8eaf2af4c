"""User-facing error types: the CLI prints these as one paragraph, without a traceback, and exits 1."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (recipe, dataset, paths, flags) rather than a bug in yolocustom."""


class RecipeError(UserError):
    """A recipe is invalid: unreadable, malformed YAML, or values that fail validation.

    Attributes:
        source (str): The file (or ``--set`` override) the problem comes from.
        problems (list[str]): One line per problem, each already formatted with location and field path.
    """

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(self._format())

    def _format(self) -> str:
        if len(self.problems) == 1:
            return f"{self.source}: {self.problems[0]}"
        return f"{self.source}: {len(self.problems)} problems: " + "; ".join(self.problems)


class DataError(UserError):
    """A dataset cannot be resolved or read (missing YAML, missing folders, unusable labels)."""
