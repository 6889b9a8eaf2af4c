"""Tests for the built-in demo dataset: determinism, imbalance, labels, safety, Ultralytics compatibility and CLI."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from yolocustom import demo_data
from yolocustom.commands import demo_data as demo_data_command
from yolocustom.demo_data import CLASS_NAMES, RARE_CLASS, count_instances, generate_demo_dataset
from yolocustom.errors import UserError

SMALL: dict[str, Any] = {"n_train": 40, "n_val": 20, "img_size": 64, "seed": 0}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


@pytest.fixture(scope="module")
def default_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset at default settings (generated once per module; a couple of seconds)."""
    return generate_demo_dataset(tmp_path_factory.mktemp("default") / "shapes")


# ---------------------------------------------------------------------------------------------------------------------
# Content


def test_yaml_layout(default_yaml: Path) -> None:
    root = default_yaml.parent
    data = yaml.safe_load(default_yaml.read_text())
    assert default_yaml.name == "data.yaml"
    assert Path(data["path"]) == root.resolve() and Path(data["path"]).is_absolute()
    assert data["train"] == "images/train" and data["val"] == "images/val"
    assert data["names"] == dict(enumerate(CLASS_NAMES))
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["generator"] == "yolocustom.demo_data"
    assert manifest["version"] == demo_data.GENERATOR_VERSION
    assert manifest["args"] == {"n_train": 600, "n_val": 150, "img_size": 64, "seed": 0, "rare_ratio": 10.0}
    for split, n in (("train", 600), ("val", 150)):
        images = sorted(p.stem for p in (root / "images" / split).glob("*.png"))
        labels = sorted(p.stem for p in (root / "labels" / split).glob("*.txt"))
        assert len(images) == n and images == labels


def test_labels_valid(default_yaml: Path) -> None:
    import cv2

    root = default_yaml.parent
    n_background = 0
    for label_file in sorted((root / "labels").glob("*/*.txt")):
        lines = label_file.read_text().splitlines()
        n_background += not lines
        assert len(lines) <= 4
        for line in lines:
            fields = line.split()
            assert len(fields) == 5, line
            assert 0 <= int(fields[0]) < len(CLASS_NAMES)
            assert all(len(f.split(".")[1]) == 6 for f in fields[1:]), line
            cx, cy, w, h = map(float, fields[1:])
            assert 0 < w <= 1 and 0 < h <= 1
            assert 0 <= cx - w / 2 < cx + w / 2 <= 1 and 0 <= cy - h / 2 < cy + h / 2 <= 1
            assert 6 / 64 <= max(w, h) <= 30 / 64, line  # objects are roughly 8-28 px on a 64 px image
    assert 0.02 < n_background / 750 < 0.08  # about 5 % background-only images
    image = cv2.imread(str(root / "images" / "train" / "img_00000.png"), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.shape == (64, 64, 3) and image.dtype.name == "uint8"


def test_imbalance_and_rare_class_in_val(default_yaml: Path) -> None:
    train, val = count_instances(default_yaml, "train"), count_instances(default_yaml, "val")
    assert list(train) == list(CLASS_NAMES)
    rare = CLASS_NAMES[RARE_CLASS]
    for counts in (train, val):
        most = max(counts.values())
        assert counts["scratch"] == most
        assert most / counts[rare] == pytest.approx(10.0, rel=0.15)
        assert counts["dent"] > counts["stain"] > counts[rare]
    assert val[rare] >= 10  # recall/F1/AP of the rare class are measurable


def test_rare_ratio_is_respected(tmp_path: Path) -> None:
    yaml_path = generate_demo_dataset(tmp_path / "d", n_train=200, n_val=20, rare_ratio=4.0)
    counts = count_instances(yaml_path, "train")
    assert counts["scratch"] / counts["crack"] == pytest.approx(4.0, rel=0.1)


def test_every_split_has_a_rare_instance(tmp_path: Path) -> None:
    yaml_path = generate_demo_dataset(tmp_path / "d", n_train=5, n_val=2, rare_ratio=1000.0)
    assert count_instances(yaml_path, "train")["crack"] >= 1
    assert count_instances(yaml_path, "val")["crack"] >= 1


def test_img_size_scales(tmp_path: Path) -> None:
    import cv2

    yaml_path = generate_demo_dataset(tmp_path / "d", n_train=4, n_val=2, img_size=96)
    image = cv2.imread(str(yaml_path.parent / "images" / "val" / "img_00000.png"))
    assert image is not None and image.shape == (96, 96, 3)


# ---------------------------------------------------------------------------------------------------------------------
# Determinism


def test_deterministic_byte_identical(tmp_path: Path) -> None:
    a = _files(generate_demo_dataset(tmp_path / "a", **SMALL).parent)
    b = _files(generate_demo_dataset(tmp_path / "b", **SMALL).parent)
    assert a.keys() == b.keys()
    differing = [k for k in a if a[k] != b[k]]
    assert differing == ["data.yaml"]  # only ``path:`` differs, since the folders differ
    assert a["data.yaml"].replace(b"/a\n", b"/b\n") == b["data.yaml"]


def test_different_seed_differs(tmp_path: Path) -> None:
    a = _files(generate_demo_dataset(tmp_path / "a", **SMALL).parent)
    b = _files(generate_demo_dataset(tmp_path / "b", **{**SMALL, "seed": 1}).parent)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.endswith(".png"))


def test_train_split_independent_of_n_val(tmp_path: Path) -> None:
    a = _files(generate_demo_dataset(tmp_path / "a", **SMALL).parent)
    b = _files(generate_demo_dataset(tmp_path / "b", **{**SMALL, "n_val": 7}).parent)
    train = [k for k in a if "/train/" in k]
    assert train and all(a[k] == b[k] for k in train)


# ---------------------------------------------------------------------------------------------------------------------
# Safety: never overwrite silently


def test_matching_args_reuse_without_regenerating(tmp_path: Path) -> None:
    out = tmp_path / "d"
    first = generate_demo_dataset(out, **SMALL)
    sentinel = out / "images" / "train" / "img_00000.png"
    before = sentinel.stat().st_mtime_ns
    (out / "note.txt").write_text("kept")
    assert generate_demo_dataset(out, **SMALL) == first
    assert sentinel.stat().st_mtime_ns == before and (out / "note.txt").exists()
    assert _siblings(out) == []


def test_incomplete_dataset_refused(tmp_path: Path) -> None:
    out = tmp_path / "d"
    generate_demo_dataset(out, **SMALL)
    (out / "images" / "val" / "img_00003.png").unlink()
    with pytest.raises(UserError, match="incomplete.*val: 19 images.*--force"):
        generate_demo_dataset(out, **SMALL)
    generate_demo_dataset(out, **SMALL, force=True)
    assert (out / "images" / "val" / "img_00003.png").is_file()


def test_folder_permissions_follow_umask(tmp_path: Path) -> None:
    out = tmp_path / "d"
    generate_demo_dataset(out, **SMALL)
    probe = tmp_path / "probe"
    probe.mkdir()
    assert out.stat().st_mode & 0o777 == probe.stat().st_mode & 0o777


def test_mismatched_args_refused(tmp_path: Path) -> None:
    out = tmp_path / "d"
    generate_demo_dataset(out, **SMALL)
    before = _files(out)
    with pytest.raises(UserError, match=r"different settings.*seed=0 there, 1 now.*--force.*--out"):
        generate_demo_dataset(out, **{**SMALL, "seed": 1})
    assert _files(out) == before


def test_force_replaces_our_folder(tmp_path: Path) -> None:
    out = tmp_path / "d"
    generate_demo_dataset(out, **SMALL)
    (out / "note.txt").write_text("gone after --force")
    generate_demo_dataset(out, **{**SMALL, "seed": 1}, force=True)
    assert json.loads((out / "manifest.json").read_text())["args"]["seed"] == 1
    assert not (out / "note.txt").exists()
    assert _siblings(out) == []  # no temp or trash folder left behind
    fresh = _files(generate_demo_dataset(tmp_path / "fresh", **{**SMALL, "seed": 1}).parent)
    replaced = _files(out)
    assert replaced.keys() == fresh.keys()
    assert all(replaced[k] == fresh[k] for k in fresh if k != "data.yaml")  # same as a fresh generation


@pytest.mark.parametrize("force", [False, True])
def test_foreign_folder_refused(tmp_path: Path, force: bool) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("do not delete")
    with pytest.raises(UserError, match="not created by 'yolocustom demo-data'"):
        generate_demo_dataset(out, **SMALL, force=force)
    assert (out / "precious.txt").read_text() == "do not delete"
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]
    assert _siblings(out) == []


def test_foreign_manifest_refused(tmp_path: Path) -> None:
    out = tmp_path / "d"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"generator": "someone-else"}))
    with pytest.raises(UserError, match="not created by"):
        generate_demo_dataset(out, **SMALL, force=True)
    assert (out / "manifest.json").exists()


def test_empty_folder_and_missing_parents_are_fine(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert generate_demo_dataset(tmp_path / "empty", **SMALL).is_file()
    assert generate_demo_dataset(tmp_path / "a" / "b" / "c", **SMALL).is_file()


def test_out_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        generate_demo_dataset(tmp_path / "f", **SMALL)


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = demo_data._render_image

    def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 10:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(demo_data, "_render_image", flaky)
    out = tmp_path / "d"
    with pytest.raises(KeyboardInterrupt):
        generate_demo_dataset(out, **SMALL)
    assert not out.exists() and _siblings(out) == []


def test_interrupted_force_keeps_old_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "d"
    generate_demo_dataset(out, **SMALL)
    before = _files(out)
    monkeypatch.setattr(demo_data, "_render_image", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        generate_demo_dataset(out, **{**SMALL, "seed": 3}, force=True)
    assert _files(out) == before and _siblings(out) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_train": 0}, "n_train"),
        ({"n_val": 0}, "n_val"),
        ({"img_size": 16}, "img_size"),
        ({"rare_ratio": 0.5}, "rare"),
    ],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        generate_demo_dataset(tmp_path / "d", **kwargs)
    assert not (tmp_path / "d").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Ultralytics accepts the dataset


def test_ultralytics_loads_dataset(default_yaml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ultralytics.data.utils as data_utils
    from ultralytics.data import YOLODataset

    def no_download(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("check_det_dataset tried to download")

    monkeypatch.setattr(data_utils, "safe_download", no_download)
    data = data_utils.check_det_dataset(str(default_yaml))
    assert data["nc"] == len(CLASS_NAMES)
    assert data["names"] == dict(enumerate(CLASS_NAMES))
    assert Path(data["train"]) == default_yaml.parent / "images" / "train"

    dataset = YOLODataset(img_path=data["train"], imgsz=64, augment=False, data=data, task="detect", prefix="test: ")
    assert len(dataset) == 600
    counts = [0] * len(CLASS_NAMES)
    for label in dataset.labels:
        for c in label["cls"].reshape(-1).astype(int):
            counts[c] += 1
    assert dict(zip(CLASS_NAMES, counts, strict=True)) == count_instances(default_yaml, "train")


# ---------------------------------------------------------------------------------------------------------------------
# CLI


def _app() -> typer.Typer:
    app = typer.Typer()
    demo_data_command.register(app)

    @app.callback()
    def _root() -> None:  # keeps "demo-data" a named subcommand even though it is the only one
        pass

    return app


def test_cli_generates_and_prints_counts(tmp_path: Path) -> None:
    out = tmp_path / "shapes"
    args = ["demo-data", "--out", str(out), "--n-train", "40", "--n-val", "20", "--seed", "2", "--rare-ratio", "5"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert f"dataset: {out.resolve() / 'data.yaml'}" in result.stdout
    for name in CLASS_NAMES:
        assert name in result.stdout
    assert json.loads((out / "manifest.json").read_text())["args"] == {
        "n_train": 40,
        "n_val": 20,
        "img_size": 64,
        "seed": 2,
        "rare_ratio": 5.0,
    }
    again = CliRunner().invoke(_app(), args)  # same options: reused
    assert again.exit_code == 0 and again.stdout == result.stdout


def test_cli_user_error_exits_1_without_traceback(tmp_path: Path) -> None:
    out = tmp_path / "foreign"
    out.mkdir()
    (out / "x.txt").write_text("x")
    result = CliRunner().invoke(_app(), ["demo-data", "--out", str(out), "--n-train", "4", "--n-val", "2", "--force"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.output
    assert (out / "x.txt").exists()


def test_cli_defaults_match_library() -> None:
    library = inspect.signature(generate_demo_dataset).parameters
    command = inspect.signature(demo_data_command.demo_data).parameters
    for name in ("n_train", "n_val", "img_size", "seed", "rare_ratio", "force", "task"):
        assert command[name].default.default == library[name].default, name
    assert command["out"].default.default is None  # datasets/shapes for detect, datasets/shapes-<task> otherwise


def test_command_module_imports_light() -> None:
    code = (
        "import sys, yolocustom.commands.demo_data; "
        "print(sorted(m for m in ('numpy', 'cv2', 'torch', 'ultralytics') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
