"""Per-class thresholds through real training on the imbalanced shapes data: chosen on best.pt's validation, then
honoured by ``yolocustom predict`` (outputs recounted against the label files), ``val`` and an ONNX export. The
session's all-features run (conftest ``shapes_all_features_run``, rules ``THRESHOLD_RULES``) serves every test here;
segment/pose/obb are covered in test_train_tasks.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import THRESHOLD_RULES, write_recipe
from typer.testing import CliRunner

from yolocustom import cli
from yolocustom.thresholds import SMOOTH, THRESHOLDS_FILE, attach, model_thresholds

APP = cli.app
MIN_RECALL = THRESHOLD_RULES["stain"]["min_recall"]  # scratch gets a precision rule, dent and crack their F1 optimum
STAIN = 2


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, shapes_yaml: Path, shapes_all_features_run: dict[str, Any]
) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("thresholds")
    trainer = shapes_all_features_run["trainer"]
    root = shapes_yaml.parent
    data = yaml.safe_load((Path(trainer.save_dir) / THRESHOLDS_FILE).read_text())
    return {
        "trainer": trainer,
        "dir": Path(trainer.save_dir),
        "best": Path(trainer.best),
        "data": data,
        "folder": folder,
        "images": root / "images" / "val",
        "labels": root / "labels" / "val",
        "yaml": shapes_yaml,
    }


def _predictions(folder: Path) -> dict[str, np.ndarray]:
    """``save_txt`` + ``save_conf`` output: ``class cx cy w h conf`` per line, one file per image with detections."""
    return {p.name: np.loadtxt(p, ndmin=2) for p in sorted(folder.glob("*.txt"))}


def _recount(preds: dict[str, np.ndarray], labels: Path, cls: int) -> tuple[int, int]:
    """Matched labels and labels of ``cls``: predictions matched one-to-one to labels at IoU >= 0.5, the highest IoU
    first, as the validator matches at IoU 0.5."""
    import torch
    from ultralytics.utils.metrics import box_iou
    from ultralytics.utils.ops import xywh2xyxy

    hits = total = 0
    for file in sorted(labels.glob("*.txt")):
        gt = np.loadtxt(file, ndmin=2)
        gt = gt[gt[:, 0] == cls]
        total += len(gt)
        pr = preds.get(file.name, np.zeros((0, 6)))
        pr = pr[pr[:, 0] == cls]
        if not len(gt) or not len(pr):
            continue
        iou = box_iou(xywh2xyxy(torch.tensor(gt[:, 1:5])), xywh2xyxy(torch.tensor(pr[:, 1:5]))).numpy()
        used_gt: set[int] = set()
        used_pred: set[int] = set()
        for _, i, j in sorted(((iou[i, j], i, j) for i, j in zip(*np.nonzero(iou >= 0.5))), reverse=True):
            if i not in used_gt and j not in used_pred:
                used_gt.add(i)
                used_pred.add(j)
        hits += len(used_gt)
    return hits, total


def _predict_cli(run: dict[str, Any], model: Path, name: str, *extra: str) -> dict[str, np.ndarray]:
    out = run["folder"] / "predict"
    args = ["predict", str(model), str(run["images"]), "save_txt=True", "save_conf=True", f"project={out}"]
    result = CliRunner().invoke(APP, [*args, f"name={name}", "exist_ok=True", *extra])
    assert result.exit_code == 0, result.output
    return _predictions(out / name / "labels")


def _by_id(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(e["id"]): {**e, "name": n} for n, e in data["classes"].items()}


def test_thresholds_agree_with_the_validator_curves(run: dict[str, Any]) -> None:
    """thresholds.yaml = best.pt's record; the F1 classes sit at their smoothed F1 curve's argmax, the global one at
    the smoothed mean curve's (Ultralytics' own rule), each recall within one instance of the interpolated curve."""
    from ultralytics import YOLO
    from ultralytics.utils.metrics import smooth

    data, metrics = run["data"], run["trainer"].yc_threshold_metrics  # best.pt's validation, letterboxed as predict
    box = metrics.box
    assert data["family"] == "B" and list(data["classes"]) == list(run["trainer"].data["names"].values())
    assert YOLO(str(run["best"])).model.yolocustom["thresholds"] == data  # plain YOLO loads it; plain data inside

    def argmax(curve: np.ndarray) -> int:  # Ultralytics' smoothed-F1 argmax, conf 0 excluded (it keeps every box)
        return int(np.argmax(np.where(box.px > 0, smooth(curve, SMOOTH), -np.inf)))

    assert data["global_conf"] == float(box.px[argmax(box.f1_curve.mean(0))])
    rows = {int(c): i for i, c in enumerate(box.ap_class_index)}
    checked = 0
    for cls, e in _by_id(data).items():
        n = int(metrics.nt_per_class[cls])
        assert e["instances"] == n > 0 and e["misses"] == round(n * (1 - e["recall"]))
        if e["rule"] != "f1":
            continue
        i = argmax(box.f1_curve[rows[cls]])
        assert e["threshold"] == float(box.px[i])
        assert -1e-6 <= float(box.r_curve[rows[cls], i]) - e["recall"] <= 1 / n + 1e-6  # interpolation overstates it
        checked += 1
    assert checked == 2
    scratch = data["classes"]["scratch"]
    assert scratch["rule"] == "min_precision 0.9" and scratch["met"] is True and scratch["precision"] >= 0.9


def test_min_recall_holds_in_predict_output(run: dict[str, Any]) -> None:
    """``yolocustom predict ... save_txt=True save_conf=True``: stain's recall, recounted against the label files,
    reaches its min_recall; no box is below its class's threshold; stain keeps boxes under 0.25 (its threshold is
    lower), and the filter did remove boxes that NMS at the lowest threshold let through."""
    from ultralytics import YOLO

    data = _by_id(run["data"])
    stain = data[STAIN]
    assert stain["name"] == "stain" and stain["rule"] == f"min_recall {MIN_RECALL}" and stain["met"] is True
    assert stain["threshold"] < 0.25
    preds = _predict_cli(run, run["best"], "pt")
    hits, total = _recount(preds, run["labels"], STAIN)
    assert total == stain["instances"] and hits / total >= MIN_RECALL
    assert hits == total - stain["misses"]  # the table's count is what predict delivers
    rows = np.concatenate(list(preds.values()))
    limits = np.array([data[int(c)]["threshold"] for c in rows[:, 0]])
    assert np.all(rows[:, 5] >= limits * (1 - 1e-5))  # save_conf writes 6 significant digits
    assert np.any((rows[:, 0] == STAIN) & (rows[:, 5] < 0.25))

    lowest = min(e["threshold"] for e in data.values())
    plain = YOLO(str(run["best"])).predict(str(run["images"]), conf=lowest, save=False, verbose=False)
    below = sum(int((r.boxes.conf.numpy() < [data[int(c)]["threshold"] for c in r.boxes.cls]).sum()) for r in plain)
    assert below > 0, "nothing for the filter to remove: the check would be vacuous"

    model = YOLO(str(run["best"]))
    assert attach(model) is not None  # the Python API: one call, the same filter
    kept = model.predict(str(run["images"]), save=False, verbose=False)
    assert sum(len(r.boxes) for r in kept) == len(rows)
    assert attach(YOLO(str(run["dir"] / "weights" / "last.pt"))) is None  # no thresholds: plain Ultralytics


def test_val_table_at_deployed_thresholds(run: dict[str, Any]) -> None:
    result = CliRunner().invoke(
        APP, ["val", str(run["best"]), "--data", str(run["yaml"]), f"project={run['folder'] / 'val'}", "plots=False"]
    )
    assert result.exit_code == 0, result.output
    table = result.output.split("At the deployed thresholds", 1)[1].splitlines()
    row = next(line.split() for line in table if line.split()[:1] == ["stain"])
    stain = run["data"]["classes"]["stain"]
    instances, threshold, recall, misses = int(row[1]), float(row[2]), float(row[4]), int(row[7])
    assert (instances, misses) == (stain["instances"], stain["misses"])
    assert threshold == pytest.approx(stain["threshold"], abs=5e-4) and recall == pytest.approx(
        stain["recall"], abs=5e-4
    )


def test_onnx_export_keeps_and_applies_the_thresholds(run: dict[str, Any]) -> None:
    for module in ("onnx", "onnxruntime", "onnxslim"):
        pytest.importorskip(module, reason="the onnx extra is not installed (pip install -e '.[onnx]')")
    from ultralytics import YOLO

    pt = run["folder"] / "export" / "best.pt"
    pt.parent.mkdir(exist_ok=True)
    pt.write_bytes(run["best"].read_bytes())
    result = CliRunner().invoke(APP, ["export", str(pt), "format=onnx", "imgsz=64"])
    assert result.exit_code == 0, result.output
    onnx = pt.with_suffix(".onnx")
    assert model_thresholds(YOLO(str(onnx))) == run["data"]
    preds = _predict_cli(run, onnx, "onnx")
    rows = np.concatenate(list(preds.values()))
    data = _by_id(run["data"])
    assert np.all(rows[:, 5] >= np.array([data[int(c)]["threshold"] for c in rows[:, 0]]) * (1 - 1e-5))
    assert np.any((rows[:, 0] == STAIN) & (rows[:, 5] < 0.25))
    hits, total = _recount(preds, run["labels"], STAIN)
    assert hits / total >= MIN_RECALL


def test_dry_run_names_each_class_rule(tmp_path: Path, shapes_yaml: Path) -> None:
    from yolocustom.recipe import load_recipe
    from yolocustom.training import dry_run

    text = dry_run(
        load_recipe(write_recipe(tmp_path, shapes_yaml, {"thresholds": {"classes": THRESHOLD_RULES}}, epochs=1))
    )
    section = text.split("Per-class confidence thresholds", 1)[1]
    assert f"stain (2): min_recall {MIN_RECALL}: the highest threshold keeping that recall" in section
    assert "scratch (0): min_precision 0.9" in section and "dent (1): F1 optimum" in section


@pytest.mark.parametrize(
    ("block", "where", "message"),
    [
        (
            "      crack: {min_recall: 1.5}\n",
            "6:15",
            "features.thresholds.classes.crack.min_recall: expected a value less than or equal to 1, found 1.5",
        ),
        (
            "      crak: {min_recall: 0.9}\n",
            "6:7",
            "features.thresholds.classes: class 'crak' is not in the dataset's names; did you mean 'crack'?",
        ),
        (
            "      crack: {min_recall: 0.9, min_precision: 0.5}\n",
            "6:7",
            "features.thresholds.classes.crack: expected exactly one of 'min_recall' or 'min_precision', found both",
        ),
    ],
    ids=["min_recall-1.5", "unknown-name", "two-targets"],
)
def test_bad_rules_are_placed(tmp_path: Path, shapes_yaml: Path, block: str, where: str, message: str) -> None:
    recipe = tmp_path / "r.yaml"
    head = f"model: yolo26n.yaml\ndata: {shapes_yaml}\nfeatures:\n  thresholds:\n    classes:\n"
    recipe.write_text(head + block)
    result = CliRunner().invoke(APP, ["validate-config", "--check-data", str(recipe)])
    assert result.exit_code == 1
    assert result.output == f"{recipe}:{where}: {message}\n"


def test_bad_predict_input(run: dict[str, Any], tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("classes: {crack: {id: 3, threshold: 1.5}}\n")
    cases = {
        ("--thresholds", str(bad)): "classes.crack.threshold: expected a number in [0, 1], found 1.5",
        ("sav_txt=True",): "'sav_txt' is not a valid YOLO argument. Similar arguments are i.e. ['save_txt=False'",
    }
    for extra, message in cases.items():
        result = CliRunner().invoke(APP, ["predict", str(run["best"]), str(run["images"]), *extra])
        assert result.exit_code == 1 and message in result.output, result.output


@pytest.mark.parametrize("task", ["detect", "segment", "pose", "obb"])
def test_filter_keeps_each_detection_whole(task: str) -> None:
    """The predict filter indexes a real ``Results`` row-wise: a box below its class's threshold goes with its mask,
    keypoints or oriented box; the predictor's NMS conf becomes the lowest threshold."""
    from types import SimpleNamespace

    import torch
    from ultralytics.engine.results import Results

    from yolocustom.errors import UserError
    from yolocustom.thresholds import ThresholdFilter

    names = {0: "scratch", 1: "crack"}
    data = {
        "global_conf": 0.5,
        "classes": {"scratch": {"id": 0, "threshold": 0.6}, "crack": {"id": 1, "threshold": 0.1}},
    }
    conf, cls = torch.tensor([0.9, 0.4, 0.2, 0.05]), torch.tensor([0.0, 0.0, 1.0, 1.0])  # kept: rows 0 and 2
    xyxy = torch.tensor([[1.0, 1, 9, 9], [2, 2, 8, 8], [3, 3, 7, 7], [4, 4, 6, 6]])
    parts: dict[str, Any] = {"boxes": torch.cat([xyxy, conf[:, None], cls[:, None]], 1)}
    if task == "segment":
        parts["masks"] = torch.arange(4.0)[:, None, None].expand(4, 16, 16).clone()
    if task == "pose":
        parts["keypoints"] = torch.arange(4.0)[:, None, None].expand(4, 17, 3).clone()
    if task == "obb":
        parts = {
            "obb": torch.cat(
                [xyxy[:, :2] + 4, torch.full((4, 2), 4.0), torch.zeros(4, 1), conf[:, None], cls[:, None]], 1
            )
        }
    result = Results(np.zeros((16, 16, 3), np.uint8), path="a.png", names=names, **parts)
    predictor = SimpleNamespace(results=[result], args=SimpleNamespace(conf=0.25))
    flt = ThresholdFilter(data, names, task)
    flt.on_predict_start(predictor)
    assert predictor.args.conf == 0.1
    flt.on_predict_postprocess_end(predictor)
    kept = predictor.results[0]
    rows = kept.obb if task == "obb" else kept.boxes
    assert rows.conf.tolist() == pytest.approx([0.9, 0.2]) and rows.cls.tolist() == [0, 1]
    if task == "segment":
        assert kept.masks.data[:, 0, 0].tolist() == [0, 2]
    if task == "pose":
        assert kept.keypoints.data[:, 0, 0].tolist() == [0, 2]
    with pytest.raises(UserError, match="not the model's class"):
        ThresholdFilter(data, {0: "scratch", 1: "dent"}, task)
