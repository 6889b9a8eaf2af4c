"""Segment, pose and obb through real Ultralytics training, every feature on: one instrumented run per task.

Each run checks what the detect tests check: the F1 column of each metric family, the recipe fitness (a mask/pose
metric) driving best_fitness and best.pt, frozen backbone weights bit-identical until the unfreeze epoch, the
backbone/head LR ratio in the optimizer groups, and the class weights inside the task's own loss (YOLO26 end-to-end:
both heads). Pose fine-tunes the official COCO-Pose checkpoint (../shared/weights/yolo11n-pose.pt) on coco8-pose at
imgsz 96, 3 epochs: its pose metrics are nonzero and move, so the pose fitness and the per-class pose fitness are
checked on real values. Obb trains from scratch on dota8 (imgsz 32, 3 epochs): its metrics stay 0 in so few steps, so
it checks the mechanics. The segment run learns (the generated shapes labelled as polygons,
imgsz 64, 8 epochs of 24 steps, about a minute): its mask metrics move and differ from the box ones, so the fitness
check there can tell a mask fitness from a box one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import read_csv, run_recipe, shared_dataset_yaml, shared_weights, write_recipe
from ultralytics.utils.patches import torch_load
from ultralytics.utils.torch_utils import unwrap_model

from yolocustom.tasks import TASKS, f1_key, metric_key

RUNS = {
    # task: (dataset, model, fitness block, expected criterion class of each head, heads, train args); "demo":
    # generated shapes; "shared:<name>": a checkpoint in ../shared/weights
    "segment": (
        "demo",
        "yolo26n-seg.yaml",
        {"weights": {"mAP50-95(M)": 2.0, "f1(M)": 1.0}},
        "SegmentLoss26",
        2,
        {"epochs": 8, "imgsz": 64, "batch": 8, "nbs": 8},
    ),
    # fine-tuned from the official COCO-Pose checkpoint (YOLO11: one head): its pose metrics are nonzero from epoch 1
    # at imgsz 96 (mAP50(P) 0.29 before training; 0 at imgsz 32, where a person is a few pixels)
    "pose": ("coco8-pose", "shared:yolo11n-pose.pt", {"metric": "f1(P)"}, "v8PoseLoss", 1, {"epochs": 3, "imgsz": 96}),
    "obb": ("dota8", "yolo26n-obb.yaml", {"weights": {"f1": 1.0, "mAP50": 1.0}}, "v8OBBLoss", 2, {"epochs": 3}),
}
RATIO = 0.5


def _fitness(feature: dict[str, Any], row: dict[str, Any]) -> float:
    weights = feature.get("weights") or {feature["metric"]: 1.0}
    total = sum(weights.values())
    return sum(w / total * float(row[metric_key(m)]) for m, w in weights.items())


@pytest.fixture(scope="module", params=list(RUNS))
def task_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    task = request.param
    name, model, fitness, _, _, train = RUNS[task]
    folder = tmp_path_factory.mktemp(task)
    if name == "demo":
        from yolocustom.demo_data import generate_demo_dataset

        data = generate_demo_dataset(folder / "data", n_train=192, n_val=48, img_size=64, rare_ratio=5, task=task)
    else:
        data = shared_dataset_yaml(name, folder / "data")
    if model.startswith("shared:"):
        model = str(shared_weights(model.removeprefix("shared:")))
    features = {
        "f1_logging": {"per_class": True},
        "class_weights": {"auto": "inverse", "max_weight": 4.0},
        "fitness": fitness,
        "freeze": {"layers": "backbone", "epochs": 1},
        "layer_lr": {"backbone_ratio": RATIO},
        "thresholds": {},
    }
    seen: dict[str, Any] = {"val": [], "lr": [], "backbone": []}

    def backbone(trainer: Any) -> dict[str, torch.Tensor]:
        prefixes = tuple(f"model.{i}." for i in trainer.yc_freeze_layers)
        state = unwrap_model(trainer.model).state_dict()
        return {k: v.detach().clone() for k, v in state.items() if k.startswith(prefixes)}

    def start(trainer: Any) -> None:
        seen["initial"] = backbone(trainer)

    def batch_end(trainer: Any) -> None:
        seen["lr"].append([(g["lr"], g.get("param_group"), g.get("yc_part")) for g in trainer.optimizer.param_groups])

    def epoch_end(trainer: Any) -> None:
        seen["backbone"].append(backbone(trainer))

    def fit_epoch_end(trainer: Any) -> None:
        if trainer.epoch + 1 > trainer.epochs:  # final_eval of best.pt re-fires this event
            return
        m = trainer.validator.metrics
        f1 = {f.suffix: getattr(m, f.attr).f1.copy() for f in TASKS[task].families}
        ap = {f.suffix: dict(zip(map(int, m.ap_class_index), getattr(m, f.attr).ap)) for f in TASKS[task].families}
        seen["val"].append({"f1": f1, "ap": ap, "metrics": dict(trainer.metrics), "fitness": trainer.fitness})

    recipe = write_recipe(folder, data, features, model=model, **train)
    trainer = run_recipe(
        recipe,
        {
            "on_pretrain_routine_end": start,
            "on_train_batch_end": batch_end,
            "on_train_epoch_end": epoch_end,
            "on_fit_epoch_end": fit_epoch_end,
        },
    )
    return {"task": task, "trainer": trainer, "seen": seen, "dir": Path(trainer.save_dir), "fitness": fitness}


def test_task_trainer_is_the_base(task_run: dict[str, Any]) -> None:
    trainer = task_run["trainer"]
    base = TASKS[task_run["task"]].trainer_class()
    assert isinstance(trainer, base) and type(trainer).__mro__[len(trainer.yc_features) + 2] is base
    assert trainer.args.task == task_run["task"] and trainer.yc_task == task_run["task"]


def test_f1_column_per_family_from_row_1(task_run: dict[str, Any]) -> None:
    families = TASKS[task_run["task"]].families
    rows = read_csv(task_run["dir"] / "results.csv")
    seen = task_run["seen"]["val"]
    assert len(rows) == len(seen) == task_run["trainer"].epochs
    header = list(rows[0])
    for family in families:
        key = f1_key(family)
        assert key in header
        for row, val in zip(rows, seen):
            per_class = val["f1"][family.suffix]
            assert float(row[key]) == pytest.approx(float(per_class.mean()) if len(per_class) else 0.0, abs=2e-5)
            assert val["metrics"][key] == pytest.approx(float(row[key]), abs=1e-5)
    best = torch_load(task_run["dir"] / "weights" / "best.pt", map_location="cpu")
    assert all(f1_key(f) in best["train_metrics"] for f in families)
    per_class = read_csv(task_run["dir"] / "f1_per_class.csv")
    names = task_run["trainer"].data["names"].values()
    expected = list(names) if len(families) == 1 else [f"{n}({f.suffix})" for n in names for f in families]
    assert list(per_class[0]) == ["epoch", *expected] and len(per_class) == len(rows)


def test_recipe_fitness_drives_best(task_run: dict[str, Any]) -> None:
    trainer, seen = task_run["trainer"], task_run["seen"]["val"]
    rows = read_csv(task_run["dir"] / "results.csv")
    scores = [_fitness(task_run["fitness"], r) for r in rows]
    assert all(v["fitness"] == pytest.approx(s, abs=1e-5) for v, s in zip(seen, scores))
    assert trainer.best_fitness == pytest.approx(max(scores), abs=1e-5)
    assert trainer.stopper.best_fitness == pytest.approx(max(scores), abs=1e-5)
    best = torch_load(task_run["dir"] / "weights" / "best.pt", map_location="cpu")
    assert best["train_metrics"]["fitness"] == pytest.approx(max(scores), abs=1e-5)
    if RUNS[task_run["task"]][0] == "demo":  # a run that learns: the check can tell a mask fitness from a box one
        best_epoch = int(max(range(len(scores)), key=lambda i: (scores[i], -i)))
        assert len({round(x, 5) for x in scores}) > 2 and max(scores) > 0.1
        boxes = [_fitness({"weights": {"mAP50-95": 2.0, "f1": 1.0}}, r) for r in rows]
        assert all(abs(b - m) > 1e-4 for b, m in zip(boxes, scores) if m > 0), "mask fitness equals the box one"
        for key in ("metrics/mAP50-95(M)", "metrics/F1(M)", "metrics/mAP50-95(B)"):
            assert best["train_metrics"][key] == pytest.approx(float(rows[best_epoch][key]), abs=1e-5)
    if task_run["task"] == "pose":  # fine-tuned from COCO-Pose: the recipe's f1(P) fitness ranks real, moving metrics
        assert all(float(r[metric_key("mAP50(P)")]) > 0 for r in rows), [r[metric_key("mAP50(P)")] for r in rows]
        assert all(s > 0 for s in scores) and len({round(x, 5) for x in scores}) > 1, scores
        boxes = [float(r[metric_key("f1")]) for r in rows]
        assert any(abs(b - p) > 1e-4 for b, p in zip(boxes, scores)), "pose fitness equals the box F1"


def test_metrics_per_class_has_every_family(task_run: dict[str, Any]) -> None:
    """metrics_per_class.csv carries the box columns and, per extra family, its own (``AP50-95(M)``...), equal to the
    validator's per-class arrays; a per-class fitness on ``recall(M)``/``mAP50-95(P)`` reads that family's table."""
    from yolocustom.features.fitness import PER_CLASS_COLUMNS, per_class_fitness
    from yolocustom.recipe import FitnessFeature

    families = TASKS[task_run["task"]].families
    rows = read_csv(task_run["dir"] / "metrics_per_class.csv")
    extra = [f.suffix for f in families if f.suffix != "B"]
    assert list(rows[0]) == [*PER_CLASS_COLUMNS, *(f"{c}({s})" for s in extra for c in PER_CLASS_COLUMNS[4:])]
    seen = task_run["seen"]["val"]
    epochs = task_run["trainer"].epochs
    assert [int(r["epoch"]) for r in rows] == [
        e for e in range(1, epochs + 1) for _ in task_run["trainer"].data["names"]
    ]
    last = {int(r["class_id"]): r for r in rows if int(r["epoch"]) == epochs}
    tables: dict[str, dict[int, dict[str, float]]] = {}
    for f in families:
        column = "AP50-95" if f.suffix == "B" else f"AP50-95({f.suffix})"
        for c, ap in seen[-1]["ap"][f.suffix].items():
            assert float(last[c][column]) == pytest.approx(float(ap), abs=1e-6)
        tables[f.suffix] = {c: {"AP50-95": float(ap)} for c, ap in seen[-1]["ap"][f.suffix].items()}
    present = sorted(seen[-1]["ap"]["B"])
    for f in families:
        name = "mAP50-95" if f.suffix == "B" else f"mAP50-95({f.suffix})"
        feature = FitnessFeature(metric=name, classes=present[:1])
        assert per_class_fitness(feature, present[:1], tables) == pytest.approx(tables[f.suffix][present[0]]["AP50-95"])
    if task_run["task"] == "pose":  # fine-tuned: the per-class pose fitness reads a nonzero AP, unlike the box one
        assert tables["P"][present[0]]["AP50-95"] > 0 and float(last[present[0]]["AP50-95(P)"]) > 0
        assert tables["P"][present[0]]["AP50-95"] != pytest.approx(tables["B"][present[0]]["AP50-95"], abs=1e-4)


def test_frozen_until_unfreeze_then_trains(task_run: dict[str, Any]) -> None:
    seen = task_run["seen"]
    initial, per_epoch = seen["initial"], seen["backbone"]
    assert len(initial) > 20 and len(per_epoch) == task_run["trainer"].epochs
    weights = [k for k in initial if k.endswith((".weight", ".bias"))]
    assert all(torch.equal(initial[k], per_epoch[0][k]) for k in initial), "frozen backbone moved in epoch 1"
    moved = [k for k in weights if not torch.equal(per_epoch[0][k], per_epoch[-1][k])]
    assert len(moved) > 0.9 * len(weights), "the backbone did not train after the unfreeze"
    assert task_run["trainer"].yc_freeze_layers == list(range(len(task_run["trainer"].model.yaml["backbone"])))


def test_layer_lr_ratio_in_groups(task_run: dict[str, Any]) -> None:
    groups = task_run["trainer"].optimizer.param_groups
    assert [g["yc_part"] for g in groups] == ["backbone", "head"] * 3
    assert [g["initial_lr"] for g in groups[0::2]] == pytest.approx([RATIO * g["initial_lr"] for g in groups[1::2]])
    checked = 0
    for lrs in task_run["seen"]["lr"]:
        for (bb, tag, part), (head, _, _) in zip(lrs[0::2], lrs[1::2]):
            assert part == "backbone"
            if tag != "bias":  # bias groups warm up from Ultralytics' absolute warmup_bias_lr
                assert bb == pytest.approx(RATIO * head, rel=1e-9, abs=1e-12)
                checked += head > 0
    assert checked > 0


def test_class_weights_in_the_task_criterion(task_run: dict[str, Any]) -> None:
    """The default ``apply_to: positives`` puts the weights as ``pos_weight`` into the task's own loss (both YOLO26
    end-to-end heads; YOLO11's one) and the EMA's copy; Ultralytics' whole-term ``class_weights`` hook stays unused."""
    from yolocustom.features.class_weights import detection_losses

    trainer = task_run["trainer"]
    model = unwrap_model(trainer.model)
    counts = [float(c) for c in trainer.get_class_counts()]
    present = [c for c in counts if c > 0]
    assert len(present) >= 1
    weights = trainer.yc_class_weights.cpu()
    assert weights.shape == (len(counts),) and float(weights.max()) <= 4.0 + 1e-6
    if len(set(present)) > 1:  # inverse frequency: the rarest present class weighs most
        rare, common = counts.index(min(present)), counts.index(max(present))
        assert float(weights[rare]) > float(weights[common])
    criterion = model.criterion
    heads = [criterion.one2many, criterion.one2one] if hasattr(criterion, "one2one") else [criterion]
    n_heads = RUNS[task_run["task"]][4]
    assert len(heads) == n_heads, "YOLO26 task models train with the end-to-end loss (2 heads), YOLO11 with one"
    assert model.class_weights is None
    for head in heads:
        assert type(head).__name__ == RUNS[task_run["task"]][3]
        assert torch.allclose(head.bce.pos_weight.flatten().cpu(), weights, atol=1e-6)
    ema_heads = list(detection_losses(trainer.ema.ema.criterion))
    assert len(ema_heads) == n_heads
    assert all(torch.allclose(h.bce.pos_weight.flatten().cpu(), weights, atol=1e-6) for h in ema_heads)


def test_run_folder_and_dry_run_name_the_task(tmp_path: Path) -> None:
    from yolocustom.recipe import load_recipe
    from yolocustom.training import dry_run, run_folder

    data = shared_dataset_yaml("coco8-seg", tmp_path / "data")
    path = write_recipe(tmp_path, data, {"fitness": {"metric": "mAP50(M)"}}, epochs=1, model="yolo26n-seg.yaml")
    recipe = load_recipe(path, ["train.project=relative-proj"])
    assert run_folder(recipe, "segment").parts[-3:] == ("segment", "relative-proj", "run")
    text = dry_run(load_recipe(path))
    assert "-> RecipeRecordMixin -> SegmentationTrainer (task: segment)" in text
    assert "mAP50(M)" in text


def test_segment_from_pt_and_resume(tmp_path: Path) -> None:
    """A ``.pt`` model's task comes from its checkpoint (no -seg in the name); a stopped run resumes on its trainer."""
    import shutil

    from yolocustom import training
    from yolocustom.recipe import load_recipe

    data = shared_dataset_yaml("coco8-seg", tmp_path / "data")
    features = {"f1_logging": {"per_class": False}, "fitness": {"metric": "f1(M)"}, "freeze": {"epochs": 1}}

    def stop_after_first_epoch(trainer: Any) -> None:
        if trainer.epoch == 0:
            raise KeyboardInterrupt  # like a kill right after epoch 1's checkpoint

    first = write_recipe(tmp_path / "a", data, features, epochs=2, model="yolo26n-seg.yaml")
    with pytest.raises(KeyboardInterrupt):
        run_recipe(first, {"on_fit_epoch_end": stop_after_first_epoch})
    last = tmp_path / "a" / "runs" / "run" / "weights" / "last.pt"
    outcome = training.train(training.recipe_from_checkpoint(last), resume_from=last)
    rows = read_csv(outcome.save_dir / "results.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2] and "metrics/F1(M)" in rows[0]

    weights = tmp_path / "pretrained.pt"
    shutil.copy(outcome.last, weights)
    second = write_recipe(tmp_path / "b", data, features, epochs=2, model=str(weights))
    outcome = training.train(load_recipe(second))
    header = list(read_csv(outcome.save_dir / "results.csv")[0])
    assert "metrics/F1(M)" in header and "metrics/mAP50-95(M)" in header
    ckpt = torch_load(outcome.last, map_location="cpu")
    assert ckpt["train_args"]["task"] == "segment"


def test_class_weights_scale_the_task_loss(task_run: dict[str, Any]) -> None:
    """The task's own criterion (every head) multiplies the classification BCE by ``model.class_weights``: on a
    real batch, doubling every weight doubles the cls loss, and the recipe's weights change it."""
    import copy

    trainer = task_run["trainer"]
    model = copy.deepcopy(unwrap_model(trainer.model)).train()
    batch = trainer.preprocess_batch(next(iter(trainer.train_loader)))
    recipe_weights = trainer.yc_class_weights.cpu().clone()  # tried here with the whole-term hook (all)

    def cls_loss(weights: torch.Tensor) -> float:
        model.class_weights = weights
        model.criterion = None  # rebuilt by model.loss(), reading model.class_weights as Ultralytics does
        torch.manual_seed(0)
        with torch.no_grad():
            _, items = model.loss(batch)
        return float(items["cls_loss"])

    ones = cls_loss(torch.ones_like(recipe_weights))
    assert ones > 0
    assert cls_loss(2 * torch.ones_like(recipe_weights)) == pytest.approx(2 * ones, rel=1e-5)
    if len(set(recipe_weights.tolist())) > 1:  # coco8-pose has one class: its mean-normalised weight is 1
        assert cls_loss(recipe_weights) != pytest.approx(ones, rel=1e-4)


def test_thresholds_on_the_fitness_family(task_run: dict[str, Any]) -> None:
    """thresholds.yaml is chosen on the recipe's fitness family (masks for segment, keypoints for pose, boxes for obb)
    from best.pt's validation: each class at its smoothed F1 curve's argmax, recall within one instance of the curve;
    classes without val instances (dota8) or never found (the 3-epoch pose/obb runs) get the global threshold."""
    import numpy as np
    import yaml
    from ultralytics.utils.metrics import smooth

    from yolocustom.tasks import FAMILIES
    from yolocustom.thresholds import SMOOTH, THRESHOLDS_FILE

    data = yaml.safe_load((task_run["dir"] / THRESHOLDS_FILE).read_text())
    assert data["family"] == {"segment": "M", "pose": "P", "obb": "B"}[task_run["task"]]
    best = torch_load(task_run["dir"] / "weights" / "best.pt", map_location="cpu")
    assert best["model"].yolocustom["thresholds"] == data
    metrics = task_run["trainer"].yc_threshold_metrics  # best.pt's validation, letterboxed as predict does
    metric = getattr(metrics, FAMILIES[data["family"]].attr)
    rows = {int(c): i for i, c in enumerate(metric.ap_class_index)}
    learned = 0
    for e in data["classes"].values():
        row = rows.get(e["id"])
        if row is None or metric.f1_curve[row].max() <= 0:
            assert e["threshold"] == data["global_conf"] and e["rule"] == ("global" if row is None else "f1")
            continue
        i = int(np.argmax(np.where(metric.px > 0, smooth(metric.f1_curve[row], SMOOTH), -np.inf)))
        assert e["threshold"] == float(metric.px[i]) and e["rule"] == "f1"
        n = int(metrics.nt_per_class[e["id"]])
        assert -1e-6 <= float(metric.r_curve[row, i]) - e["recall"] <= 1 / n + 1e-6
        learned += 1
    if RUNS[task_run["task"]][0] == "demo":  # the segment run learns: its mask curves are not all zero
        assert learned >= 2
        i = int(np.argmax(np.where(metric.px > 0, smooth(metric.f1_curve.mean(0), SMOOTH), -np.inf)))
        assert data["global_conf"] == float(metric.px[i])
