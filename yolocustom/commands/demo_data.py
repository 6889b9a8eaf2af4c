"""``yolocustom demo-data``: write the built-in, imbalanced demo dataset (coloured defects on grey plates), in the label
format of any supported task (``--task detect|segment|pose|obb``).

NumPy and OpenCV are imported inside the command body only, to keep CLI start-up fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from yolocustom.commands._common import user_errors_exit_1


def register(app: typer.Typer) -> None:
    """Add the ``demo-data`` command to ``app``.

    Args:
        app (typer.Typer): The Typer application to extend.
    """
    app.command("demo-data")(demo_data)


@user_errors_exit_1
def demo_data(
    out: Path | None = typer.Option(
        None, "--out", help="Dataset folder to create (or reuse); default datasets/shapes, or datasets/shapes-<task>."
    ),
    task: str = typer.Option("detect", "--task", help="Label format: detect, segment, pose or obb."),
    n_train: int = typer.Option(600, "--n-train", min=1, help="Number of training images."),
    n_val: int = typer.Option(150, "--n-val", min=1, help="Number of validation images."),
    img_size: int = typer.Option(64, "--img-size", min=32, help="Image side in pixels; shapes scale with it."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same options always give byte-identical files."),
    rare_ratio: float = typer.Option(
        10.0, "--rare-ratio", min=1.0, help="Instances of the most common class per instance of the rare 'crack'."
    ),
    force: bool = typer.Option(
        False, "--force", help="Regenerate over a folder previously written by demo-data (never a foreign folder)."
    ),
) -> None:
    """Generate the demo dataset: 4 inspection-line defect classes, one of them rare, in a task's YOLO label format.

    A folder made with the same options is reused; anything else is refused (--force replaces only our own folder).
    """
    from yolocustom.demo_data import SPLITS, count_instances, generate_demo_dataset
    from yolocustom.tasks import TASKS

    if out is None and task in TASKS:
        out = Path(TASKS[task].demo_folder)
    yaml_path = generate_demo_dataset(
        out or Path(TASKS["detect"].demo_folder),  # an unknown --task is refused by the generator
        n_train=n_train,
        n_val=n_val,
        img_size=img_size,
        seed=seed,
        rare_ratio=rare_ratio,
        force=force,
        task=task,
    )
    typer.echo(f"dataset: {yaml_path}")
    counts = {split: count_instances(yaml_path, split) for split in SPLITS}
    names = list(counts[SPLITS[0]])
    width = max(len(n) for n in [*names, "class"])
    typer.echo(f"  {'class':<{width}}  " + "  ".join(f"{split:>6}" for split in SPLITS))
    for name in names:
        typer.echo(f"  {name:<{width}}  " + "  ".join(f"{counts[split][name]:>6}" for split in SPLITS))
