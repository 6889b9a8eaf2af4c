"""The page, twice: self-contained HTML (figures as base64 data URIs) and Markdown (figures as files beside it)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

from yolocustom.report.collect import Run
from yolocustom.report.tables import Table

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:.5em 0}"
    "th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left}th{background:#f3f3f3}"
    ".note{color:#555;font-size:.9em;margin:.1em 0}img{max-width:100%}"
)


@dataclass
class Section:
    """One part of the page: a heading and either a table or a figure (PNG bytes, or None with a reason)."""

    title: str
    table: Table | None = None
    png: bytes | None = None
    file: str = ""
    absent: str = ""


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    out = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n" if table.rows else ""
    return out + "".join(f'<p class="note">{html.escape(n)}</p>\n' for n in table.notes)


def to_html(runs: list[Run], sections: list[Section]) -> str:
    """The HTML page."""
    title = "yolocustom report: " + ", ".join(run.label for run in runs)
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n<ul>",
        *(f"<li><b>{html.escape(r.label)}</b> ({html.escape(r.task)}): {html.escape(str(r.path))}</li>" for r in runs),
        "</ul>\n",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>\n")
        if s.table is not None:
            parts.append(_html_table(s.table))
        elif s.png is not None:
            data = base64.b64encode(s.png).decode("ascii")
            parts.append(f'<img alt="{html.escape(s.title)}" src="data:image/png;base64,{data}">\n')
        else:
            parts.append(f'<p class="note">{html.escape(s.absent)}</p>\n')
    return "".join(parts) + "</body></html>\n"


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") or " "


def _md_table(table: Table) -> str:
    lines = []
    if table.rows:
        lines += ["| " + " | ".join(_md_cell(h) for h in table.header) + " |", "|" + "---|" * len(table.header)]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
        lines.append("")
    lines += [f"- {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


def to_markdown(runs: list[Run], sections: list[Section]) -> str:
    """The Markdown page; its figures are the PNG files written next to it."""
    parts = ["# yolocustom report: " + ", ".join(run.label for run in runs) + "\n\n"]
    parts += [f"- **{run.label}** ({run.task}): `{run.path}`\n" for run in runs]
    for s in sections:
        parts.append(f"\n## {s.title}\n\n")
        if s.table is not None:
            parts.append(_md_table(s.table))
        elif s.png is not None:
            parts.append(f"![{s.title}]({s.file})\n")
        else:
            parts.append(f"{s.absent}\n")
    return "".join(parts)
