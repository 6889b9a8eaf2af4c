"""Drill: bad data is caught before training starts, through ``yolocustom train`` (the refusals in process through the
same Typer app; the run that trains, in a real process).

A missing dataset YAML, an empty images folder, a missing labels folder and a train split whose every label is
unusable are errors (exit 1, no traceback, no run folder). Label files that are corrupt or name a class id beyond
``nc`` are reported as excluded before the first epoch, and training then runs through epoch 1 without a crash.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from conftest import CliRun, assert_clean_failure, copy_dataset, run_cli, run_cli_in_process, write_drill_recipe

# Each corrupt label file with the reason Ultralytics (and the pre-flight) gives for excluding it.
CORRUPT_LABELS: dict[str, tuple[bytes, str]] = {
    "img_00000.txt": (b"7 0.5 0.5 0.1 0.1\n", "exceeds dataset class count"),
    "img_00001.txt": (b"garbage text here\n", "could not convert"),
    "img_00002.txt": (b"0 0.5 0.5 0.1\n", "5 columns"),
    "img_00003.txt": (b"0 1.5 0.5 0.1 0.1\n", "out of bounds"),
    "img_00004.txt": (b"-1 0.5 0.5 0.1 0.1\n", "negative label"),
    "img_00005.txt": (b"\xff\xfe\x00\x01", "codec can't decode"),
}


def _train(tmp_path: Path, data: Path, epochs: int = 1, in_process: bool = True) -> tuple[Path, CliRun]:
    """``yolocustom train`` on ``data``: in this process for the refusals (the same command, no interpreter start),
    a real process for the run that trains."""
    recipe = write_drill_recipe(tmp_path / "recipe", data, epochs=epochs, imgsz=32)
    if in_process:
        return recipe, run_cli_in_process(["train", str(recipe)])
    return recipe, run_cli(["train", str(recipe)], tmp_path / "logs")


def _no_run_folder(tmp_path: Path) -> None:
    assert not (tmp_path / "recipe" / "runs").exists(), "a run folder was created for data that cannot train"


def test_missing_dataset_yaml(tmp_path: Path) -> None:
    _, run = _train(tmp_path, tmp_path / "nowhere" / "data.yaml")
    assert_clean_failure(run, "not found", "nowhere")
    _no_run_folder(tmp_path)


def test_empty_images_folder(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
    data = root / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val", "names": ["a"]}))
    _, run = _train(tmp_path, data)
    assert_clean_failure(run, "split 'train' is empty", str(root / "images" / "train"))
    _no_run_folder(tmp_path)


def test_missing_labels_folder(tmp_path: Path, drill_shapes: Path) -> None:
    data = copy_dataset(drill_shapes, tmp_path / "ds")
    shutil.rmtree(data.parent / "labels")
    _, run = _train(tmp_path, data)
    assert_clean_failure(run, "no usable labels")
    _no_run_folder(tmp_path)


def test_every_label_beyond_nc(tmp_path: Path, drill_shapes: Path) -> None:
    data = copy_dataset(drill_shapes, tmp_path / "ds")
    for label in (data.parent / "labels" / "train").glob("*.txt"):
        label.write_text("9 0.5 0.5 0.2 0.2\n")
    _, run = _train(tmp_path, data)
    assert_clean_failure(run, "no usable labels", "exceeds dataset class count")
    _no_run_folder(tmp_path)


def test_corrupt_and_out_of_range_labels_are_excluded_before_epoch_1(tmp_path: Path, drill_shapes: Path) -> None:
    data = copy_dataset(drill_shapes, tmp_path / "ds")
    for name, (content, _) in CORRUPT_LABELS.items():
        (data.parent / "labels" / "train" / name).write_bytes(content)
    (data.parent / "labels" / "val" / "img_00000.txt").write_text("11 0.5 0.5 0.1 0.1\n")  # val: Ultralytics drops it
    _, run = _train(tmp_path, data, in_process=False)
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output
    first_epoch = run.stdout.find("Epoch")
    assert first_epoch > 0, "training never started"
    for name, (_, reason) in CORRUPT_LABELS.items():
        report = f"label file excluded, as Ultralytics will: {data.parent / 'labels' / 'train' / name}"
        at = run.stdout.find(report)
        assert 0 <= at < first_epoch, f"{name}: no exclusion report before epoch 1"
        assert reason in run.stdout[at : run.stdout.find("\n", at)], f"{name}: reason {reason!r} not given"
    results = tmp_path / "recipe" / "runs" / "run" / "results.csv"
    assert results.exists() and len(results.read_text().splitlines()) == 2, "epoch 1 did not complete"
