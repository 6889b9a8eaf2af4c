"""``yolocustom report``: one page comparing training runs (collect -> tables -> plots -> HTML and Markdown).

Imports matplotlib and Ultralytics' metric helpers (through ``features.fitness``): import it inside the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from yolocustom.fsutil import atomic_write_text, replace_atomically
from yolocustom.report import plots, render, tables
from yolocustom.report.collect import Run, collect

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"


@dataclass
class Written:
    """What :func:`write_report` produced.

    Attributes:
        runs (list[Run]): The runs compared, read.
        files (list[Path]): Every file written, the HTML page first.
        replaced (list[Path]): Those of them that replaced a file of an earlier report.
    """

    runs: list[Run]
    files: list[Path]
    replaced: list[Path]


def build_sections(runs: list[Run]) -> list[render.Section]:
    """The page's sections in order: settings, metrics, per-class table, figures, what is missing."""
    sections = [
        render.Section("Recipe diff (only the keys that differ)", table=tables.recipe_diff(runs)),
        render.Section("Best and final metrics", table=tables.metrics_summary(runs)),
        render.Section("Per-class metrics (best epoch)", table=tables.class_table(runs)),
    ]
    for file, (title, draw) in plots.FIGURES.items():
        png = draw(runs)
        absent = "" if png is not None else "nothing to draw: no run has the data (see 'Missing' below)"
        sections.append(render.Section(title, png=png, file=file, absent=absent))
    missing = [[run.label, note] for run in runs for note in run.missing]
    notes = [] if missing else ["every run has every file the report reads"]
    sections.append(render.Section("Missing", table=tables.Table(["run", "what"], missing, notes)))
    return sections


def write_report(arguments: list[Path], out: Path) -> Written:
    """Compare the runs named by ``arguments`` (run folders, tune sweeps, folders of runs) into ``out``.

    Writes ``report.html`` (figures embedded), ``report.md`` and the figures' PNG files beside it, each atomically.

    Raises:
        UserError: For an argument that is not a run (or a folder of runs), an unreadable file in a run, or an ``out``
            that is a file.
    """
    from yolocustom.errors import UserError

    runs = collect(arguments)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: expected a folder, found a file")
    sections = build_sections(runs)
    out.mkdir(parents=True, exist_ok=True)
    pages = {out / HTML_FILE: render.to_html(runs, sections), out / MARKDOWN_FILE: render.to_markdown(runs, sections)}
    figures = {out / s.file: s.png for s in sections if s.png is not None}
    replaced = [p for p in [*pages, *figures] if p.exists()]
    for path, png in figures.items():
        replace_atomically(path, lambda f, data=png: f.write(data))  # type: ignore[misc]
    for path, text in pages.items():
        atomic_write_text(path, text)
    return Written(runs, [*pages, *figures], replaced)
