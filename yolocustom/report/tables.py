"""The report's tables as plain rows of text, shared by the HTML and the Markdown renderers."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from yolocustom.report.collect import Run
from yolocustom.ultralytics_cfg import load_ultralytics_cfg

BEST = "★"  # marks the best run of a class
NOT_SET = "(not set)"
CLASS_COLUMNS = ("instances", "P", "R", "F1", "AP50")


@dataclass
class Table:
    """A table: a header, rows of cells (text), and notes printed under it."""

    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def cell(value: float) -> str:
    """A metric as table text: 3 decimals, NaN (unknown) as ``-``."""
    return "-" if math.isnan(value) else f"{value:.3f}"


def setting(value: Any) -> str:
    """A setting as table text: a string as it is, anything else as JSON (``0.02``, ``null``, ``["crack"]``)."""
    return value if isinstance(value, str) else json.dumps(value)


def _effective(settings: dict[str, Any], key: str, defaults: dict[str, Any]) -> tuple[Any, str]:
    """A setting's value and its text: as set, else Ultralytics' default for a ``train.`` key, else not set."""
    if key in settings:
        return settings[key], setting(settings[key])
    arg = key.removeprefix("train.")
    if key.startswith("train.") and arg in defaults:
        return defaults[arg], f"{setting(defaults[arg])} (default)"
    return NOT_SET, NOT_SET


def recipe_diff(runs: list[Run]) -> Table:
    """The settings whose values are not the same in every run.

    A ``train.`` key a run does not set takes Ultralytics' default (shown as ``0.01 (default)``), so a recipe that
    spells out a default does not differ from one that leaves it out; any other key a run lacks is ``(not set)``.
    """
    defaults = load_ultralytics_cfg().defaults
    keys = list(dict.fromkeys(k for run in runs for k in run.settings))
    rows = []
    for key in keys:
        values = [_effective(run.settings, key, defaults) for run in runs]
        if len({json.dumps(v, default=str) for v, _ in values}) > 1:
            rows.append([key, *(text for _, text in values)])
    table = Table(["key", *(run.label for run in runs)], rows)
    table.notes += [f"{run.label}: settings from {run.settings_source}" for run in runs if run.settings_source]
    if len(runs) == 1:
        table.notes.insert(0, "one run: nothing to compare")
    elif not rows:
        table.notes.insert(0, "the runs' settings are identical")
    return table


def metrics_summary(runs: list[Run]) -> Table:
    """Fitness and the ``metrics/...`` columns of each run at its best epoch and at its final epoch."""
    columns = list(dict.fromkeys(k for run in runs for row in run.metrics for k in row))
    rows = []
    for run in runs:
        best = run.best_index
        if best is None:
            rows.append([run.label, "no epochs", "-", *("-" for _ in columns)])
            continue
        for what, i in (("best", best), ("final", len(run.epochs) - 1)):
            values = [cell(run.metrics[i].get(c, math.nan)) for c in columns]
            rows.append([run.label, f"{what} (epoch {run.epochs[i]})", cell(run.fitness[i]), *values])
    table = Table(["run", "epoch", "fitness", *(c.removeprefix("metrics/") for c in columns)], rows)
    table.notes += [f"{run.label}: fitness = {run.fitness_name}" for run in runs]
    if len({run.fitness_name for run in runs}) > 1:
        table.notes.append("the runs define fitness differently: compare their metric columns, not their fitness")
    return table


def class_rows(run: Run) -> dict[str, dict[str, float]]:
    """Class -> ``instances, P, R, F1, AP50, threshold`` of one run at its best epoch (NaN where unknown).

    From metrics_per_class.csv; without it, F1 from f1_per_class.csv and instances from thresholds.yaml. The P, R and
    F1 that thresholds.yaml holds are at the class's threshold, another operating point, so they are not mixed in.
    """
    rows = {name: {c: row.get(c, math.nan) for c in CLASS_COLUMNS} for name, row in run.class_rows.items()}
    if not rows and run.best_index is not None:
        f1 = run.f1_at(run.epochs[run.best_index])
        for name in dict.fromkeys([*f1, *run.thresholds]):
            rows[name] = {**dict.fromkeys(CLASS_COLUMNS, math.nan), "F1": f1.get(name, math.nan)}
            rows[name]["instances"] = run.thresholds.get(name, {}).get("instances", math.nan)
    for name in rows:
        rows[name]["threshold"] = run.thresholds.get(name, {}).get("threshold", math.nan)
    return rows


def class_table(runs: list[Run]) -> Table:
    """One row per class and run at the run's best epoch; the run with the highest F1 for a class is marked."""
    per_run = [class_rows(run) for run in runs]
    names = list(dict.fromkeys(name for rows in per_run for name in rows))
    rows = []
    for name in names:
        f1 = [rows[name]["F1"] if name in rows else math.nan for rows in per_run]
        finite = [v for v in f1 if not math.isnan(v)]
        top = max(finite) if len(finite) > 1 and len(set(finite)) > 1 else None
        for run, values, score in zip(runs, per_run, f1):
            if name not in values:
                continue
            label = f"{run.label} {BEST}" if top is not None and score == top else run.label
            v = values[name]
            count = "-" if math.isnan(v["instances"]) else str(int(v["instances"]))
            rows.append([name, label, count, *(cell(v[c]) for c in CLASS_COLUMNS[1:]), cell(v["threshold"])])
    table = Table(["class", "run", "instances", "P", "R", "F1", "AP50", "threshold"], rows)
    table.notes.append(f"{BEST}: the highest F1 of the class among the runs; each run at its best epoch")
    table.notes += [f"{run.label}: {run.family.what} metrics ({run.family.suffix})" for run in runs if run.epochs]
    if not any(run.thresholds for run in runs):
        table.notes.append("threshold: no run has thresholds.yaml (features.thresholds)")
    return table
