"""F1 logging and recipe fitness through real training; also all five features combined in one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import read_csv, run_recipe, write_recipe
from ultralytics.utils.metrics import DetMetrics
from ultralytics.utils.patches import torch_load
from ultralytics.utils.torch_utils import unwrap_model

from yolocustom.features.f1_logging import F1_KEY, F1DetMetrics

ALL_FEATURES = {
    "f1_logging": {"per_class": True},
    "class_weights": {"auto": "effective_number", "beta": 0.99, "max_weight": 4.0},
    "fitness": {"weights": {"f1": 1.0, "mAP50": 1.0}},
    "freeze": {"layers": "backbone", "epochs": 2},
    "layer_lr": {"backbone_ratio": 0.5},
}


def _recipe_fitness(row: dict[str, str]) -> float:
    return 0.5 * float(row[F1_KEY]) + 0.5 * float(row["metrics/mAP50(B)"])


@pytest.fixture(scope="module")
def all_features_run(tmp_path_factory: pytest.TempPathFactory, shapes_yaml: Path) -> dict[str, Any]:
    """One real run on the imbalanced shapes data with every feature on, observed epoch by epoch."""
    folder = tmp_path_factory.mktemp("all")
    seen: dict[str, Any] = {"val": [], "lr": [], "frozen": []}

    def fit_epoch_end(trainer: Any) -> None:
        if trainer.epoch + 1 > trainer.epochs:  # final_eval of best.pt re-fires this event
            return
        det = trainer.validator.metrics
        seen["val"].append(
            dict(
                p=det.box.p.copy(),
                r=det.box.r.copy(),
                f1=det.box.f1.copy(),
                cls=list(det.ap_class_index),
                metrics=dict(trainer.metrics),
                fitness=trainer.fitness,
                best=trainer.best_fitness,
            )
        )

    def epoch_end(trainer: Any) -> None:
        groups = trainer.optimizer.param_groups
        seen["lr"].append([g["lr"] for g in groups])
        model = unwrap_model(trainer.model)
        seen["frozen"].append(sum(not p.requires_grad for n, p in model.named_parameters() if n.startswith("model.0.")))

    recipe = write_recipe(folder, shapes_yaml, ALL_FEATURES, epochs=12, imgsz=64, batch=16, nbs=16)
    trainer = run_recipe(recipe, {"on_fit_epoch_end": fit_epoch_end, "on_train_epoch_end": epoch_end})
    return {"trainer": trainer, "seen": seen, "dir": Path(trainer.save_dir)}


def test_f1_column_is_mean_2pr_over_all_val_classes(all_features_run: dict[str, Any]) -> None:
    rows = read_csv(all_features_run["dir"] / "results.csv")
    seen = all_features_run["seen"]["val"]
    assert len(rows) == len(seen) == 12
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
    scores = [_recipe_fitness(r) for r in rows]
    best_epoch = int(np.argmax(scores))  # first maximum, as Ultralytics keeps the first on ties
    assert len(set(np.round(scores, 5))) > 1, "fitness never changed; the check would be vacuous"
    seen = all_features_run["seen"]["val"]
    assert seen[-1]["best"] == pytest.approx(max(scores), abs=1e-4)
    assert all(v["fitness"] == pytest.approx(s, abs=1e-4) for v, s in zip(seen, scores))
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
    assert record["recipe"]["features"].keys() == ALL_FEATURES.keys()
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
