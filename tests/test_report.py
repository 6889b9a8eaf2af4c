"""``yolocustom report`` on real run folders: two demo runs, a segment run, a plain Ultralytics run, tune trials.

The runs are tiny (imgsz 32, 1-2 epochs), so their metrics are mostly 0; the tests check what the page is built from
(settings, results.csv, the per-class files, best.pt's recorded fitness) rather than what the models learned. Where a
mark needs a difference (the best run of a class), a copy of a real run has one value edited.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TINY_TRAIN, read_csv, run_recipe, shared_dataset_yaml, write_recipe
from typer.testing import CliRunner
from ultralytics.utils.patches import torch_load

from yolocustom.cli import app
from yolocustom.report.collect import Run, collect

DEMO_FEATURES: dict[str, Any] = {"f1_logging": {"per_class": True}}
# the two demo runs differ in exactly these recipe keys
CHANGED = {"train.name", "train.lr0", "features.fitness.metric", "features.fitness.classes"}


def _report(*args: Path | str) -> Any:
    return CliRunner().invoke(app, ["report", *map(str, args)])


def _section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _rows(markdown: str, title: str) -> list[list[str]]:
    """Body rows of the Markdown table under ``title``."""
    lines = [ln for ln in _section(markdown, title).splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[2:]]


def _decode_all(html: str) -> list[tuple[int, int]]:
    """Sizes of every image embedded in the page, each decoded by PIL."""
    from PIL import Image

    sizes = []
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html):
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            im.load()
            sizes.append(im.size)
    return sizes


def _check_best(run: Run) -> None:
    """The report's best epoch is best.pt's: the fitness and metrics best.pt was saved with are that row's."""
    saved = torch_load(run.path / "weights" / "best.pt", map_location="cpu")["train_metrics"]
    assert run.best_index is not None
    assert run.fitness[run.best_index] == pytest.approx(saved["fitness"], abs=1e-5)
    assert run.metrics[run.best_index] == pytest.approx({k: saved[k] for k in run.metrics[0]}, abs=1e-5)


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two demo runs, 2 epochs each, whose recipes differ in ``CHANGED``."""
    from yolocustom.demo_data import generate_demo_dataset

    folder = tmp_path_factory.mktemp("report-demo")
    data = generate_demo_dataset(folder / "shapes", n_train=16, n_val=8, img_size=64, rare_ratio=3)
    a = write_recipe(
        folder / "a", data, {**DEMO_FEATURES, "fitness": {"metric": "recall", "classes": ["crack"]}}, epochs=2
    )
    b = write_recipe(folder / "b", data, {**DEMO_FEATURES, "fitness": {"metric": "f1"}}, epochs=2, lr0=0.02)
    for path, name in ((a, "a"), (b, "b")):  # one project, as two runs of one user would be
        recipe = yaml.safe_load(path.read_text())
        recipe["train"].update(project=str(folder / "runs"), name=name)
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return Path(run_recipe(a).save_dir), Path(run_recipe(b).save_dir)


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A yolocustom segment run on coco8-seg, best.pt by the mask mAP50."""
    folder = tmp_path_factory.mktemp("report-seg")
    data = shared_dataset_yaml("coco8-seg", folder / "data")
    features = {**DEMO_FEATURES, "fitness": {"metric": "mAP50(M)"}}
    return Path(run_recipe(write_recipe(folder, data, features, model="yolo26n-seg.yaml", epochs=1)).save_dir)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain Ultralytics run (no yolocustom trainer): args.yaml and results.csv, no per-class file."""
    from ultralytics import YOLO

    folder = tmp_path_factory.mktemp("report-plain")
    data = shared_dataset_yaml("coco8", folder / "data")
    model = YOLO("yolo26n.yaml")
    model.train(data=str(data), epochs=1, device="cpu", project=str(folder / "runs"), name="plain", **TINY_TRAIN)
    return Path(model.trainer.save_dir)


def test_two_demo_runs(demo_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = demo_runs
    out = tmp_path / "report"
    result = _report(a, b, "--out", out)
    assert result.exit_code == 0, result.output
    html, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    for page in (html, md):
        assert str(a) in page and str(b) in page
    # every figure: embedded in the HTML and decodable, and a PNG file beside the Markdown that reads back
    import matplotlib.image

    files = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", md)
    assert sorted(files) == ["f1_per_class.png", "fitness.png", "recall_per_class.png"]
    assert len(_decode_all(html)) == 3
    for name in files:
        assert matplotlib.image.imread(out / name).ndim == 3
    # the diff lists exactly the keys the two recipes differ in
    diff = _rows(md, "Recipe diff")
    assert {row[0] for row in diff} == CHANGED
    assert ["train.lr0", "0.01 (default)", "0.02"] in diff
    # best/final rows: the report's recomputed fitness at the best epoch is the one the trainer stored in best.pt
    summary = _rows(md, "Best and final metrics")
    for label in "ab":
        rows = [r for r in summary if r[0] == label]
        assert [r[1] for r in rows] == [rows[0][1], "final (epoch 2)"] and rows[0][1].startswith("best (epoch ")
    for run in collect([a, b]):
        _check_best(run)
    # one per-class row per class and run, instances from metrics_per_class.csv
    per_class = _rows(md, "Per-class metrics")
    names = yaml.safe_load((a / "args.yaml").read_text())["data"]
    classes = yaml.safe_load(Path(names).read_text())["names"]
    counts = {r["class_name"]: r["instances"] for r in read_csv(a / "metrics_per_class.csv") if r["epoch"] == "1"}
    present = [c for c in classes.values() if counts.get(c, "0") != "0"]
    assert [(r[0], r[1].split()[0]) for r in per_class] == [(c, run) for c in present for run in "ab"]
    assert all(r[2] == counts[r[0]] and r[7] == "-" for r in per_class)
    # a second report into the same folder replaces the files and says so
    again = _report(a, b, "--out", out)
    assert again.exit_code == 0 and again.output.count("(replaced the previous one)") == 5


def test_segment_run(seg_run: Path, demo_runs: tuple[Path, Path], tmp_path: Path) -> None:
    result = _report(seg_run, demo_runs[0], "--out", tmp_path)
    assert result.exit_code == 0, result.output
    md = (tmp_path / "report.md").read_text()
    assert f"({'segment'}): `{seg_run}`" in md
    header = [ln for ln in _section(md, "Best and final metrics").splitlines() if ln.startswith("| run")][0]
    assert "mAP50(M)" in header and "F1(M)" in header
    # its per-class rows are the mask family's (the fitness's), read from the (M) columns
    assert f"{seg_run.name}: mask metrics (M)" in md
    rows = [r for r in _rows(md, "Per-class metrics") if r[1].split()[0] == seg_run.name]
    last = [r for r in read_csv(seg_run / "metrics_per_class.csv") if r["epoch"] == "1" and r["P(M)"]]
    assert [(r[0], r[4]) for r in rows] == [(r["class_name"], f"{float(r['R(M)']):.3f}") for r in last]
    _check_best(collect([seg_run])[0])
    assert len(_decode_all((tmp_path / "report.html").read_text())) == 3


def test_plain_ultralytics_run(plain_run: Path, tmp_path: Path) -> None:
    result = _report(plain_run, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    md = (tmp_path / "report.md").read_text()
    missing = _section(md, "Missing")
    assert "no recipe.yaml (not a yolocustom run): settings from Ultralytics' args.yaml" in missing
    assert "no metrics_per_class.csv" in missing and "no f1_per_class.csv" not in missing
    assert "f1_per_class.csv" in missing and "no per-class rows or curves" in missing
    # the fitness curve is still drawn (Ultralytics' default fitness, mAP50-95), the per-class figures are not
    assert re.findall(r"\(([^)]+\.png)\)", md) == ["fitness.png"]
    assert len(_decode_all((tmp_path / "report.html").read_text())) == 1
    assert "nothing to draw" in _section(md, "Per-class recall across runs")
    summary = _rows(md, "Best and final metrics")
    row = read_csv(plain_run / "results.csv")[-1]
    assert summary[-1][2] == f"{float(row['metrics/mAP50-95(B)']):.3f}"


def test_tune_trials_expand(demo_runs: tuple[Path, Path], tmp_path: Path) -> None:
    """A sweep folder stands for its trials; thresholds.yaml fills the threshold column; the best F1 is marked."""
    trials = tmp_path / "sweep" / "trials"
    for run, trial in zip(demo_runs, ("t1", "t2")):
        shutil.copytree(run, trials / trial, ignore=shutil.ignore_patterns("weights"))
    (trials / "not-a-run").mkdir()
    t2 = trials / "t2"
    (t2 / "thresholds.yaml").write_text(
        yaml.safe_dump({"family": "B", "global_conf": 0.25, "classes": {"crack": {"id": 3, "threshold": 0.125}}})
    )
    (copy,) = collect([t2])
    best = str(copy.epochs[copy.best_index])  # the epoch whose per-class rows the table shows
    lines = (t2 / "metrics_per_class.csv").read_text().splitlines()
    edited = [  # crack's F1 (column 6) at that epoch raised above anything 2 epochs learn
        ",".join([*cells[:6], "0.999", *cells[7:]]) if cells[0] == best and cells[2] == "crack" else line
        for line in lines
        for cells in [line.split(",")]
    ]
    assert edited != lines
    (t2 / "metrics_per_class.csv").write_text("\n".join(edited) + "\n")
    out = tmp_path / "out"
    result = _report(tmp_path / "sweep", "--out", out)
    assert result.exit_code == 0, result.output
    assert "Compared 2 runs: t1, t2" in result.output
    crack = {r[1]: r for r in _rows((out / "report.md").read_text(), "Per-class metrics") if r[0] == "crack"}
    assert set(crack) == {"t1", "t2 ★"}
    assert crack["t2 ★"][5] == "0.999" and crack["t2 ★"][7] == "0.125" and crack["t1"][7] == "-"


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_bad_run_folder(kind: str, demo_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a = demo_runs[0]
    bad = a.parent / "aa" if kind == "missing" else tmp_path / "empty"
    if kind == "empty":
        bad.mkdir()
    result = _report(a, bad, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    if kind == "missing":
        assert result.stderr == f"error: {bad}: expected a run folder, found no such folder; did you mean 'a'?\n"
    else:
        assert f"error: {bad}: expected a run folder (with results.csv or args.yaml)" in result.stderr
    assert not (tmp_path / "out").exists()
