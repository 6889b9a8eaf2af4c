"""Gradual unfreezing with an LR ramp, through real training (and a resume in the middle of a ramp)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import resume_run, run_recipe, write_recipe
from ultralytics.utils.torch_utils import unwrap_model

from yolocustom.features.freeze import STAGE_KEY, ramp_factor
from yolocustom.features.layer_lr import PART_KEY

STAGES = [{"epoch": 1, "layers": [0, 1, 2]}, {"epoch": 3, "layers": [3, 4, 5]}]
RAMP = {"epochs": 1.5, "start": 0.2}
FEATURES = {"freeze": {"schedule": STAGES, "ramp": RAMP}, "layer_lr": {"backbone_ratio": 0.5}}
TRAIN = {"epochs": 5, "batch": 2, "nbs": 2, "optimizer": "SGD", "lr0": 0.01}  # COCO8: 2 batches per epoch


def _state(trainer: Any, layers: list[int]) -> dict[str, torch.Tensor]:
    prefixes = [f"model.{i}." for i in layers]
    sd = unwrap_model(trainer.model).state_dict()
    return {k: v.detach().clone() for k, v in sd.items() if any(k.startswith(p) for p in prefixes)}


def _observe(seen: dict[str, Any]) -> dict[str, Any]:
    def start(trainer: Any) -> None:
        seen.setdefault("initial", [_state(trainer, s["layers"]) for s in STAGES])
        seen["groups"] = len(trainer.optimizer.param_groups)

    def batch_end(trainer: Any) -> None:
        groups = [
            (g.get(STAGE_KEY), g.get(PART_KEY), g["param_group"], g["lr"]) for g in trainer.optimizer.param_groups
        ]
        seen.setdefault("lr", {})[(trainer.epoch, trainer.yc_batch - 1)] = groups

    def epoch_end(trainer: Any) -> None:
        seen.setdefault("epochs", {})[trainer.epoch] = [_state(trainer, s["layers"]) for s in STAGES]

    return {"on_pretrain_routine_end": start, "on_train_batch_end": batch_end, "on_train_epoch_end": epoch_end}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, coco8_yaml: Path) -> dict[str, Any]:
    """An uninterrupted 5-epoch run, and the same run stopped after epoch 4 (stage 2 mid-ramp) and resumed."""
    folder = tmp_path_factory.mktemp("schedule")
    full: dict[str, Any] = {}
    run_recipe(write_recipe(folder / "a", coco8_yaml, FEATURES, **TRAIN), _observe(full))

    part: dict[str, Any] = {}

    def stop(trainer: Any) -> None:
        if trainer.epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        recipe = write_recipe(folder / "b", coco8_yaml, FEATURES, **TRAIN)
        run_recipe(recipe, {**_observe(part), "on_fit_epoch_end": stop})
    last = folder / "b" / "runs" / "run" / "weights" / "last.pt"
    resumed: dict[str, Any] = {}
    resume_run(last, _observe(resumed))
    return {"full": full, "part": part, "resumed": resumed}


def test_each_stage_is_bit_identical_until_its_epoch(runs: dict[str, Any]) -> None:
    seen = runs["full"]
    for n, stage in enumerate(STAGES):
        initial = seen["initial"][n]
        assert any(k.endswith("running_mean") for k in initial)
        for epoch in range(5):
            same = all(torch.equal(initial[k], seen["epochs"][epoch][n][k]) for k in initial)
            assert same == (epoch < stage["epoch"]), (n, epoch)  # frozen before its epoch, trained from it on


def _lr(groups: list[tuple[Any, ...]], stage: int, part: str) -> float:
    return next(lr for s, p, tag, lr in groups if s == stage and p == part and tag == "weight")


def test_ramp_follows_the_line_and_the_layer_lr_ratio_holds_after(runs: dict[str, Any]) -> None:
    checked = 0
    for (epoch, i), groups in runs["full"]["lr"].items():
        head = _lr(groups, -1, "head")  # not in any stage: the plain schedule
        assert _lr(groups, -1, "backbone") == pytest.approx(0.5 * head, rel=1e-9)
        for n, stage in enumerate(STAGES):
            progress = epoch - stage["epoch"] + i / 2
            factor = ramp_factor(progress, RAMP["epochs"], RAMP["start"])
            assert _lr(groups, n, "backbone") == pytest.approx(0.5 * head * factor, rel=1e-9), (epoch, i, n)
            checked += 0 <= progress < RAMP["epochs"]
    assert checked == 6  # three steps on each stage's ramp: 0.2, 0.47, 0.73 of the LR, then 1.0
    after = runs["full"]["lr"][(4, 1)]  # stage 1 is 3 epochs past its ramp: backbone = head x ratio exactly
    assert _lr(after, 0, "backbone") == pytest.approx(0.5 * _lr(after, -1, "head"), rel=1e-9)


def test_resume_mid_ramp_continues_it(runs: dict[str, Any]) -> None:
    full, part, resumed = runs["full"], runs["part"], runs["resumed"]
    assert resumed["groups"] == full["groups"]  # optimizer groups stable across resume
    assert sorted(resumed["lr"]) == [(4, 0), (4, 1)]
    for key, groups in resumed["lr"].items():
        assert groups == full["lr"][key]  # same LRs, ramp factor 0.73 then 1.0 for stage 2
    assert part["lr"][(3, 1)] == full["lr"][(3, 1)]


@pytest.mark.parametrize(
    ("freeze", "message"),
    [
        ({"schedule": [{"epoch": 2, "layers": [0]}, {"epoch": 1, "layers": [1]}]}, "strictly increasing 'epoch'"),
        ({"schedule": [{"epoch": 1, "layers": 3}, {"epoch": 2, "layers": [2, 5]}]}, "found layer 2 in stages 0 and 1"),
        ({"schedule": [{"epoch": 1, "layers": [0]}, {"epoch": 5, "layers": [1]}]}, "schedule.1.epoch: expected fewer"),
        ({"schedule": [{"epoch": 1, "layers": [0]}], "epochs": 1}, "found both"),
        ({"schedule": [{"epoch": 1, "layers": [0]}], "layers": [1]}, "'layers' belongs inside each schedule stage"),
        ({"epochs": 1, "ramp": {"epochs": 1, "start": 1.0}}, "freeze.ramp.start: expected a value less than 1"),
    ],
)
def test_schedule_validation(freeze: dict[str, Any], message: str) -> None:
    from yolocustom.errors import RecipeError
    from yolocustom.recipe import validate_recipe

    data = {"model": "yolo26n.yaml", "data": "coco8.yaml", "train": {"epochs": 5}, "features": {"freeze": freeze}}
    with pytest.raises(RecipeError) as e:
        validate_recipe(data)
    assert message in str(e.value) and "features.freeze" in str(e.value)


def test_dry_run_shows_stages_and_ramp(tmp_path: Path, coco8_yaml: Path) -> None:
    from yolocustom.recipe import load_recipe
    from yolocustom.training import dry_run

    text = dry_run(load_recipe(write_recipe(tmp_path, coco8_yaml, FEATURES, **TRAIN)))
    assert "unfreeze: layers [0, 1, 2] at the start of epoch 2 (1-based)" in text
    assert "unfreeze: layers [3, 4, 5] at the start of epoch 4 (1-based)" in text
    assert "ramp: after each stage unfreezes, its layers' LR rises linearly per iteration from 0.2 x" in text
    assert " stage" in text
