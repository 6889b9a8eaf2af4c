"""F1 logging and recipe fitness through real training; also all five features combined in one run (conftest's
``shapes_all_features_run``, whose fitness is the rare class's recall; test_train_per_class_fitness.py reads it too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SHAPES_ALL_FEATURES, SHAPES_ALL_FEATURES_EPOCHS, read_csv, run_recipe, write_recipe
from ultralytics.utils.metrics import DetMetrics
from ultralytics.utils.patches import torch_load

from yolocustom.features.f1_logging import F1_KEY, F1DetMetrics
from yolocustom.features.fitness import TIE_BREAK


def _recipe_fitness(rows: list[dict[str, str]], per_class: list[dict[str, str]]) -> list[float]:
    """The recipe's fitness per epoch: crack's recall (metrics_per_class.csv) + the tie-break x mAP50-95."""
    crack = {int(r["epoch"]): float(r["R"]) for r in per_class if r["class_name"] == "crack"}
    return [crack[i + 1] + TIE_BREAK * float(r["metrics/mAP50-95(B)"]) for i, r in enumerate(rows)]


@pytest.fixture(scope="module")
def all_features_run(shapes_all_features_run: dict[str, Any]) -> dict[str, Any]:
    """One real run on the imbalanced shapes data with every feature on, observed epoch by epoch (conftest's session
    run, shared with test_train_per_class_fitness.py)."""
    return shapes_all_features_run


def test_f1_column_is_mean_2pr_over_all_val_classes(all_features_run: dict[str, Any]) -> None:
    rows = read_csv(all_features_run["dir"] / "results.csv")
    seen = all_features_run["seen"]["val"]
    assert len(rows) == len(seen) >= 4  # up to SHAPES_ALL_FEATURES_EPOCHS; fewer when patience stops it
    assert len(rows) <= SHAPES_ALL_FEATURES_EPOCHS
    assert any(float(r[F1_KEY]) > 0 for r in rows), "the model learned nothing; the check would be vacuous"
    for row, val in zip(rows, seen):
        per_class = 2 * val["p"] * val["r"] / (val["p"] + val["r"] + 1e-16)
        assert len(per_class) == 4  # every class present in val, zero-F1 ones included
        assert float(row[F1_KEY]) == pytest.approx(per_class.mean(), abs=2e-5)
        assert val["metrics"][F1_KEY] == pytest.approx(per_class.mean(), abs=2e-5)


def test_f1_per_class_csv_matches_validator(all_features_run: dict[str, Any]) -> None:
    rows = read_csv(all_features_run["dir"] / "f1_per_class.csv")
    assert list(rows[0]) == ["epoch", "scratch", "dent", "stain", "crack"]
    for row, val in zip(rows, all_features_run["seen"]["val"]):
        names = ["scratch", "dent", "stain", "crack"]
        for c, f1 in zip(val["cls"], val["f1"]):
            assert float(row[names[c]]) == pytest.approx(float(f1), abs=1e-5)


def test_best_pt_is_the_epoch_the_recipe_fitness_picks(all_features_run: dict[str, Any]) -> None:
    trainer, folder = all_features_run["trainer"], all_features_run["dir"]
    rows = read_csv(folder / "results.csv")
    scores = _recipe_fitness(rows, read_csv(folder / "metrics_per_class.csv"))
    best_epoch = int(np.argmax(scores))  # first maximum, as Ultralytics keeps the first on ties
    assert len(set(np.round(scores, 5))) > 1, "fitness never changed; the check would be vacuous"
    seen = all_features_run["seen"]["val"]
    assert seen[-1]["best"] == pytest.approx(max(scores), abs=1e-4)
    assert all(v["fitness"] == pytest.approx(s, abs=2e-6) for v, s in zip(seen, scores))
    assert trainer.stopper.best_fitness == pytest.approx(max(scores), abs=1e-4)
    assert trainer.stopper.best_epoch == best_epoch + 1
    best = torch_load(folder / "weights" / "best.pt", map_location="cpu")
    assert best["train_metrics"]["fitness"] == pytest.approx(scores[best_epoch], abs=1e-4)
    assert best["train_metrics"][F1_KEY] == pytest.approx(float(rows[best_epoch][F1_KEY]), abs=1e-5)


def test_all_features_combined(all_features_run: dict[str, Any]) -> None:
    trainer, seen = all_features_run["trainer"], all_features_run["seen"]
    assert seen["frozen"][:2] == [seen["frozen"][0]] * 2 and seen["frozen"][0] > 0  # frozen epochs 1-2
    assert all(n == 0 for n in seen["frozen"][2:])  # unfrozen from epoch 3
    for lrs in seen["lr"][1:]:  # after the first warmup step: backbone = 0.5 x head for non-bias groups
        assert lrs[0] == pytest.approx(0.5 * lrs[1]) and lrs[2] == pytest.approx(0.5 * lrs[3])
    weights = trainer.yc_class_weights
    assert float(weights.max()) == pytest.approx(4.0) or float(weights.max()) < 4.0
    assert float(weights[3]) > float(weights[0]), "the rare class must weigh more than the common one"
    ckpt = torch_load(Path(trainer.save_dir) / "weights" / "last.pt", map_location="cpu")
    record = ckpt["model"].yolocustom
    assert record["recipe"]["features"].keys() == SHAPES_ALL_FEATURES.keys()
    assert (Path(trainer.save_dir) / "recipe.yaml").read_text().startswith("# resolved by yolocustom")


def test_f1_column_present_from_first_row_with_val_false(tmp_path: Path, coco8_yaml: Path) -> None:
    recipe = write_recipe(tmp_path, coco8_yaml, {"f1_logging": {"per_class": False}}, epochs=3, val=False)
    trainer = run_recipe(recipe)
    header = (Path(trainer.save_dir) / "results.csv").read_text().splitlines()[0].split(",")
    assert F1_KEY in header
    assert header.index(F1_KEY) == header.index("metrics/mAP50-95(B)") + 1
    assert len(read_csv(Path(trainer.save_dir) / "results.csv")) == 3
    assert not (Path(trainer.save_dir) / "f1_per_class.csv").exists()


def test_f1_metrics_include_zero_f1_classes() -> None:
    """Ultralytics' own ap_per_class on controlled stats: class 2 is never detected and must pull the mean down."""
    metrics = F1DetMetrics(names={0: "a", 1: "b", 2: "rare"})
    tp = np.array([[1] * 10, [1] * 10, [0] * 10, [1] * 10], dtype=bool)
    metrics.update_stats = DetMetrics.update_stats.__get__(metrics)  # keep the real method
    metrics.stats = {
        "tp": [tp],
        "conf": [np.array([0.9, 0.8, 0.7, 0.6])],
        "pred_cls": [np.array([0, 1, 1, 0])],
        "target_cls": [np.array([0, 1, 2, 0])],
        "target_img": [np.array([0, 1, 2])],
    }
    metrics.process()
    per_class = dict(zip(metrics.ap_class_index, metrics.box.f1))
    assert per_class[2] == 0 and per_class[0] > 0.5
    assert metrics.results_dict[F1_KEY] == pytest.approx(float(np.mean(list(per_class.values()))))
    assert metrics.results_dict[F1_KEY] < float(np.mean([v for v in per_class.values() if v > 0]))
    assert metrics.keys[-1] == F1_KEY and len(metrics.mean_results()) == len(metrics.keys)
