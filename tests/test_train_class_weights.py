"""Class weights through Ultralytics' model.class_weights hook: the loss criterion really holds them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import resume_run, run_recipe, write_recipe
from ultralytics.utils.torch_utils import unwrap_model

from yolocustom.features.class_weights import map_explicit_weights

# COCO8 train split (../shared/datasets/COUNTS.md): zebra 1, giraffe 2, bowl 3, orange 4, broccoli 1, plant 1, vase 1
COCO8_TRAIN = {22: 1, 23: 2, 45: 3, 49: 4, 50: 1, 58: 1, 75: 1}


def _expected_sqrt_inverse(nc: int = 80, cap: float = 3.0) -> list[float]:
    raw = [math.sqrt(4 / COCO8_TRAIN[i]) if i in COCO8_TRAIN else 1.0 for i in range(nc)]  # empty -> min raw (1.0)
    mean = sum(raw) / nc
    return [min(w / mean, cap) for w in raw]


def test_apply_to_all_criterion_holds_recipe_weights_in_both_heads(tmp_path: Path, coco8_yaml: Path) -> None:
    recipe = write_recipe(
        tmp_path,
        coco8_yaml,
        {"class_weights": {"auto": "sqrt_inverse", "max_weight": 3.0, "apply_to": "all"}},
        epochs=1,
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
    weights = trainer.yc_class_weights.cpu().tolist()
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


def _heads(criterion: Any) -> list[Any]:
    return [criterion.one2many, criterion.one2one] if hasattr(criterion, "one2one") else [criterion]


class _RecordingBCE(torch.nn.Module):
    """Stands in for a head's BCE module to capture the exact logits and soft targets the criterion used."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.seen.append((x.detach().clone(), t.detach().clone()))
        return self.inner(x, t)


def _setup(tmp_path: Path, data: Path, apply_to: str) -> Any:
    from yolocustom.factory import build_trainer, train_overrides
    from yolocustom.recipe import load_recipe

    recipe = load_recipe(
        write_recipe(tmp_path / apply_to, data, {"class_weights": {"weights": WEIGHTS, "apply_to": apply_to}}, epochs=2)
    )
    overrides = {**train_overrides(recipe), "model": recipe.model}
    trainer = build_trainer(recipe)(overrides=overrides)
    trainer._setup_train()
    return trainer


WEIGHTS = {0: 2.0, 1: 3.0, 3: 0.5}  # shapes classes: scratch, dent, stain, crack


def test_positives_loss_is_pos_weight_bce_by_hand(tmp_path: Path, shapes_yaml: Path) -> None:
    """The cls loss on a fixed batch is -(w t log s(x) + (1 - t) log(1 - s(x))), summed / sum(t), x hyp.cls."""
    torch.manual_seed(0)
    results = {}
    for apply_to in ("positives", "all"):
        trainer = _setup(tmp_path, shapes_yaml, apply_to)
        model = unwrap_model(trainer.model)
        w = torch.tensor([WEIGHTS.get(i, 1.0) for i in range(len(trainer.data["names"]))])
        assert torch.equal(trainer.yc_class_weights.cpu(), w)
        if apply_to == "positives":
            assert model.class_weights is None and trainer.ema.ema.class_weights is None  # never stacked
            for crit in (model.criterion, trainer.ema.ema.criterion):  # both E2E heads, in the model and the EMA
                heads = _heads(crit)
                assert len(heads) == 2
                for head in heads:
                    assert torch.equal(head.bce.pos_weight.cpu(), w) and head.class_weights is None
        batch = trainer.preprocess_batch(next(iter(trainer.train_loader)))
        if getattr(model, "criterion", None) is None:  # 'all': Ultralytics builds it lazily, from class_weights
            model.criterion = model.init_criterion()
        head = _heads(model.criterion)[0]
        head.bce = recorder = _RecordingBCE(head.bce)
        model.train()
        with torch.no_grad():
            preds = model(batch["img"])
            _, items = head(preds["one2many"] if isinstance(preds, dict) and "one2many" in preds else preds, batch)
        x, t = recorder.seen[-1]
        p = torch.sigmoid(x.double())
        wd = w.double().view(1, 1, -1)
        if apply_to == "positives":
            by_hand = -(wd * t * torch.log(p) + (1 - t) * torch.log(1 - p))
        else:
            by_hand = -wd * (t * torch.log(p) + (1 - t) * torch.log(1 - p))
        expected = by_hand.sum() / t.sum().clamp(min=1) * trainer.args.cls
        assert float(items["cls_loss"]) == pytest.approx(float(expected), rel=1e-4)
        results[apply_to] = (float(items["cls_loss"]), x, t)
    (pos, _, t1), (all_, _, _) = results["positives"], results["all"]
    assert t1.sum() > 0, "the batch must have positives for the two semantics to differ"
    assert pos != pytest.approx(all_, rel=1e-3)


def test_positives_survive_resume(tmp_path: Path, coco8_yaml: Path) -> None:
    """Ultralytics rebuilds an E2E criterion on resume; the pos_weight BCE must be put back on both heads."""
    recipe = write_recipe(tmp_path, coco8_yaml, {"class_weights": {"weights": {"zebra": 4.0}}}, epochs=3)

    def stop(trainer: Any) -> None:
        if trainer.epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, {"on_fit_epoch_end": stop})
    last = tmp_path / "runs" / "run" / "weights" / "last.pt"
    seen: dict[str, Any] = {}

    def grab(trainer: Any) -> None:
        crit = unwrap_model(trainer.model).criterion
        seen["heads"] = [h.bce.pos_weight.detach().cpu().clone() for h in _heads(crit)]
        seen["ema"] = [h.bce.pos_weight.detach().cpu().clone() for h in _heads(trainer.ema.ema.criterion)]
        seen["updates"] = crit.updates

    resume_run(last, {"on_train_start": grab})
    assert len(seen["heads"]) == 2 and seen["updates"] == 1  # Ultralytics' resumed E2E gain kept
    for pw in seen["heads"] + seen["ema"]:
        assert pw[22] == 4.0 and float(pw.sum()) == pytest.approx(79 + 4.0)


@pytest.mark.parametrize(
    ("task_model", "yaml_name", "heads"),
    [
        ("DetectionModel", "yolo26n.yaml", 2),
        ("SegmentationModel", "yolo26n-seg.yaml", 2),
        ("PoseModel", "yolo26n-pose.yaml", 2),
        ("OBBModel", "yolo26n-obb.yaml", 2),
        ("DetectionModel", "yolov8n.yaml", 1),
    ],
)
def test_positives_reach_every_task_loss(task_model: str, yaml_name: str, heads: int) -> None:
    """segment/pose/OBB losses (and their E2E pairs) subclass v8DetectionLoss: each head gets the pos_weight BCE."""
    import ultralytics.nn.tasks as tasks
    from ultralytics.cfg import get_cfg

    from yolocustom.features.class_weights import apply_pos_weight, detection_losses

    model = getattr(tasks, task_model)(yaml_name, nc=3, verbose=False)
    model.args = get_cfg()
    criterion = model.init_criterion()
    w = torch.tensor([1.0, 2.0, 3.0])
    assert apply_pos_weight(criterion, w) == heads
    for head in detection_losses(criterion):
        assert torch.equal(head.bce.pos_weight, w) and head.class_weights is None
