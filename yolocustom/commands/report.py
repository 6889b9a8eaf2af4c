"""``yolocustom report``: compare runs on one page (``report.html`` with its figures inside, ``report.md`` beside)."""

from __future__ import annotations

from pathlib import Path

import typer

from yolocustom.commands._common import user_errors_exit_1


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""

    @app.command("report")
    @user_errors_exit_1
    def report(
        runs: list[Path] = typer.Argument(
            ..., help="Run folders (runs/detect/NAME); a tune sweep or a folder of runs stands for the runs in it."
        ),
        out: Path = typer.Option(Path("report"), "--out", help="Folder for report.html, report.md and the PNGs."),
    ) -> None:
        """Compare runs: recipe diff, best and final metrics, per-class table, F1/fitness/recall plots."""
        from yolocustom.report import write_report

        written = write_report(runs, out)
        print(f"Compared {len(written.runs)} runs: " + ", ".join(run.label for run in written.runs))
        for path in written.files:
            print(f"  {path}" + ("  (replaced the previous one)" if path in written.replaced else ""))
        for run in written.runs:
            for note in run.missing:
                print(f"  note: {run.label}: {note}")
