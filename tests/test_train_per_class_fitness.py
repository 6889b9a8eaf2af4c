"""Per-class fitness through real training: best.pt and EarlyStopping follow the recall of one class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import SHAPES_ALL_FEATURES, SHAPES_ALL_FEATURES_EPOCHS, read_csv, write_recipe
from ultralytics.utils.patches import torch_load

from yolocustom.errors import UserError
from yolocustom.features.fitness import PER_CLASS_COLUMNS, TIE_BREAK


@pytest.fixture(scope="module")
def crack_recall_run(shapes_all_features_run: dict[str, Any]) -> dict[str, Any]:
    """Shapes data (crack is the rare class, id 3); best.pt by crack's recall; patience 3 over at most 12 epochs: the
    session's all-features run (conftest), whose fitness is exactly that. ``seen``: (fitness, best) per epoch."""
    run = shapes_all_features_run
    assert run["trainer"].args.patience == 3 and SHAPES_ALL_FEATURES["fitness"] == {
        "metric": "recall",
        "classes": ["crack"],
    }
    seen = [(v["fitness"], v["best"]) for v in run["seen"]["val"]]
    return {"trainer": run["trainer"], "seen": seen, "dir": run["dir"]}


def test_metrics_per_class_csv_is_long_format(crack_recall_run: dict[str, Any]) -> None:
    rows = read_csv(crack_recall_run["dir"] / "metrics_per_class.csv")
    assert tuple(rows[0]) == PER_CLASS_COLUMNS
    epochs = sorted({int(r["epoch"]) for r in rows})
    assert epochs == list(range(1, len(crack_recall_run["seen"]) + 1))
    assert len(rows) == 4 * len(epochs)  # one row per class per epoch
    crack = [r for r in rows if r["class_name"] == "crack"]
    assert all(r["class_id"] == "3" and int(r["instances"]) > 0 for r in crack)
    for r in rows:  # F1 is the harmonic mean of the row's own P and R (the validator's per-class values)
        p, rc, f1 = float(r["P"]), float(r["R"]), float(r["F1"])
        assert f1 == pytest.approx(2 * p * rc / (p + rc + 1e-16), abs=1e-4)


def test_best_pt_and_early_stopping_follow_the_class_recall(crack_recall_run: dict[str, Any]) -> None:
    trainer, folder, seen = crack_recall_run["trainer"], crack_recall_run["dir"], crack_recall_run["seen"]
    crack = {int(r["epoch"]): float(r["R"]) for r in read_csv(folder / "metrics_per_class.csv") if r["class_id"] == "3"}
    overall = {i + 1: float(r["metrics/mAP50-95(B)"]) for i, r in enumerate(read_csv(folder / "results.csv"))}
    assert len(set(crack.values())) > 1, "crack's recall never changed; the check would be vacuous"
    top = max(crack.values())
    # argmax of crack's recall; ties (frequent for a per-class recall) go to the better overall mAP50-95
    best_epoch = max((e for e, v in crack.items() if v == top), key=lambda e: (overall[e], -e))
    for epoch, (fitness, _) in enumerate(seen, 1):  # the fitness is crack's recall (+ the tiny tie-break)
        assert fitness == pytest.approx(crack[epoch] + TIE_BREAK * overall[epoch], abs=2e-6)
    ckpt = torch_load(folder / "weights" / "best.pt", map_location="cpu")  # stripped at the end: no epoch field
    assert ckpt["train_metrics"]["fitness"] == pytest.approx(seen[best_epoch - 1][0], abs=1e-9)
    assert ckpt["train_metrics"]["metrics/mAP50-95(B)"] == pytest.approx(overall[best_epoch], abs=1e-5)
    assert trainer.best_fitness == pytest.approx(top, abs=2e-6)
    assert trainer.stopper.best_epoch == best_epoch  # EarlyStopping saw the same fitness
    assert trainer.stopper.best_fitness == pytest.approx(top, abs=2e-6)
    last = len(seen)
    assert (
        last == SHAPES_ALL_FEATURES_EPOCHS or last == best_epoch + trainer.stopper.patience
    )  # patience on crack's recall


def test_unknown_class_name_fails_before_training_with_a_suggestion(tmp_path: Path, coco8_yaml: Path) -> None:
    from yolocustom.recipe import load_recipe
    from yolocustom.training import dry_run

    recipe = write_recipe(tmp_path, coco8_yaml, {"fitness": {"metric": "recall", "classes": ["zebar"]}}, epochs=2)
    with pytest.raises(UserError, match=r"features\.fitness\.classes: class 'zebar'.*did you mean 'zebra'"):
        dry_run(load_recipe(recipe))
    recipe = write_recipe(tmp_path, coco8_yaml, {"fitness": {"metric": "recall", "classes": ["zebra"]}}, epochs=2)
    with pytest.raises(UserError, match=r"'zebra' \(22\) has no instances in the val split"):  # COCO8: train only
        dry_run(load_recipe(recipe))


def test_validate_check_data_places_an_unknown_fitness_class(tmp_path: Path, coco8_yaml: Path) -> None:
    """``validate-config --check-data`` checks fitness class names against the dataset, offline, at their line:col."""
    from typer.testing import CliRunner

    from yolocustom.cli import app

    recipe = write_recipe(tmp_path, coco8_yaml, {"fitness": {"metric": "recall", "classes": ["person", "zebar"]}})
    line = next(i for i, text in enumerate(recipe.read_text().splitlines(), 1) if "zebar" in text)
    result = CliRunner().invoke(app, ["validate-config", "--check-data", str(recipe)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{recipe}:{line}:" in result.stdout
    assert (
        "features.fitness.classes: class 'zebar' is not in the dataset's names; did you mean 'zebra'?" in result.stdout
    )
    result = CliRunner().invoke(
        app, ["validate-config", "--check-data", str(recipe), "--set", "features.fitness.classes=[person]"]
    )
    assert result.exit_code == 0, result.output


def test_dry_run_names_the_per_class_fitness(tmp_path: Path, coco8_yaml: Path) -> None:
    from yolocustom.recipe import load_recipe
    from yolocustom.training import dry_run

    features = {"fitness": {"weights": {"recall": 3, "mAP50": 1}, "classes": ["horse", 0]}}
    text = dry_run(load_recipe(write_recipe(tmp_path, coco8_yaml, features, epochs=2)))
    assert "per class, mean over [horse (17), person (0)] of: 0.75 x recall + 0.25 x mAP50" in text


@pytest.mark.parametrize(
    ("fitness", "message"),
    [
        ({"metric": "default", "classes": [0]}, "'default' is Ultralytics' global fitness"),
        ({"weights": {"default": 1, "recall": 1}, "classes": [0]}, "'default' is Ultralytics' global fitness"),
        ({"metric": "recall", "classes": []}, "expected a non-empty list of class ids or names"),
        ({"metric": "recall", "classes": [1, 1]}, "expected distinct classes"),
        ({"metric": "recall", "classes": [-1]}, "expected class ids (integers >= 0) or class names"),
    ],
)
def test_fitness_classes_schema_errors(fitness: dict[str, Any], message: str) -> None:
    from yolocustom.errors import RecipeError
    from yolocustom.recipe import validate_recipe

    with pytest.raises(RecipeError) as e:
        validate_recipe({"model": "yolo26n.yaml", "data": "coco8.yaml", "features": {"fitness": fitness}})
    assert "features.fitness" in str(e.value) and message in str(e.value)
