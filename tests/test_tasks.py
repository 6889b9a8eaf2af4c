"""Segment, pose and obb: the task comes from the model, recipes are checked against it, labels are counted as each
task's Ultralytics dataset loads them, and data in the wrong format is refused before any model is built."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import SHARED_DATASETS, shared_dataset_yaml, write_recipe
from test_compute_weights import _dataset
from typer.testing import CliRunner

from yolocustom import cli, tasks
from yolocustom.datasets import resolve_dataset, split_image_paths
from yolocustom.errors import DataError, UserError
from yolocustom.label_counts import check_task_labels, count_labels
from yolocustom.recipe import FitnessMetric, validate_recipe

# ------------------------------------------------------------------------------------------------ task from the model


@pytest.mark.parametrize(
    ("model", "task"),
    [
        ("yolo26n.yaml", "detect"),
        ("yolo26n-seg.yaml", "segment"),
        ("yolo26s-pose.yaml", "pose"),
        ("yolo26n-obb.yaml", "obb"),
        ("yolo11n-seg.yaml", "segment"),
        ("yolov8n-pose.yaml", "pose"),
        ("yolov8n-obb.yaml", "obb"),
        ("yolov8n-cls.yaml", "classify"),
        ("yolo26n-sem.yaml", "semantic"),
    ],
)
def test_task_from_model_yaml_matches_ultralytics(model: str, task: str) -> None:
    """Read without torch, the task must be the one Ultralytics' own ``YOLO(model).task`` gives."""
    from ultralytics import YOLO

    assert tasks.model_task(model) == task
    if task in tasks.TASKS:
        assert YOLO(model).task == task


def test_task_from_local_yaml_head_not_name(tmp_path: Path) -> None:
    """A renamed YAML is read by its head module (Ultralytics' cfg2task), not its file name."""
    src = tasks.find_model_yaml("yolo26n-pose.yaml")
    assert src is not None
    local = tmp_path / "mymodel.yaml"
    shutil.copy(src, local)
    assert tasks.model_task(str(local)) == "pose"


def test_task_from_checkpoint(tmp_path: Path) -> None:
    import torch
    from ultralytics.nn.tasks import SegmentationModel

    ckpt = tmp_path / "weights.pt"  # no -seg in the name: the checkpoint decides
    torch.save({"model": SegmentationModel("yolo26n-seg.yaml", nc=2, verbose=False)}, ckpt)
    assert tasks.model_task(str(ckpt)) is None  # unknown without torch
    assert tasks.checkpoint_task(ckpt) == "segment"
    recipe = validate_recipe({"model": str(ckpt), "data": "coco8.yaml", "features": {"fitness": {"metric": "f1(P)"}}})
    with pytest.raises(UserError, match=r"'f1\(P\)' needs keypoint metrics \(P\), which a segment model"):
        tasks.resolve_task(recipe)  # what train and --dry-run call before any compute
    assert tasks.resolve_task(validate_recipe({"model": str(ckpt), "data": "x.yaml", "task": "segment"})) == "segment"


def test_fitness_metric_names_match_the_table() -> None:
    from typing import get_args

    assert list(get_args(FitnessMetric)) == tasks.fitness_metric_names()
    assert tasks.metric_key("f1") == "metrics/F1(B)"
    assert tasks.metric_key("mAP50-95(M)") == "metrics/mAP50-95(M)"
    assert tasks.metric_key("recall(P)") == "metrics/recall(P)"


# ------------------------------------------------------------------------------------------------ recipe checks (CLI)


def _validate(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return CliRunner().invoke(cli.app, ["validate-config", str(path)])


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (
            "model: yolo26n.yaml\nfeatures:\n  fitness: {metric: mAP50-95(M)}\n",
            ["features.fitness.metric", "'mAP50-95(M)' needs mask metrics (M), which a detect model does not produce"],
        ),
        (
            "model: yolo26n-obb.yaml\nfeatures:\n  fitness:\n    weights: {f1: 1, recall(P): 1}\n",
            ["features.fitness.weights.recall(P)", "an obb model does not produce", "reports (B)"],
        ),
        (
            "model: yolo26n-seg.yaml\ntask: pose\n",
            ["task: expected 'segment' (the task of yolo26n-seg.yaml), found 'pose'"],
        ),
        (
            "model: yolo26n-cls.yaml\n",
            ["model:", "not supported: its trainer (ClassificationTrainer) is not a DetectionTrainer"],
        ),
        ("model: yolo26n.yaml\ntask: classify\n", ["task:", "not supported", "ClassificationTrainer"]),
        ("model: yolo26n.yaml\ntask: segmnt\n", ["task:", "did you mean 'segment'?"]),
    ],
)
def test_task_recipe_errors(tmp_path: Path, body: str, fragments: list[str]) -> None:
    result = _validate(tmp_path, "data: coco8.yaml\n" + body)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    for fragment in fragments:
        assert fragment in result.output


@pytest.mark.parametrize(
    "body",
    [
        "model: yolo26n-seg.yaml\nfeatures:\n  fitness: {weights: {mAP50-95(M): 0.7, f1(M): 0.2, mAP50: 0.1}}\n",
        "model: yolo26n-pose.yaml\ntask: pose\nfeatures:\n  fitness: {metric: f1(P)}\n",
        "model: yolo26n-obb.yaml\nfeatures:\n  fitness: {metric: mAP50(B)}\n",
    ],
)
def test_task_recipes_valid(tmp_path: Path, body: str) -> None:
    result = _validate(tmp_path, "data: coco8.yaml\n" + body)
    assert result.exit_code == 0 and result.output.endswith(": ok\n"), result.output


# ------------------------------------------------------------------------------------- counts equal Ultralytics' own


def _ultralytics_counts(img_path: str, data: dict[str, Any], task: str) -> tuple[list[int], int] | str:
    """Per-class counts and kept images of Ultralytics' YOLODataset for ``task``, or its error message."""
    from ultralytics.data import YOLODataset

    try:
        ds = YOLODataset(img_path=img_path, data=data, task=task, augment=False, imgsz=64)
    except (ValueError, RuntimeError) as e:
        return str(e)
    counts = [0] * len(data["names"])
    for lb in ds.labels:
        for c in lb["cls"].reshape(-1):
            counts[int(c)] += 1
    return counts, len(ds.labels)


def _clear_caches(root: Path) -> None:
    for cache in root.rglob("*.cache"):
        cache.unlink()


@pytest.mark.parametrize(("name", "task"), [("coco8-seg", "segment"), ("coco8-pose", "pose"), ("dota8", "obb")])
@pytest.mark.parametrize("split", ["train", "val"])
def test_real_sets_count_like_ultralytics(tmp_path: Path, name: str, task: str, split: str) -> None:
    root = tmp_path / name
    shutil.copytree(SHARED_DATASETS / name, root, ignore=shutil.ignore_patterns("*.cache"))
    spec = resolve_dataset(_retarget(tmp_path, name, root))
    images = split_image_paths(spec, split)
    ours = check_task_labels(spec, images, task, use_cache=False)
    data = {"names": spec.names, "channels": 3, **({"kpt_shape": spec.kpt_shape} if spec.kpt_shape else {})}
    ref = _ultralytics_counts(str(root / "images" / split), data, task)
    assert isinstance(ref, tuple), ref
    assert (ours.counts, ours.images) == ref and ours.instances > 0
    cached = check_task_labels(spec, images, task)  # Ultralytics just wrote its cache: the same counts from it
    assert cached.source == "cache" and cached.counts == ours.counts


def _retarget(tmp_path: Path, name: str, root: Path) -> Path:
    data = yaml.safe_load((root / f"{name}.yaml").read_text())
    data["path"] = str(root)
    out = tmp_path / f"{name}-local.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


SEG = "0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3"
KPT = " ".join(["0.5 0.5 2"] * 3)  # kpt_shape [3, 3]: 14 values per row
OBB = "0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3"
CORRUPT: dict[str, dict[str, bytes | None]] = {
    "segment": {
        "ok": f"0 {SEG}\n1 0.5 0.5 0.7 0.5 0.6 0.7\n".encode(),
        "dup": f"2 {SEG}\n2 {SEG}\n0 {SEG}\n".encode(),
        "too_few_points": f"0 {SEG}\n1 0.5 0.5 0.6 0.6\n".encode(),  # 2 points read as a box row: file rejected
        "one_point": f"0 {SEG}\n2 0.5 0.5\n".encode(),  # kept by Ultralytics: a zero-size box
        "mixed": f"0 {SEG}\n1 0.5 0.5 0.1 0.1\n".encode(),
        "odd_coords": f"0 {SEG} 0.4\n".encode(),  # 9 coordinates cannot be points
        "class_beyond_nc": f"5 {SEG}\n".encode(),
        "background": b"",
        "no_label": None,
    },
    "pose": {
        "ok": f"0 0.5 0.5 0.2 0.2 {KPT}\n1 0.3 0.3 0.1 0.1 {KPT}\n".encode(),
        "dup": f"2 0.5 0.5 0.2 0.2 {KPT}\n2 0.5 0.5 0.2 0.2 {KPT}\n".encode(),
        "wrong_width": b"0 0.5 0.5 0.2 0.2 0.5 0.5 2 0.5 0.5\n",
        "box_only": b"1 0.5 0.5 0.2 0.2\n",
        "kpt_out_of_bounds": f"0 0.5 0.5 0.2 0.2 1.5 0.5 2 {' '.join(['0.5 0.5 2'] * 2)}\n".encode(),
        "class_beyond_nc": f"3 0.5 0.5 0.2 0.2 {KPT}\n".encode(),
        "background": b"",
    },
    "obb": {
        "ok": f"0 {OBB}\n1 0.5 0.5 0.7 0.5 0.7 0.7 0.5 0.7\n".encode(),
        "dup": f"2 {OBB}\n2 {OBB}\n".encode(),
        "five_values_mixed": f"0 {OBB}\n1 0.5 0.5 0.1 0.1\n".encode(),
        "seven_coords": f"0 {OBB[:-4]}\n".encode(),
        "class_beyond_nc": f"4 {OBB}\n".encode(),
        "background": b"",
    },
}


@pytest.mark.parametrize("task", ["segment", "pose", "obb"])
def test_corrupt_variants_count_like_ultralytics(tmp_path: Path, task: str) -> None:
    names = {0: "a", 1: "b", 2: "c"}
    yaml_file = _dataset(tmp_path / task, CORRUPT[task], names=names)
    if task == "pose":
        data = yaml.safe_load(yaml_file.read_text())
        yaml_file.write_text(yaml.safe_dump({**data, "kpt_shape": [3, 3]}))
    spec = resolve_dataset(yaml_file)
    images = split_image_paths(spec, "train")
    ours = count_labels(images, spec.nc, kpt_shape=spec.kpt_shape, task=task, use_cache=False)
    data = {"names": names, "channels": 3, **({"kpt_shape": [3, 3]} if task == "pose" else {})}
    ref = _ultralytics_counts(str(tmp_path / task / "images" / "train"), data, task)
    assert isinstance(ref, tuple), ref
    assert (ours.counts, ours.images) == ref
    assert ours.duplicates == 1 and len(ours.rejected) >= 3
    assert ours.box_file_count == 0 or task == "pose"  # pose rows are boxes + keypoints, never polygons
    _clear_caches(tmp_path)
    assert count_labels(images, spec.nc, kpt_shape=spec.kpt_shape, task=task, workers=2, use_cache=False) == ours


@pytest.mark.parametrize("task", ["segment", "obb"])
def test_box_labels_refused_for_polygon_tasks_as_ultralytics_refuses(tmp_path: Path, task: str) -> None:
    labels: dict[str, bytes | None] = {"poly": f"0 {SEG}\n".encode(), "box": b"1 0.5 0.5 0.2 0.2\n"}
    yaml_file = _dataset(tmp_path, labels, names={0: "a", 1: "b"})
    spec = resolve_dataset(yaml_file)
    images = split_image_paths(spec, "train")
    ref = _ultralytics_counts(str(tmp_path / "images" / "train"), {"names": spec.names, "channels": 3}, task)
    assert isinstance(ref, str) and "requires equal numbers of boxes and segments" in ref
    with pytest.raises(DataError, match=rf"box\.txt: an? {task} model needs rows 'class x1 y1 x2 y2"):
        check_task_labels(spec, images, task, use_cache=False)
    assert check_task_labels(spec, images, "detect", use_cache=False).instances == 2  # fine for detect


# ------------------------------------------------------------------------------- wrong data: refused before compute


def _train_cli(recipe: Path) -> Any:
    return CliRunner().invoke(cli.app, ["train", str(recipe)])


def _pose_yaml(tmp_path: Path, kpt_shape: Any) -> Path:
    data = yaml.safe_load(shared_dataset_yaml("coco8-pose", tmp_path / "src").read_text())
    if kpt_shape is None:
        data.pop("kpt_shape")
        data.pop("flip_idx")
    else:
        data["kpt_shape"] = kpt_shape
    out = tmp_path / "pose.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


@pytest.mark.parametrize(
    ("model", "data", "fragments"),
    [
        ("yolo26n-seg.yaml", "coco8", ["labels/train/000000000009.txt", "a segment model needs rows 'class x1 y1"]),
        ("yolo26n-obb.yaml", "coco8", ["labels/train/", "an obb model needs rows 'class x1 y1 x2 y2 x3 y3 x4 y4'"]),
        ("yolo26n-pose.yaml", "no-kpt", ["pose.yaml", "a pose model needs 'kpt_shape: [keypoints, dims]'"]),
        ("yolo26n-pose.yaml", "kpt-16", ["labels/train/", ":1: a pose model with kpt_shape [16, 3]", "= 53 values"]),
    ],
)
def test_wrong_data_for_task_refused_before_any_model(
    tmp_path: Path, model: str, data: str, fragments: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ultralytics.engine.model

    def no_model(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was built for data that cannot train")

    monkeypatch.setattr(ultralytics.engine.model.Model, "__init__", no_model)
    if data == "coco8":
        data_yaml = shared_dataset_yaml("coco8", tmp_path / "d")
    else:
        data_yaml = _pose_yaml(tmp_path, None if data == "no-kpt" else [16, 3])
    recipe = write_recipe(tmp_path, data_yaml, {}, epochs=1, model=model)
    result = _train_cli(recipe)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "AssertionError" not in result.output
    for fragment in fragments:
        assert fragment in result.output
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------------------- offline demo data


@pytest.mark.parametrize("task", ["segment", "pose", "obb"])
def test_demo_data_per_task_loads_in_ultralytics(tmp_path: Path, task: str) -> None:
    from yolocustom.demo_data import CLASS_NAMES, RARE_CLASS, count_instances

    out = tmp_path / task
    result = CliRunner().invoke(
        cli.app,
        ["demo-data", "--task", task, "--out", str(out), "--n-train", "60", "--n-val", "10", "--rare-ratio", "6"],
    )
    assert result.exit_code == 0, result.output
    yaml_file = out / "data.yaml"
    data = yaml.safe_load(yaml_file.read_text())
    counts = count_instances(yaml_file)
    assert counts[CLASS_NAMES[0]] / counts[CLASS_NAMES[RARE_CLASS]] == pytest.approx(6.0, rel=0.25)  # stays rare
    spec = resolve_dataset(yaml_file)
    ours = check_task_labels(spec, split_image_paths(spec, "train"), task, use_cache=False)
    assert ours.rejected == [] and ours.duplicates == 0
    ref = _ultralytics_counts(str(out / "images" / "train"), {**data, "channels": 3}, task)
    assert ref == (ours.counts, 60)
    rows = [
        line.split() for f in sorted((out / "labels" / "train").glob("*.txt")) for line in f.read_text().splitlines()
    ]
    widths = {len(r) for r in rows}
    if task == "obb":
        assert widths == {9}
    elif task == "pose":
        assert widths == {5 + 4 * 3} and data["kpt_shape"] == [4, 3] and data["flip_idx"] == [1, 0, 2, 3]
        kpts = np.array([[float(v) for v in r[5:]] for r in rows]).reshape(-1, 4, 3)
        assert (kpts[:, 0, 0] <= kpts[:, 1, 0]).all() and (
            kpts[:, 2, 1] <= kpts[:, 3, 1]
        ).all()  # left/right, top/bottom
    else:
        assert min(widths) >= 7 and {len(r) for r in rows if r[0] == str(RARE_CLASS)} == {7}  # the triangle: 3 points


def test_demo_segment_polygons_are_the_drawn_outlines(tmp_path: Path) -> None:
    """Rasterising each label polygon gives back the drawn shape (the image differs from the plate where it lies)."""
    import cv2

    from yolocustom.demo_data import generate_demo_dataset

    yaml_file = generate_demo_dataset(tmp_path / "seg", n_train=8, n_val=2, img_size=64, task="segment")
    root = yaml_file.parent
    for label in sorted((root / "labels" / "train").glob("*.txt")):
        for line in label.read_text().splitlines():
            poly = np.array([float(v) for v in line.split()[1:]]).reshape(-1, 2) * 64
            inside = np.zeros((64, 64), np.uint8)
            cv2.fillPoly(inside, [np.round(poly - 0.5).astype(np.int32)], 1)
            assert inside.sum() >= 4  # a real shape, in pixels, where the label says


# ------------------------------------------------------------------------------------- fitness on each family's keys


@pytest.mark.parametrize(
    ("metrics_cls", "attr", "suffix"), [("SegmentMetrics", "seg", "M"), ("PoseMetrics", "pose", "P")]
)
def test_fitness_reads_the_family_metrics(metrics_cls: str, attr: str, suffix: str) -> None:
    """Ultralytics' own metrics classes on controlled stats: the recipe fitness reads the (M)/(P) columns, not (B)."""
    import ultralytics.utils.metrics as um

    from yolocustom.features.f1_logging import f1_metrics_class
    from yolocustom.features.fitness import compute_fitness
    from yolocustom.recipe import FitnessFeature

    metrics = f1_metrics_class(getattr(um, metrics_cls))(names={0: "a", 1: "b"})
    tp_box = np.array([[1] * 10, [1] * 10, [1] * 10], dtype=bool)
    tp_fam = np.array([[1] * 10, [0] * 10, [0] * 10], dtype=bool)  # the family matches far worse than the boxes
    metrics.stats = {
        "tp": [tp_box],
        f"tp_{'m' if suffix == 'M' else 'p'}": [tp_fam],
        "conf": [np.array([0.9, 0.8, 0.7])],
        "pred_cls": [np.array([0, 1, 1])],
        "target_cls": [np.array([0, 1, 1])],
        "target_img": [np.array([0, 1])],
    }
    metrics.process()
    results = metrics.results_dict
    assert results[f"metrics/F1({suffix})"] < results["metrics/F1(B)"]
    for name in (f"f1({suffix})", f"mAP50-95({suffix})", f"recall({suffix})"):
        feature = FitnessFeature(metric=name)
        value = compute_fitness(feature, results, 0.0, metrics)
        assert value == pytest.approx(results[tasks.metric_key(name)])
        assert value != pytest.approx(results[tasks.metric_key(name.split("(")[0])])  # not the box value
    feature = FitnessFeature(weights={f"f1({suffix})": 3.0, "mAP50": 1.0})
    expected = 0.75 * results[f"metrics/F1({suffix})"] + 0.25 * results["metrics/mAP50(B)"]
    assert compute_fitness(feature, results, 0.0, metrics) == pytest.approx(expected)
    f1_off = {k: v for k, v in results.items() if "F1" not in k}  # f1_logging off: computed from the validator
    assert compute_fitness(FitnessFeature(metric=f"f1({suffix})"), f1_off, 0.0, metrics) == pytest.approx(
        results[f"metrics/F1({suffix})"]
    )


@pytest.mark.parametrize(("name", "task"), [("coco8-seg", "segment"), ("coco8-pose", "pose"), ("dota8", "obb")])
def test_compute_weights_task_option(tmp_path: Path, name: str, task: str) -> None:
    import json

    root = tmp_path / name
    shutil.copytree(SHARED_DATASETS / name, root, ignore=shutil.ignore_patterns("*.cache"))
    yaml_file = _retarget(tmp_path, name, root)
    args = ["compute-weights", "--data", str(yaml_file), "--task", task, "--format", "json", "--no-cache", "-q"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    spec = resolve_dataset(yaml_file)
    data = {"names": spec.names, "channels": 3, **({"kpt_shape": spec.kpt_shape} if spec.kpt_shape else {})}
    assert out["task"] == task and (out["counts"], out["images"]) == _ultralytics_counts(
        str(root / "images" / "train"), data, task
    )
    if task == "pose":  # the same set without kpt_shape: one clear error, exit 1
        raw = yaml.safe_load(yaml_file.read_text())
        raw.pop("kpt_shape")
        yaml_file.write_text(yaml.safe_dump(raw))
        result = CliRunner().invoke(cli.app, args)
        assert result.exit_code == 1 and "needs 'kpt_shape" in result.output and "Traceback" not in result.output


def _random_rows(rng: np.random.Generator, task: str) -> list[str]:
    """Label rows drawn from a menu of valid rows and edge cases, for the vectorised-vs-Ultralytics comparison."""

    def poly(n: int, lo: float = 0.05, hi: float = 0.95) -> list[float]:
        return list(rng.uniform(lo, hi, 2 * n).round(4))

    def fmt(values: list[Any]) -> str:
        return " ".join(str(v) for v in values)

    rows: list[str] = []
    for _ in range(int(rng.integers(1, 5))):
        c = int(rng.integers(0, 3))
        kind = int(rng.integers(0, 12))
        if task == "segment":
            p = poly(int(rng.integers(3, 7)))
            if kind == 1:
                p[0] = -0.005  # within Ultralytics' 1 % tolerance
            elif kind == 2:
                p[1] = 1.02  # out of bounds
            elif kind == 3:
                rows.append(fmt([c, *p]))  # an exact duplicate
            elif kind == 4:
                q = [p[2], p[3], p[0], p[1], *p[4:]]  # same points in another order: same box, distinct polygon
                rows.append(fmt([c, *q]))
            elif kind == 5:
                p = p[:-1]  # odd number of coordinates
            elif kind == 6:
                c = 3  # class >= nc
            elif kind == 7:
                p[2] = "nan" if rng.random() < 0.5 else "1e40"
            elif kind == 8:
                c = 1.0 if rng.random() < 0.5 else 1.5
            elif kind == 9:
                p[0] = -0.0
            rows.append(fmt([c, *p]))
        else:
            box = [0.5, 0.5, 0.2, 0.2]
            kpts = [v for _ in range(3) for v in (*rng.uniform(0.05, 0.95, 2).round(4), int(rng.integers(0, 3)))]
            if kind == 1:
                kpts[0] = 1.02  # keypoint out of bounds
            elif kind == 2:
                box[0] = 1.5  # box coordinates are not checked for pose, keypoints are
            elif kind == 3:
                kpts[1] = -0.005
            elif kind == 4:
                rows.append(fmt([c, *box, *kpts]))  # duplicate
            elif kind == 5:
                kpts = kpts[:-1]  # wrong width
            elif kind == 6:
                c = 3
            elif kind == 7:
                box[2] = -0.02
            rows.append(fmt([c, *box, *kpts]))
    return rows


@pytest.mark.parametrize("task", ["segment", "pose"])
def test_vectorised_rows_match_ultralytics_on_random_edge_cases(tmp_path: Path, task: str) -> None:
    rng = np.random.default_rng(0)
    labels: dict[str, bytes | None] = {
        f"im{i:04d}": ("\n".join(_random_rows(rng, task)) + "\n").encode() for i in range(240)
    }
    names = {0: "a", 1: "b", 2: "c"}
    yaml_file = _dataset(tmp_path, labels, names=names)
    data = {"names": names, "channels": 3, **({"kpt_shape": [3, 3]} if task == "pose" else {})}
    yaml_file.write_text(yaml.safe_dump({**yaml.safe_load(yaml_file.read_text()), **data}))
    spec = resolve_dataset(yaml_file)
    ours = count_labels(split_image_paths(spec, "train"), 3, kpt_shape=spec.kpt_shape, task=task, use_cache=False)
    ref = _ultralytics_counts(str(tmp_path / "images" / "train"), data, task)
    assert ref == (ours.counts, ours.images)
    assert ours.duplicates > 0 and 20 < len(ours.rejected) < 200  # the menu did exercise both outcomes
