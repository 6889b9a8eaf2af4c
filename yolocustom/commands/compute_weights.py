"""``yolocustom compute-weights``: count instances per class in a dataset split and turn them into loss weights.

The counts are those Ultralytics' ``YOLODataset`` loads for training (see :mod:`yolocustom.label_counts`) and the
maths is :func:`yolocustom.weighting.compute_class_weights`, shared with the ``class_weights`` feature's ``auto`` mode,
so this command and the trainer can never disagree.

Only the standard library, Typer and yolocustom's light modules are imported at module level; NumPy, rich and
matplotlib are imported inside the command so that ``yolocustom --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import typer

from yolocustom.commands._common import user_errors_exit_1
from yolocustom.errors import DataError, UserError
from yolocustom.fsutil import replace_atomically
from yolocustom.weighting import DEFAULT_BETA, compute_class_weights, imbalance_ratio

if TYPE_CHECKING:
    from yolocustom.datasets import DatasetSpec
    from yolocustom.label_counts import LabelCounts
    from yolocustom.weighting import ClassWeights, Normalize, Scheme

JSON_KEYS: tuple[str, ...] = (
    "data",
    "split",
    "task",
    "scheme",
    "normalize",
    "images",
    "backgrounds",
    "instances",
    "names",
    "counts",
    "weights",
    "rejected",
)
"""Keys of ``--format json``, in order; scripts may rely on exactly these."""


class SchemeChoice(StrEnum):
    """Weighting schemes (see :func:`yolocustom.weighting.raw_weight`)."""

    inverse = "inverse"
    sqrt_inverse = "sqrt_inverse"
    effective_number = "effective_number"


class NormalizeChoice(StrEnum):
    """Normalisation applied after the raw weights."""

    mean = "mean"
    none = "none"


class FormatChoice(StrEnum):
    """Output formats."""

    table = "table"
    yaml = "yaml"
    json = "json"


def register(app: typer.Typer) -> None:
    """Add the ``compute-weights`` command to ``app``.

    Args:
        app (typer.Typer): The CLI application.
    """
    app.command(
        "compute-weights",
        help="Count instances per class in a dataset split (as Ultralytics loads them) and print class weights.",
    )(compute_weights)


@user_errors_exit_1
def compute_weights(
    data: str = typer.Option(..., "--data", help="Dataset YAML path, or a bundled Ultralytics name like coco8.yaml."),
    split: str = typer.Option("train", "--split", help="Split to count: train, val, test or minival."),
    task: str = typer.Option(
        "detect",
        "--task",
        help="Label format, as that task's Ultralytics dataset reads it: detect (boxes; polygons become boxes), "
        "segment (polygons), pose (keypoint rows of the YAML's kpt_shape) or obb (4-corner rows).",
    ),
    scheme: SchemeChoice = typer.Option(SchemeChoice.inverse, "--scheme", help="Weighting scheme."),
    beta: float = typer.Option(DEFAULT_BETA, "--beta", help="effective_number only: beta in (0, 1)."),
    normalize: NormalizeChoice = typer.Option(NormalizeChoice.mean, "--normalize", help="mean: average weight is 1."),
    max_weight: float | None = typer.Option(None, "--max-weight", help="Clip weights above this value (applied last)."),
    fmt: FormatChoice = typer.Option(FormatChoice.table, "--format", help="table, yaml (paste into a recipe) or json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file (atomically), not stdout."),
    plot: Path | None = typer.Option(None, "--plot", help="Save a PNG bar chart of counts (log scale) and weights."),
    workers: int | None = typer.Option(None, "--workers", help="Worker processes for large scans (default: auto)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Ignore Ultralytics' labels/*.cache and read the labels."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Count instances per class in a dataset split and print class weights.

    Args:
        data (str): Dataset YAML path, folder holding one, or bundled Ultralytics name.
        split (str): Split to count.
        task (str): The task whose dataset rules apply (``tasks.TASKS``).
        scheme (SchemeChoice): Weighting scheme.
        beta (float): ``effective_number`` parameter, in (0, 1).
        normalize (NormalizeChoice): ``mean`` (average weight 1) or ``none``.
        max_weight (float | None): Upper bound applied last.
        fmt (FormatChoice): ``table``, ``yaml`` or ``json``.
        output (Path | None): File to write atomically instead of stdout.
        plot (Path | None): PNG chart to save.
        workers (int | None): Worker processes for the scan (None: automatic).
        no_cache (bool): Ignore Ultralytics' label cache.
        quiet (bool): Hide the progress bar and the "wrote" notes.

    Raises:
        typer.BadParameter: For an out-of-range ``--beta`` or ``--max-weight`` (exit code 2).
        DataError: For dataset problems; printed as ``error: ...`` with exit code 1 by ``user_errors_exit_1``.
    """
    if not 0.0 < beta < 1.0:
        raise typer.BadParameter(f"beta must be in (0, 1), got {beta}", param_hint="--beta")
    if max_weight is not None and max_weight <= 0:
        raise typer.BadParameter(f"max weight must be > 0, got {max_weight}", param_hint="--max-weight")

    from yolocustom.tasks import TASKS

    if task not in TASKS:
        raise typer.BadParameter(f"expected one of {', '.join(TASKS)}, got {task!r}", param_hint="--task")

    from yolocustom.datasets import split_image_paths
    from yolocustom.label_counts import check_task_labels
    from yolocustom.resolve import ensure_dataset

    spec = ensure_dataset(data)  # offline when the data is there; else its download:, as the trainer would
    images = split_image_paths(spec, split)
    result = check_task_labels(
        spec, images, task, strict_rows=False, workers=workers, progress=not quiet, use_cache=not no_cache
    )
    _check_counts(spec, split, images, result)
    weights = compute_class_weights(
        result.counts,
        scheme=cast("Scheme", scheme.value),
        beta=beta,
        normalize=cast("Normalize", normalize.value),
        max_weight=max_weight,
    )
    _warn(spec, split, result, weights)

    report = build_report(spec, split, scheme.value, normalize.value, result, weights, task)
    if fmt is FormatChoice.table and output is None:
        render_table(report, beta=beta, max_weight=max_weight, console_out=True)
    else:
        if fmt is FormatChoice.json:
            text = json.dumps(report, indent=2) + "\n"
        elif fmt is FormatChoice.yaml:
            text = render_yaml(report, beta=beta, max_weight=max_weight)
        else:
            text = render_table(report, beta=beta, max_weight=max_weight, to_file=True)
        if output is None:
            sys.stdout.write(text)
        else:
            write_atomic(output, text)
            if not quiet:
                sys.stderr.write(f"wrote {output}\n")
    if plot is not None:
        save_plot(plot, report)
        if not quiet:
            sys.stderr.write(f"wrote {plot}\n")


def build_report(
    spec: DatasetSpec,
    split: str,
    scheme: str,
    normalize: str,
    result: LabelCounts,
    weights: ClassWeights,
    task: str = "detect",
) -> dict[str, Any]:
    """Return the JSON-ready report (exactly :data:`JSON_KEYS`).

    Args:
        spec (DatasetSpec): The dataset.
        split (str): The split counted.
        scheme (str): Weighting scheme.
        normalize (str): Normalisation.
        result (LabelCounts): The counts.
        weights (ClassWeights): The weights.
        task (str): The task whose label rules were applied.

    Returns:
        (dict[str, Any]): ``data`` is the resolved YAML path; ``names`` maps ``str(id)`` to name; ``rejected`` lists
            ``{"file": label file, "reason": why Ultralytics rejects it}``.
    """
    return {
        "data": spec.source,
        "split": split,
        "task": task,
        "scheme": scheme,
        "normalize": normalize,
        "images": result.images,
        "backgrounds": result.backgrounds,
        "instances": result.instances,
        "names": {str(i): spec.names[i] for i in range(spec.nc)},
        "counts": list(result.counts),
        "weights": list(weights.weights),
        "rejected": [{"file": f, "reason": r} for f, r in result.rejected],
    }


def render_yaml(report: dict[str, Any], beta: float = DEFAULT_BETA, max_weight: float | None = None) -> str:
    """Return a ready-to-paste ``features: {class_weights: {weights: {name: w}}}`` recipe block.

    Class names are the keys; if two classes share a name, class ids are used instead so no weight is lost.

    Args:
        report (dict[str, Any]): From :func:`build_report`.
        beta (float): Shown in the header comment for ``effective_number``.
        max_weight (float | None): Shown in the header comment.

    Returns:
        (str): YAML text with a comment header.
    """
    import yaml

    names = [report["names"][str(i)] for i in range(len(report["counts"]))]
    unique = len(set(names)) == len(names)
    keys: list[Any] = names if unique else list(range(len(names)))
    # 6 significant digits: readable, and a tiny positive weight never rounds to an invalid 0
    weights = {k: float(f"{float(w):.6g}") for k, w in zip(keys, report["weights"], strict=True)}
    header = [
        f"# yolocustom compute-weights --data {report['data']} --split {report['split']}"
        + (f" --task {report['task']}" if report.get("task", "detect") != "detect" else "")
        + f" --scheme {report['scheme']}"
        + (f" --beta {beta}" if report["scheme"] == "effective_number" else "")
        + f" --normalize {report['normalize']}"
        + (f" --max-weight {max_weight}" if max_weight is not None else ""),
        f"# {report['images']} images, {report['backgrounds']} backgrounds, {report['instances']} instances",
    ]
    if not unique:
        header.append("# class names are not unique, so weights are keyed by class id")
    body = yaml.safe_dump(
        {"features": {"class_weights": {"weights": weights}}}, sort_keys=False, allow_unicode=True, width=1000
    )
    return "\n".join(header) + "\n" + body


def render_table(
    report: dict[str, Any],
    beta: float = DEFAULT_BETA,
    max_weight: float | None = None,
    to_file: bool = False,
    console_out: bool = False,
) -> str:
    """Render the report as a rich table: id, name, count, share, weight, and a totals footer.

    Args:
        report (dict[str, Any]): From :func:`build_report`.
        beta (float): Shown in the title for ``effective_number``.
        max_weight (float | None): Shown in the title.
        to_file (bool): Render plain text (no colours, fixed width) for a file.
        console_out (bool): Print to stdout through rich instead of only returning the text.

    Returns:
        (str): The rendered table (empty when ``console_out``).
    """
    import io

    from rich.console import Console
    from rich.table import Table

    counts: list[int] = report["counts"]
    total = report["instances"]
    ratio = imbalance_ratio(counts)
    title = f"{report['split']} split of {report['data']}: {report['scheme']}"
    if report["scheme"] == "effective_number":
        title += f" (beta {beta})"
    title += f", normalize {report['normalize']}" + (f", max weight {max_weight}" if max_weight is not None else "")
    caption = (
        f"{report['images']} images, {report['backgrounds']} backgrounds, {total} instances, "
        f"imbalance ratio {ratio:.2f} (max/min count over classes present)"
    )
    table = Table(title=title, caption=caption, show_footer=True)
    table.add_column("id", justify="right", footer="")
    table.add_column("name", footer="all")
    table.add_column("count", justify="right", footer=str(total))
    table.add_column("share", justify="right", footer="100.0%")
    table.add_column("weight", justify="right", footer="")
    for i, (c, w) in enumerate(zip(counts, report["weights"], strict=True)):
        table.add_row(str(i), report["names"][str(i)], str(c), f"{100.0 * c / total:.1f}%", f"{w:.4f}")
    if console_out:
        Console().print(table)
        return ""
    buf = io.StringIO()
    console = Console(file=buf, width=120 if to_file else None, color_system=None, force_terminal=False)
    console.print(table)
    return buf.getvalue()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, fsync, then ``os.replace``.

    On any failure, including ``KeyboardInterrupt``, the temporary file is removed and ``path`` is left as it was.

    Args:
        path (Path): Target file.
        text (str): UTF-8 content.

    Raises:
        UserError: If the folder does not exist or is not writable.
    """
    _replace_atomically(path, lambda f: _write_payload(f, text.encode("utf-8")))


def _write_payload(f: IO[bytes], payload: bytes) -> None:
    """Write the bytes of an output file (a seam for tests that simulate a crash midway)."""
    f.write(payload)


def _replace_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Create ``path`` atomically (:func:`yolocustom.fsutil.replace_atomically`); a bad folder is a user error."""
    path = Path(path).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"cannot write '{path}': folder '{folder}' does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"cannot write '{path}': folder '{folder}' is not writable")
    try:
        replace_atomically(path, write)
    except OSError as e:  # a full disk, a quota, a name too long: the file system, not a bug
        raise UserError(f"cannot write '{path}': {e.strerror or e}") from None


def save_plot(path: Path, report: dict[str, Any]) -> None:
    """Save a bar chart of counts per class (log scale) with the weights overlaid on a second axis, atomically.

    Args:
        path (Path): PNG file to write.
        report (dict[str, Any]): From :func:`build_report`.

    Raises:
        UserError: If matplotlib is not installed or the file cannot be written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise UserError(f"--plot needs matplotlib: {e}") from None

    counts: list[int] = report["counts"]
    names = [report["names"][str(i)] for i in range(len(counts))]
    x = list(range(len(counts)))
    fig = Figure(figsize=(min(max(6.0, 0.25 * len(counts) + 2.0), 30.0), 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(x, [c if c > 0 else float("nan") for c in counts], color="tab:blue", label="instances")
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5)  # a class with 1 instance still shows a bar
    ax.set_ylabel("instances (log scale)")
    if len(counts) <= 120:
        ax.set_xticks(x, names, rotation=90, fontsize=8 if len(counts) <= 40 else 5)
    else:  # too many classes to name them all legibly: label every k-th one
        step = -(-len(counts) // 60)
        ax.set_xticks(x[::step], names[::step], rotation=90, fontsize=5)
    ax.set_xlim(-0.6, len(counts) - 0.4)
    ax2 = ax.twinx()
    ax2.plot(x, report["weights"], "o-", color="tab:orange", markersize=3, label="weight")
    ax2.set_ylabel("weight")
    ax2.set_ylim(bottom=0)
    ax.set_title(f"{report['split']}: {report['instances']} instances, {report['scheme']} weights")
    fig.legend(loc="outside upper right", ncols=2)

    def write(f: IO[bytes]) -> None:
        fig.savefig(f, format="png", dpi=120)

    _replace_atomically(path, write)


def _check_counts(spec: DatasetSpec, split: str, images: list[str], result: LabelCounts) -> None:
    """Raise a DataError naming the folder when the split has no labels folder or no instance at all."""
    from yolocustom.datasets import img2label_path

    if result.label_files and result.instances:
        return
    label_dirs = sorted({os.path.dirname(img2label_path(p)) for p in images})
    if result.label_files == 0 and not any(os.path.isdir(d) for d in label_dirs):
        shown = ", ".join(f"'{d}'" for d in label_dirs[:3]) + (" ..." if len(label_dirs) > 3 else "")
        raise DataError(
            f"{spec.source}: labels folder not found for split {split!r}: looked for {shown} "
            "(the last '/images/' of each image path is replaced by '/labels/')"
        )
    if result.instances == 0:
        shown = ", ".join(f"'{d}'" for d in label_dirs[:3]) + (" ..." if len(label_dirs) > 3 else "")
        raise DataError(
            f"{spec.source}: split {split!r} has no labelled instances ({len(images)} images, {result.images} kept, "
            f"{result.backgrounds} backgrounds, {len(result.rejected)} rejected label files) in {shown}; "
            "no weights can be derived"
        )


def _warn(spec: DatasetSpec, split: str, result: LabelCounts, weights: ClassWeights) -> None:
    """Print warnings on stderr: rejected label files, duplicate rows, empty and capped classes."""
    lines = [f"warning: {f}: ignoring corrupt image/label: {r}" for f, r in result.rejected]
    if result.duplicates:
        lines.append(f"warning: {result.duplicates} duplicate label rows dropped (as Ultralytics does)")
    lines += [
        f"warning: class {i} '{spec.names[i]}' has no instances in split '{split}'; "
        f"it gets weight {weights.weights[i]:.4g}, as the most frequent class would"
        for i in weights.zero_classes
    ]
    if weights.capped_classes:
        lines.append(f"note: {len(weights.capped_classes)} class weights were clipped to --max-weight")
    if lines:
        sys.stderr.write("\n".join(lines) + "\n")
