"""The report's figures, drawn with matplotlib's object API (``Figure`` on an Agg canvas: no pyplot state, no
display) and returned as PNG bytes; a figure with nothing to draw is None."""

from __future__ import annotations

import io
import math
from typing import Any

from yolocustom.report.collect import Run
from yolocustom.report.tables import class_rows

LEGEND_MAX = 20  # more classes than this: no legend (it would cover the lines)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(width, 30.0), height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def f1_per_class(runs: list[Run]) -> bytes | None:
    """Per-class F1 over epochs: one subplot per run (shared y axis), one line per class."""
    curves = [(run, c) for run in runs if (c := run.f1_curves())]
    if not curves:
        return None
    fig = _figure(4.5 * len(curves) + 1, 4)
    axes = fig.subplots(1, len(curves), sharey=True, squeeze=False)[0]
    for ax, (run, by_class) in zip(axes, curves):
        for name, points in by_class.items():
            ax.plot(*zip(*points), marker=".", label=name)
        ax.set(title=f"{run.label} ({run.family.what})", xlabel="epoch", ylim=(-0.02, 1.02))
        ax.xaxis.get_major_locator().set_params(integer=True)
        if len(by_class) <= LEGEND_MAX:
            ax.legend(fontsize="small")
    axes[0].set_ylabel("F1 per class")
    fig.suptitle("Per-class F1 over epochs")
    return _png(fig)


def fitness(runs: list[Run]) -> bytes | None:
    """The fitness of every run over epochs on one axis; a star marks each run's best epoch."""
    drawn = [run for run in runs if any(not math.isnan(v) for v in run.fitness)]
    if not drawn:
        return None
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    for run in drawn:
        best = run.best_index
        ax.plot(run.epochs, run.fitness, marker="*", markersize=12, markevery=[best], label=run.label)
    ax.set(xlabel="epoch", ylabel="fitness", title="Fitness over epochs (★ best epoch: best.pt)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize="small")
    return _png(fig)


def recall_per_class(runs: list[Run]) -> bytes | None:
    """Per-class recall at each run's best epoch: grouped bars, one group per class, one bar per run."""
    recall = {run.label: {n: v["R"] for n, v in class_rows(run).items() if not math.isnan(v["R"])} for run in runs}
    recall = {label: r for label, r in recall.items() if r}
    if not recall:
        return None
    names = list(dict.fromkeys(n for r in recall.values() for n in r))
    width = 0.8 / len(recall)
    fig = _figure(max(6.0, len(names) * (0.25 + 0.3 * len(recall)) + 2), 4.5)
    ax = fig.add_subplot()
    for k, (label, values) in enumerate(recall.items()):
        x = [i + (k - (len(recall) - 1) / 2) * width for i in range(len(names))]
        bars = ax.bar(x, [values.get(n, math.nan) for n in names], width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize="x-small", padding=2)
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 12 else 0)
    ax.set(ylabel="recall", ylim=(0, 1.12), title="Per-class recall at each run's best epoch")
    ax.legend(fontsize="small", ncols=min(len(recall), 4))
    return _png(fig)


FIGURES = {
    "fitness.png": ("Fitness over epochs", fitness),
    "f1_per_class.png": ("Per-class F1 over epochs", f1_per_class),
    "recall_per_class.png": ("Per-class recall across runs", recall_per_class),
}
"""File name -> (title, function) of every figure, in page order."""
