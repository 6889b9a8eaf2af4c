"""Freeze-then-unfreeze through real Ultralytics training: each trap of the hand-written callback, named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_recipe, write_recipe
from ultralytics.utils.torch_utils import unwrap_model

from yolocustom.features.layers import resolve_layers


def _backbone_state(trainer: Any, prefixes: list[str]) -> dict[str, torch.Tensor]:
    model = unwrap_model(trainer.model)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if any(p in f"{k}" for p in prefixes)}


def _snapshot_per_epoch(trainer_holder: dict[str, Any]) -> dict[str, Any]:
    def start(trainer: Any) -> None:
        prefixes = [f"model.{i}." for i in trainer.yc_freeze_layers]
        trainer_holder["prefixes"] = prefixes
        trainer_holder["initial"] = _backbone_state(trainer, prefixes)
        trainer_holder["epochs"] = []
        trainer_holder["requires_grad"] = []

    def end(trainer: Any) -> None:
        trainer_holder["epochs"].append(_backbone_state(trainer, trainer_holder["prefixes"]))
        model = unwrap_model(trainer.model)
        trainer_holder["requires_grad"].append(
            {n: p.requires_grad for n, p in model.named_parameters() if any(x in n for x in trainer_holder["prefixes"])}
        )

    return {"on_pretrain_routine_end": start, "on_train_epoch_end": end}


def test_backbone_is_resolved_from_the_model_yaml_not_hard_coded() -> None:
    from ultralytics.nn.tasks import DetectionModel

    sizes = {
        name: resolve_layers("backbone", DetectionModel(name, nc=2, verbose=False), "f")
        for name in ("yolo26n.yaml", "yolo11n.yaml", "yolov8n.yaml")
    }
    assert len(sizes["yolo26n.yaml"]) == 11
    assert len(sizes["yolo11n.yaml"]) == 11
    assert len(sizes["yolov8n.yaml"]) == 10  # the hard-coded "10" is only right for yolov8


def test_frozen_params_bit_identical_until_unfreeze_then_train(tmp_path: Path, coco8_yaml: Path) -> None:
    """Trap: frozen layers must not move (weights nor BN statistics) and must train once unfrozen."""
    seen: dict[str, Any] = {}
    recipe = write_recipe(tmp_path, coco8_yaml, {"freeze": {"layers": "backbone", "epochs": 2}}, epochs=3)
    trainer = run_recipe(recipe, _snapshot_per_epoch(seen))
    initial, per_epoch = seen["initial"], seen["epochs"]
    assert len(per_epoch) == 3
    weights = [k for k in initial if k.endswith(".weight") or k.endswith(".bias")]
    stats = [k for k in initial if k.endswith("running_mean")]
    assert weights and stats
    for epoch in (0, 1):  # frozen epochs: parameters and BatchNorm running stats bit-identical
        assert all(torch.equal(initial[k], per_epoch[epoch][k]) for k in weights), f"weights moved in epoch {epoch}"
        assert all(torch.equal(initial[k], per_epoch[epoch][k]) for k in stats), f"BN stats moved in epoch {epoch}"
        assert not any(seen["requires_grad"][epoch].values())
    moved = [k for k in weights if not torch.equal(per_epoch[1][k], per_epoch[2][k])]
    assert len(moved) > 0.9 * len(weights), "unfrozen backbone did not train in epoch 3"
    assert any(not torch.equal(per_epoch[1][k], per_epoch[2][k]) for k in stats), "BN stayed in eval mode"
    assert all(seen["requires_grad"][2].values())
    assert trainer.yc_unfrozen and trainer.freeze_layer_names == [".dfl"]


def test_dfl_never_unfreezes(tmp_path: Path, coco8_yaml: Path) -> None:
    """Trap: the naive unfreeze sets requires_grad on every parameter, including Ultralytics' fixed DFL conv."""
    seen: dict[str, Any] = {}

    def grab(trainer: Any) -> None:
        model = unwrap_model(trainer.model)
        seen.setdefault("dfl", []).append(
            {n: (p.requires_grad, p.detach().clone()) for n, p in model.named_parameters() if ".dfl" in n}
        )

    recipe = write_recipe(tmp_path, coco8_yaml, {"freeze": {"layers": 3, "epochs": 1}}, epochs=2, model="yolov8n.yaml")
    run_recipe(recipe, {"on_pretrain_routine_end": grab, "on_train_epoch_end": grab})
    first, *rest = seen["dfl"]
    assert first, "yolov8n has a DFL conv"
    for snap in rest:
        for name, (requires_grad, value) in snap.items():
            assert not requires_grad, f"{name} was unfrozen"
            assert torch.equal(value, first[name][1])


def test_resume_after_unfreeze_epoch_trains_backbone(tmp_path: Path, coco8_yaml: Path) -> None:
    """Trap: an ``epoch == N`` check never fires for a run resumed after epoch N, leaving it frozen forever."""
    from yolocustom import training

    recipe = write_recipe(tmp_path, coco8_yaml, {"freeze": {"layers": "backbone", "epochs": 1}}, epochs=4)

    def stop_after_second_epoch(trainer: Any) -> None:
        if trainer.epoch == 1:
            raise KeyboardInterrupt  # like a kill right after epoch 2's checkpoint

    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, {"on_fit_epoch_end": stop_after_second_epoch})
    last = tmp_path / "runs" / "run" / "weights" / "last.pt"
    resumed_recipe = training.recipe_from_checkpoint(last)
    from yolocustom.recipe import load_recipe

    assert resumed_recipe.digest() == load_recipe(recipe).digest()

    seen: dict[str, Any] = {}
    from ultralytics import YOLO

    from yolocustom.factory import build_trainer

    model = YOLO(str(last))
    model.add_callback("on_train_start", lambda t: seen.update(start_epoch=t.start_epoch))
    model.add_callback(
        "on_train_epoch_start",
        lambda t: seen.setdefault("before", _backbone_state(t, ["model.0.", "model.5."])),
    )
    model.add_callback(
        "on_train_epoch_end", lambda t: seen.setdefault("after", _backbone_state(t, ["model.0.", "model.5."]))
    )
    model.train(resume=str(last), trainer=build_trainer(resumed_recipe))
    trainer = model.trainer
    assert seen["start_epoch"] == 2
    assert trainer.yc_unfrozen
    model_ = unwrap_model(trainer.model)
    assert all(p.requires_grad for n, p in model_.named_parameters() if n.startswith("model.0."))
    moved = [
        k for k in seen["before"] if k.endswith(".weight") and not torch.equal(seen["before"][k], seen["after"][k])
    ]
    assert moved, "backbone did not train after resuming past the unfreeze epoch"
