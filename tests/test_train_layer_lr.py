"""Backbone/head learning rates on top of Ultralytics' own optimizer groups, checked at every optimizer step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import run_recipe, write_recipe
from ultralytics.utils.torch_utils import unwrap_model


def _record_lrs(log: list[tuple[int, list[dict[str, Any]]]]) -> dict[str, Any]:
    def batch_end(trainer: Any) -> None:
        log.append(
            (
                trainer.epoch,
                [
                    dict(lr=g["lr"], tag=g.get("param_group"), part=g.get("yc_part"))
                    for g in trainer.optimizer.param_groups
                ],
            )
        )

    return {"on_train_batch_end": batch_end}


@pytest.mark.parametrize("optimizer", ["SGD", "auto"])
def test_groups_keep_the_ratio_through_warmup_and_schedule(tmp_path: Path, coco8_yaml: Path, optimizer: str) -> None:
    log: list[tuple[int, list[dict[str, Any]]]] = []
    recipe = write_recipe(
        tmp_path,
        coco8_yaml,
        {"layer_lr": {"backbone_ratio": 0.25}},
        epochs=4,
        warmup_epochs=2,
        optimizer=optimizer,
        lr0=0.01,
        warmup_bias_lr=0.1,
    )
    trainer = run_recipe(recipe, _record_lrs(log))
    groups = trainer.optimizer.param_groups
    # Ultralytics' three groups (weight/bn/bias), each split backbone-then-head, in a stable order
    assert [(g["param_group"], g["yc_part"]) for g in groups] == [
        ("weight", "backbone"),
        ("weight", "head"),
        ("bn", "backbone"),
        ("bn", "head"),
        ("bias", "backbone"),
        ("bias", "head"),
    ]
    assert [g["initial_lr"] for g in groups[0::2]] == pytest.approx([0.25 * g["initial_lr"] for g in groups[1::2]])
    # weight decay split survives: decay only on the 'weight' groups
    assert groups[0]["weight_decay"] > 0 and groups[2]["weight_decay"] == 0 == groups[4]["weight_decay"]
    model = unwrap_model(trainer.model)
    backbone = {id(p) for n, p in model.named_parameters() if int(n.split(".")[1]) < 11}
    for g in groups:
        assert all((id(p) in backbone) == (g["yc_part"] == "backbone") for p in g["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))

    warmup_iters = 2  # warmup_epochs=2 x 1 batch per epoch (4 COCO8 images, batch 4)
    assert len(log) == 4
    for step, (_, lrs) in enumerate(log):
        for bb, head in zip(lrs[0::2], lrs[1::2]):
            in_bias_warmup = bb["tag"] == "bias" and step < warmup_iters and trainer.args.warmup_bias_lr > 0
            if in_bias_warmup:  # Ultralytics' absolute warmup_bias_lr: same start for both halves, by design
                continue
            assert bb["lr"] == pytest.approx(0.25 * head["lr"], rel=1e-9, abs=1e-12), (step, bb, head)
    if optimizer == "SGD":  # the bias-warmup exception is real, which is why --dry-run shows it
        first = log[0][1]
        assert first[4]["lr"] != pytest.approx(0.25 * first[5]["lr"])


def test_dry_run_shows_groups_and_warmup(tmp_path: Path, coco8_yaml: Path) -> None:
    from yolocustom.recipe import load_recipe
    from yolocustom.training import dry_run

    recipe = write_recipe(
        tmp_path,
        coco8_yaml,
        {
            "layer_lr": {"backbone_ratio": 0.5},
            "freeze": {"layers": "backbone", "epochs": 1},
            "class_weights": {"auto": "inverse"},
            "fitness": {"metric": "f1"},
        },
        epochs=3,
        optimizer="SGD",
        lr0=0.02,
        warmup_bias_lr=0.1,
    )
    text = dry_run(load_recipe(recipe))
    assert "FitnessMixin -> ClassWeightsMixin -> LayerLRMixin -> FreezeMixin -> RecipeRecordMixin" in text
    assert "unfreeze: layers [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] at the start of epoch 2" in text
    assert " bias    backbone" in text and "0.01" in text and "0.02" in text  # backbone lr = 0.5 x 0.02
    assert "warmup_bias_lr=0.1" in text
    assert "Class weights" in text and "zebra" in text
    assert "apply_to: positives - a weight w scales only the class's positive BCE terms" in text
    assert "Fitness" in text and "f1" in text
    assert not (tmp_path / "runs").exists(), "a dry run must not create a run folder"
