"""The factory: composition order, no-feature equivalence with plain Ultralytics, DDP pickling round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from conftest import TINY_TRAIN, read_csv, run_recipe, write_recipe
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionTrainer

from yolocustom.factory import build_trainer
from yolocustom.recipe import load_recipe

ALL = {
    "f1_logging": {},
    "class_weights": {"auto": "inverse"},
    "fitness": {"metric": "recall"},
    "freeze": {"layers": [0, 1, 2], "epochs": 1},
    "layer_lr": {"backbone_ratio": 0.1},
}


def test_composition_order_and_only_enabled_features(tmp_path: Path, coco8_yaml: Path) -> None:
    cls = build_trainer(load_recipe(write_recipe(tmp_path, coco8_yaml, ALL, epochs=2)))
    names = [c.__name__ for c in cls.__mro__]
    expected = [
        "F1LoggingMixin",
        "FitnessMixin",
        "ClassWeightsMixin",
        "LayerLRMixin",
        "FreezeMixin",
        "RecipeRecordMixin",
        "DetectionTrainer",
    ]
    assert names[1:8] == expected
    off = dict(ALL, fitness={"metric": "recall", "enabled": False})
    names_off = [c.__name__ for c in build_trainer(load_recipe(write_recipe(tmp_path, coco8_yaml, off))).__mro__]
    assert "FitnessMixin" not in names_off and "F1LoggingMixin" in names_off


def test_no_features_matches_plain_ultralytics(tmp_path: Path, coco8_yaml: Path) -> None:
    """Bit for bit: same seed, same data, plain DetectionTrainer vs the factory's no-feature class."""
    ours = run_recipe(write_recipe(tmp_path / "ours", coco8_yaml, {}, epochs=2))
    plain_model = YOLO("yolo26n.yaml")
    plain_model.train(
        data=str(coco8_yaml),
        device="cpu",
        epochs=2,
        project=str(tmp_path / "plain"),
        name="run",
        trainer=DetectionTrainer,
        **TINY_TRAIN,
    )
    plain = plain_model.trainer
    ours_rows = read_csv(Path(ours.save_dir) / "results.csv")
    plain_rows = read_csv(Path(plain.save_dir) / "results.csv")
    assert [{k: v for k, v in r.items() if k != "time"} for r in ours_rows] == [
        {k: v for k, v in r.items() if k != "time"} for r in plain_rows
    ]
    ours_sd, plain_sd = ours.ema.ema.state_dict(), plain.ema.ema.state_dict()
    assert ours_sd.keys() == plain_sd.keys()
    assert all(torch.equal(ours_sd[k], plain_sd[k]) for k in ours_sd)


DDP_MODELS = (("yolo26n.yaml", "DetectionTrainer"), ("yolo26n-seg.yaml", "SegmentationTrainer"))


def test_trainer_class_survives_ultralytics_ddp_pickle(tmp_path: Path, coco8_yaml: Path) -> None:
    """Ultralytics' DDP launcher cloudpickles type(trainer) into a file that a fresh interpreter loads (one fresh
    interpreter loads the detect and the segment trainer's files)."""
    from ultralytics.utils.dist import ddp_cleanup, generate_ddp_file

    made: list[tuple[Any, Any, str, Any, Path]] = []
    code = (
        "import sys; from ultralytics.utils.patches import torch_load\nfrom yolocustom.factory import build_trainer\n"
    )
    try:
        for i, (model, _) in enumerate(DDP_MODELS):
            recipe = load_recipe(write_recipe(tmp_path / str(i), coco8_yaml, ALL, epochs=2, model=model))
            cls = build_trainer(recipe)
            stub = cls.__new__(cls)  # only what generate_ddp_file reads
            stub.args, stub.model, stub.callbacks = SimpleNamespace(epochs=2), None, {}
            script = generate_ddp_file(stub)
            state = Path(script).with_suffix(".pt")
            made.append((recipe, cls, script, stub, state))
            code += (
                f"cls = torch_load({str(state)!r}, map_location='cpu')['trainer']\n"
                "rebuilt = build_trainer(cls.yc_recipe_data)\n"
                "print([c.__name__ for c in cls.__mro__][:8]); print(cls.yc_features)\n"
                "print(cls.__new__(cls).yc_recipe.digest()); print(rebuilt.yc_features == cls.yc_features)\n"
                "print(cls.yc_task, rebuilt.__mro__[7] is cls.__mro__[7])\n"
            )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    finally:
        for _, _, script, stub, _ in made:
            ddp_cleanup(stub, script)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 5 * len(DDP_MODELS)
    for (recipe, cls, *_), (_, base), i in zip(made, DDP_MODELS, range(0, len(lines), 5)):
        assert "FreezeMixin" in lines[i] and lines[i].endswith(f"'{base}']")
        assert lines[i + 1] == str(cls.yc_features)
        assert lines[i + 2] == recipe.digest()
        assert lines[i + 3] == "True"
        assert lines[i + 4] == f"{cls.yc_task} True"
        assert cls.yc_task == ("detect" if base == "DetectionTrainer" else "segment")
