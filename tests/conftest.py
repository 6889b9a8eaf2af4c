"""Shared fixtures: real datasets (COCO8 from ../shared, the generated shapes set) and real Ultralytics runs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("YOLO_OFFLINE", "1")  # never probe the network from tests
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SHARED_WEIGHTS = SHARED_DATASETS.parent / "weights"  # official yolo11n-pose.pt (COCO-Pose), see its README

# Small, fast, deterministic Ultralytics settings for real training runs on CPU. nbs=batch so every batch is an
# optimizer step (with nbs=64, a 1-batch COCO8 epoch would accumulate gradients and often not step at all).
TINY_TRAIN = {
    "imgsz": 32,
    "batch": 4,
    "nbs": 4,
    "workers": 0,
    "plots": False,
    "seed": 0,
    "exist_ok": True,
    "amp": False,
}


def shared_dataset_yaml(name: str, dest: Path) -> Path:
    """Copy a ../shared dataset YAML to ``dest`` with ``path:`` pointing at the real folder (no images copied)."""
    root = SHARED_DATASETS / name
    if not root.is_dir():
        pytest.skip(f"../shared/datasets/{name} is not available")
    data = yaml.safe_load((root / f"{name}.yaml").read_text())
    data["path"] = str(root)
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"{name}.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def shared_weights(name: str) -> Path:
    """A checkpoint in ../shared/weights (skips the test when the folder is not there)."""
    path = SHARED_WEIGHTS / name
    if not path.is_file():
        pytest.skip(f"../shared/weights/{name} is not available")
    return path


# The modules that read the session's all-features run (``shapes_all_features_run``, 50 s of training).
SHARED_RUN_MODULES = ("test_train_f1_fitness.py", "test_train_per_class_fitness.py", "test_thresholds.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist (``make test`` runs ``-n auto``) send each module to one worker, so its module-scoped runs
    train once, and the modules in ``SHARED_RUN_MODULES`` to the same worker, so the all-features run trains once too.
    (xdist's own ``--dist loadgroup`` reads marks from node ids, which pytest 9.2 no longer lets it rename.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "shapes_all_features_run" if module.endswith(SHARED_RUN_MODULES) else module

    return ByModule(config, log)


@pytest.fixture(scope="session")
def coco8_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_dataset_yaml("coco8", tmp_path_factory.mktemp("coco8"))


@pytest.fixture(scope="session")
def shapes_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small version of the built-in imbalanced demo dataset (learnable in a few epochs at imgsz 64)."""
    from yolocustom.demo_data import generate_demo_dataset

    return generate_demo_dataset(
        tmp_path_factory.mktemp("shapes") / "shapes", n_train=400, n_val=100, img_size=64, seed=0, rare_ratio=5
    )


# Per-class threshold rules of the shared run (test_thresholds.py). After 12 epochs crack is found at high confidence
# (recall 0.94 up to conf 0.5), so the min_recall rule is on stain: recall 0.95 at conf 0.01, 0.90 at 0.1, 0.86 at 0.25,
# so 0.88 is reachable and its threshold falls well under Ultralytics' default 0.25.
THRESHOLD_RULES = {"stain": {"min_recall": 0.88}, "scratch": {"min_precision": 0.9}}

# Every feature on, on the imbalanced shapes set; the fitness is one class's recall (crack, the rare class, id 3), with
# patience 3 so EarlyStopping acts on it. One run serves test_train_f1_fitness.py, test_train_per_class_fitness.py and
# test_thresholds.py.
SHAPES_ALL_FEATURES = {
    "f1_logging": {"per_class": True},
    "class_weights": {"auto": "effective_number", "beta": 0.99, "max_weight": 4.0},
    "fitness": {"metric": "recall", "classes": ["crack"]},
    "freeze": {"layers": "backbone", "epochs": 2},
    "layer_lr": {"backbone_ratio": 0.5},
    "thresholds": {"classes": THRESHOLD_RULES},
}
SHAPES_ALL_FEATURES_EPOCHS = 12


@pytest.fixture(scope="session")
def shapes_all_features_run(tmp_path_factory: pytest.TempPathFactory, shapes_yaml: Path) -> dict[str, Any]:
    """One real run on the shapes data with every feature on (``SHAPES_ALL_FEATURES``), observed epoch by epoch:
    ``val`` (the validator's per-class P/R/F1, the metrics, fitness and best fitness per epoch), ``lr`` (every
    group's LR at each epoch end) and ``frozen`` (frozen parameters of layer 0 per epoch)."""
    from ultralytics.utils.torch_utils import unwrap_model

    folder = tmp_path_factory.mktemp("all_features")
    seen: dict[str, Any] = {"val": [], "lr": [], "frozen": []}

    def fit_epoch_end(trainer: Any) -> None:
        if trainer.epoch + 1 > trainer.epochs or len(seen["val"]) >= trainer.epoch + 1:
            return  # final_eval of best.pt re-fires this event (after the last epoch, or after an early stop)
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

    train = {"epochs": SHAPES_ALL_FEATURES_EPOCHS, "imgsz": 64, "batch": 16, "nbs": 16, "patience": 3}
    recipe = write_recipe(folder, shapes_yaml, SHAPES_ALL_FEATURES, **train)
    trainer = run_recipe(recipe, {"on_fit_epoch_end": fit_epoch_end, "on_train_epoch_end": epoch_end})
    return {"trainer": trainer, "seen": seen, "dir": Path(trainer.save_dir)}


def write_recipe(folder: Path, data: Path, features: dict[str, Any] | None = None, **train: Any) -> Path:
    """Write a recipe YAML for a tiny CPU run into ``folder`` and return its path."""
    recipe = {
        "model": train.pop("model", "yolo26n.yaml"),
        "data": str(data),
        "device": "cpu",
        "train": {**TINY_TRAIN, "project": str(folder / "runs"), "name": "run", **train},
        "features": features or {},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run_recipe(path: Path, callbacks: dict[str, Callable[[Any], None]] | None = None) -> Any:
    """Train a recipe through Ultralytics' normal path (``YOLO(...).train(trainer=...)``); return the trainer."""
    from ultralytics import YOLO

    from yolocustom.factory import build_trainer, train_overrides
    from yolocustom.recipe import load_recipe

    recipe = load_recipe(path)
    model = YOLO(recipe.model)
    for event, fn in (callbacks or {}).items():
        model.add_callback(event, fn)
    model.train(trainer=build_trainer(recipe), **train_overrides(recipe))
    return model.trainer


def resume_run(last: Path, callbacks: dict[str, Callable[[Any], None]] | None = None) -> Any:
    """Resume an interrupted run from ``last.pt`` the way ``yolocustom train --resume`` does; return the trainer."""
    from ultralytics import YOLO

    from yolocustom import training
    from yolocustom.factory import build_trainer

    model = YOLO(str(last))
    for event, fn in (callbacks or {}).items():
        model.add_callback(event, fn)
    model.train(resume=str(last), trainer=build_trainer(training.recipe_from_checkpoint(last)))
    return model.trainer


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV with stripped keys."""
    import csv

    with open(path, newline="") as f:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]


def run_ddp(worker: Path, *args: str, timeout: int = 600) -> Any:
    """Run ``worker`` as 2 real gloo ranks through ``torch.distributed.run``; return rank 0's ``RESULT`` JSON line.

    The ranks are fresh interpreters, as under Ultralytics' own DDP launcher.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stdout[-1000:] + out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def median_seconds(fn: Callable[[], Any], calls: int = 5) -> float:
    """Median wall-clock seconds of ``fn()`` over ``calls`` runs.

    The baseline a test measures before bounding another duration relative to it (``t <= k * base + c``): the suite
    runs on loaded machines, where any absolute bound fails (a two-line ``validate-config`` took 0.59 s of CPU beside a
    training run, 0.15 s quiet), while both sides of a relative bound slow down together.
    """
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
