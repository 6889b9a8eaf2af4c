"""The ``yolocustom`` command line: a thin Typer app; each subcommand lives in ``yolocustom/commands/``.

Only Typer and the standard library are imported here. Subcommand modules keep torch, ultralytics and NumPy out of
their top level, so ``--help`` and ``validate-config`` start fast.
"""

from __future__ import annotations

import typer

from yolocustom.commands import compute_weights, demo_data, export, predict, report, schema, train, tune, val, validate

app = typer.Typer(
    name="yolocustom",
    help="Declarative recipes for Ultralytics YOLO training: validate, explain and train.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (train, validate, schema, compute_weights, demo_data, tune, predict, val, export, report):
    module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
