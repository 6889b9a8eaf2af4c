"""``train.pretrained``: a checkpoint loaded into a model YAML counts as pretrained (no fine-tuning warnings), is found
like a ``.pt`` model (a missing one is a clear error before training), and ``--dry-run`` states the transfer: the
checkpoint, how many tensors matched, which layers start pretrained or random. Counts are checked against the line
Ultralytics itself logs while loading ("Transferred N/M items"), on the official COCO-Pose checkpoint."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import yaml
from conftest import shared_dataset_yaml, shared_weights, write_recipe
from typer.testing import CliRunner

from yolocustom import cli
from yolocustom.recipe import load_recipe

FREEZE = {"freeze": {"layers": "backbone", "epochs": 1}, "layer_lr": {"backbone_ratio": 0.1}}


def _validate(*paths: Path) -> list[str]:
    result = CliRunner().invoke(cli.app, ["validate-config", *map(str, paths)])
    return [f"exit {result.exit_code}", *result.stdout.splitlines()]


def test_a_pretrained_checkpoint_counts_as_pretrained(tmp_path: Path) -> None:
    """The fine-tuning warnings fire only when the backbone really starts random: a model YAML with no checkpoint
    (``pretrained: true`` loads nothing into a YAML), or a ``.pt`` with ``pretrained: false``."""
    head = (
        "model: yolo11n.yaml\ndata: coco8.yaml\nfeatures:\n  freeze: {epochs: 1}\n  layer_lr: {backbone_ratio: 0.1}\n"
    )
    recipes = {
        name: tmp_path / f"{name}.yaml" for name in ("checkpoint", "url", "true", "pt_false", "not_pt", "relative")
    }
    recipes["checkpoint"].write_text(head + "train: {pretrained: /somewhere/yolo11n-pose.pt}\n")
    recipes["url"].write_text(head + "train: {pretrained: 'https://example.com/w/best.pt?x=1'}\n")
    recipes["true"].write_text(head + "train: {pretrained: true}\n")
    recipes["pt_false"].write_text(head.replace("yolo11n.yaml", "yolo11n-pose.pt") + "train: {pretrained: false}\n")
    recipes["not_pt"].write_text(head + "train:\n  pretrained: yolo11n.yaml\n")
    recipes["relative"].write_text(head + "train: {pretrained: weights/w.pt}\n")

    out = _validate(recipes["checkpoint"], recipes["url"], recipes["relative"])  # nothing looked up: no network
    assert out == ["exit 0", *(f"{recipes[n]}: ok" for n in ("checkpoint", "url", "relative"))]
    assert load_recipe(recipes["relative"]).train["pretrained"] == str(tmp_path / "weights" / "w.pt")  # like model:

    for name, why in (("true", "train.pretrained: true loads no weights"), ("pt_false", "train.pretrained: false")):
        out = _validate(recipes[name])
        assert out[0] == "exit 0" and out[-1] == f"{recipes[name]}: ok"
        assert [line.split(": ")[2] for line in out[1:-1]] == ["features.freeze", "features.layer_lr"], out
        assert all(why in line and "backbone starts random" in line for line in out[1:-1]), out

    out = _validate(recipes["not_pt"])
    assert out[0] == "exit 1"
    assert out[1].startswith(f"{recipes['not_pt']}:7:3: train.pretrained: expected true, false or a .pt checkpoint")
    assert out[1].endswith("found 'yolo11n.yaml'")


def test_missing_pretrained_checkpoint_is_a_clear_error_before_training(tmp_path: Path, coco8_yaml: Path) -> None:
    missing = tmp_path / "nowhere" / "w.pt"
    recipe = write_recipe(tmp_path, coco8_yaml, model="yolo11n.yaml", pretrained=str(missing), epochs=1)
    result = CliRunner().invoke(cli.app, ["train", str(recipe)])
    assert result.exit_code == 1 and result.exception is not None and isinstance(result.exception, SystemExit)
    assert f"error: train.pretrained: checkpoint '{missing}' not found: looked for '{missing}'" in result.stderr
    assert "drop train.pretrained to train from scratch" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()  # refused before the trainer made a run folder


@pytest.fixture(scope="module")
def pose_pt() -> Path:
    return shared_weights("yolo11n-pose.pt")


def _dry_run(recipe: Path) -> tuple[str, str]:
    """The plan, and the "Transferred N/M" line Ultralytics logged while the trainer loaded the weights."""
    from ultralytics.utils import LOGGER

    from yolocustom.training import dry_run

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    LOGGER.addHandler(handler)
    try:
        plan = dry_run(load_recipe(recipe), verbose=True)
    finally:
        LOGGER.removeHandler(handler)
    logged = [m for m in records if m.startswith("Transferred ")]
    return plan, logged[-1] if logged else ""


def _section(plan: str) -> list[str]:
    lines = plan.split("\nPretrained weights (what starts trained)\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [line.strip() for line in lines]


def test_dry_run_states_the_transfer_into_a_model_yaml(tmp_path: Path, coco8_yaml: Path, pose_pt: Path) -> None:
    """yolo11n.yaml + the COCO-Pose checkpoint: backbone and neck (layers 0-22) transfer whole; in the Detect head
    the class convs start random on classes the checkpoint does not know, and take the 'person' rows by name on COCO."""
    names = {i: f"thing{i}" for i in range(80)}  # coco8's images, class names the checkpoint has never seen
    data = yaml.safe_load(coco8_yaml.read_text())
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**data, "names": names}))
    recipe = write_recipe(tmp_path / "a", other, FREEZE, model="yolo11n.yaml", pretrained=str(pose_pt), epochs=2)
    plan, logged = _dry_run(recipe)
    n, total = map(int, re.fullmatch(r"Transferred (\d+)/(\d+) items from pretrained weights", logged).groups())  # type: ignore[union-attr]
    assert n < total
    assert _section(plan) == [
        f"{pose_pt} (train.pretrained): {n} of {total} tensors transferred (name and shape match, as Model.load)",
        "layers 0-22: pretrained",
        "layer 23 (head): partially pretrained; random: cv3.*.2",
    ]

    recipe = write_recipe(tmp_path / "b", coco8_yaml, FREEZE, model="yolo11n.yaml", pretrained=str(pose_pt), epochs=2)
    plan, logged = _dry_run(recipe)
    assert logged == f"Transferred {total}/{total} items from pretrained weights"  # Ultralytics counts remapped rows
    assert _section(plan) == [
        f"{pose_pt} (train.pretrained): {total} of {total} tensors transferred (name and shape match, as Model.load), "
        f"{total - n} of them only in the rows of classes matched by name",
        "layers 0-22: pretrained",
        "layer 23 (head): partially pretrained; cv3.*.2: rows of 1 of 80 classes copied by class name (person), the "
        "other rows random",
    ]


def test_dry_run_states_the_transfer_from_a_pt_model_and_from_scratch(tmp_path: Path, pose_pt: Path) -> None:
    data = shared_dataset_yaml("coco8-pose", tmp_path / "data")
    plan, logged = _dry_run(write_recipe(tmp_path / "a", data, FREEZE, model=str(pose_pt), epochs=2))
    total = int(re.fullmatch(r"Transferred (\d+)/\1 items from pretrained weights", logged).group(1))  # type: ignore[union-attr]
    assert _section(plan) == [f"all {total} tensors from {pose_pt} (model): every layer starts pretrained"]

    plan, logged = _dry_run(write_recipe(tmp_path / "b", data, model="yolo11n-pose.yaml", epochs=2))
    assert logged == "" and _section(plan) == [
        "none: every layer starts random (a model YAML and no train.pretrained .pt)"
    ]
