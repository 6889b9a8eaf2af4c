"""Class weights through Ultralytics' model.class_weights hook: the loss criterion really holds them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import run_recipe, write_recipe
from ultralytics.utils.torch_utils import unwrap_model

from yolocustom.features.class_weights import map_explicit_weights

# COCO8 train split (../shared/datasets/COUNTS.md): zebra 1, giraffe 2, bowl 3, orange 4, broccoli 1, plant 1, vase 1
COCO8_TRAIN = {22: 1, 23: 2, 45: 3, 49: 4, 50: 1, 58: 1, 75: 1}


def _expected_sqrt_inverse(nc: int = 80, cap: float = 3.0) -> list[float]:
    raw = [math.sqrt(4 / COCO8_TRAIN[i]) if i in COCO8_TRAIN else 1.0 for i in range(nc)]  # empty -> min raw (1.0)
    mean = sum(raw) / nc
    return [min(w / mean, cap) for w in raw]


def test_criterion_holds_recipe_weights_in_both_heads(tmp_path: Path, coco8_yaml: Path) -> None:
    recipe = write_recipe(
        tmp_path, coco8_yaml, {"class_weights": {"auto": "sqrt_inverse", "max_weight": 3.0}}, epochs=1
    )
    trainer = run_recipe(recipe)
    expected = torch.tensor(_expected_sqrt_inverse())
    model = unwrap_model(trainer.model)
    assert torch.allclose(model.class_weights.cpu(), expected, atol=1e-6)
    criterion = model.criterion  # YOLO26: E2ELoss with one-to-many and one-to-one v8DetectionLoss heads
    heads = [criterion.one2many, criterion.one2one] if hasattr(criterion, "one2one") else [criterion]
    for head in heads:
        assert torch.allclose(head.class_weights.flatten().cpu(), expected, atol=1e-6)
    assert torch.allclose(trainer.ema.ema.class_weights.cpu(), expected, atol=1e-6)  # EMA carries them to val loss
    saved = json.loads((Path(trainer.save_dir) / "class_weights.json").read_text())
    assert saved["weights"] == pytest.approx(expected.tolist(), abs=1e-6)
    assert saved["counts"][49] == 4 and saved["counts"][0] == 0


def test_explicit_weights_by_name_and_id(tmp_path: Path, coco8_yaml: Path) -> None:
    recipe = write_recipe(tmp_path, coco8_yaml, {"class_weights": {"weights": {"zebra": 4.0, 49: 0.5}}}, epochs=1)
    trainer = run_recipe(recipe)
    weights = unwrap_model(trainer.model).class_weights.cpu().tolist()
    assert weights[22] == 4.0 and weights[49] == 0.5
    assert all(w == 1.0 for i, w in enumerate(weights) if i not in (22, 49))


def test_explicit_weights_mapping_errors() -> None:
    names = {0: "person", 1: "bicycle"}
    with pytest.raises(ValueError, match="did you mean 'person'"):
        map_explicit_weights({"persn": 2.0}, names)
    with pytest.raises(ValueError, match="class id 5 is not in the dataset"):
        map_explicit_weights({5: 2.0}, names)
    with pytest.raises(ValueError, match="given twice"):
        map_explicit_weights({0: 2.0, "person": 3.0}, names)
