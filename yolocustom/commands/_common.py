"""Helpers shared by the subcommands: user errors become one stderr paragraph and exit code 1."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from yolocustom.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> typer.Exit:
    """Print ``message`` to stderr as an error and return the ``typer.Exit(1)`` to raise."""
    sys.stderr.write(f"error: {message}\n")
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
