"""Tests for ``yolocustom.datasets``: dataset YAML resolution and split listing, checked against Ultralytics itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from yolocustom import datasets
from yolocustom.datasets import (
    DatasetSpec,
    label_file_for,
    resolve_dataset,
    split_image_files,
    split_image_paths,
    ultralytics_datasets_dir,
    ultralytics_root,
)
from yolocustom.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def _touch_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not decoded here")


def _write_yaml(path: Path, cfg: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def ultra_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Ultralytics' check_det_dataset made safe offline (no font download), with a private datasets_dir."""
    import ultralytics.data.utils as u

    ddir = tmp_path / "ultra_datasets"
    ddir.mkdir()
    monkeypatch.setattr(u, "check_font", lambda *a, **k: None)
    monkeypatch.setattr(u, "DATASETS_DIR", ddir)
    monkeypatch.setattr(datasets, "ultralytics_datasets_dir", lambda: ddir)

    def check(yaml_file: Path, split: str = "") -> dict[str, Any]:
        return u.check_det_dataset(str(yaml_file), autodownload=False, split=split)

    check.datasets_dir = ddir  # type: ignore[attr-defined]
    return check


def _same_as_ultralytics(spec: DatasetSpec, data: dict[str, Any]) -> None:
    assert spec.root == Path(data["path"]).resolve()
    assert spec.names == data["names"] and spec.nc == data["nc"]
    for split in ("train", "val", "test"):
        if data.get(split):
            expected = data[split] if isinstance(data[split], list) else [data[split]]
            assert [str(p) for p in spec.split_paths(split)] == expected, split


# ---------------------------------------------------------------------------------------------------- path resolution


def test_empty_path_means_the_yaml_folder(tmp_path: Path, ultra_check: Any) -> None:
    _touch_image(tmp_path / "ds" / "images" / "train" / "a.jpg")
    _touch_image(tmp_path / "ds" / "images" / "val" / "b.jpg")
    y = _write_yaml(tmp_path / "ds" / "data.yaml", {"path": None, "train": "images/train", "val": "images/val",
                                                    "names": ["a", "b"]})  # fmt: skip
    spec = resolve_dataset(y)
    assert spec.root == (tmp_path / "ds").resolve() and spec.yaml_path == y.resolve()
    _same_as_ultralytics(spec, ultra_check(y))


def test_absolute_path_lists_and_dotdot_fallback(tmp_path: Path, ultra_check: Any) -> None:
    root = tmp_path / "root"
    for sub in ("images/train", "extra/imgs", "images/val"):
        _touch_image(root / sub / "x.png")
    cfg = {
        "path": str(root),
        "train": ["images/train", "extra/imgs"],
        "val": "../images/val",  # does not exist above root: Ultralytics retries without '../'
        "names": {0: "x"},
    }
    spec = resolve_dataset(_write_yaml(tmp_path / "cfg" / "d.yaml", cfg))
    assert [p.name for p in spec.split_paths("train")] == ["train", "imgs"]
    assert spec.split_paths("val") == [(root / "images" / "val").resolve()]
    _same_as_ultralytics(spec, ultra_check(tmp_path / "cfg" / "d.yaml"))


def test_relative_path_uses_working_directory_first(
    tmp_path: Path, ultra_check: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative 'path:' is taken from the working directory when it exists there (not from the YAML's folder)."""
    _touch_image(tmp_path / "work" / "mydata" / "images" / "train" / "a.jpg")
    _touch_image(tmp_path / "work" / "mydata" / "images" / "val" / "a.jpg")
    y = _write_yaml(tmp_path / "elsewhere" / "d.yaml", {"path": "mydata", "train": "images/train",
                                                         "val": "images/val", "names": ["a"]})  # fmt: skip
    monkeypatch.chdir(tmp_path / "work")
    spec = resolve_dataset(y)
    assert spec.root == (tmp_path / "work" / "mydata").resolve()
    _same_as_ultralytics(spec, ultra_check(y))


def test_relative_path_falls_back_to_datasets_dir(
    tmp_path: Path, ultra_check: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ddir: Path = ultra_check.datasets_dir
    _touch_image(ddir / "far" / "images" / "train" / "a.jpg")
    _touch_image(ddir / "far" / "images" / "val" / "a.jpg")
    y = _write_yaml(tmp_path / "d.yaml", {"path": "far", "train": "images/train", "val": "images/val", "nc": 2})
    monkeypatch.chdir(tmp_path)
    spec = resolve_dataset(y)
    assert spec.root == (ddir / "far").resolve()
    assert spec.names == {0: "class_0", 1: "class_1"}
    _same_as_ultralytics(spec, ultra_check(y))


def test_validation_key_and_names_forms(tmp_path: Path, ultra_check: Any) -> None:
    _touch_image(tmp_path / "images" / "a.jpg")
    for names in (["p", "q"], {0: "p", 1: "q"}, {"1": "q", "0": "p"}):
        y = _write_yaml(tmp_path / "d.yaml", {"train": "images", "validation": "images", "names": names})
        spec = resolve_dataset(y)
        assert spec.names == {0: "p", 1: "q"} and spec.nc == 2 and spec.splits["val"] == "images"
        _same_as_ultralytics(spec, ultra_check(y))


def test_folder_as_data_finds_its_yaml(tmp_path: Path) -> None:
    y = _write_yaml(tmp_path / "ds" / "ds.yaml", {"train": "i", "val": "i", "names": ["a"]})
    assert resolve_dataset(tmp_path / "ds").yaml_path == y.resolve()


def test_bundled_name_resolves_without_importing_ultralytics() -> None:
    code = (
        "import sys\nfrom yolocustom.datasets import resolve_dataset\n"
        "a, b = resolve_dataset('coco8'), resolve_dataset('coco8.yaml')\n"
        "assert a.yaml_path == b.yaml_path, (a, b)\n"
        "print(a.yaml_path, a.nc, a.names[0], a.root.name, 'ultralytics' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    yaml_path, nc, first, root_name, imported = out.stdout.split()
    root = ultralytics_root()
    assert root is not None
    assert Path(yaml_path) == (root / "cfg" / "datasets" / "coco8.yaml").resolve()
    assert (nc, first, root_name, imported) == ("80", "person", "coco8", "False")


def test_datasets_dir_matches_ultralytics_and_reads_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ultralytics.utils import DATASETS_DIR

    assert ultralytics_datasets_dir() == Path(DATASETS_DIR)  # this environment's real settings
    cfg = tmp_path / "Ultralytics"
    cfg.mkdir()
    (cfg / "settings.json").write_text(json.dumps({"datasets_dir": str(tmp_path / "mine")}))
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path))
    assert ultralytics_datasets_dir() == tmp_path / "mine"


# ------------------------------------------------------------------------------------------------------ split listing


def _ultra_img_files(img_path: str | list[str]) -> list[str]:
    from ultralytics.data.base import BaseDataset

    return BaseDataset.get_img_files(SimpleNamespace(prefix="", fraction=1.0), img_path)


def test_split_listing_matches_ultralytics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "d"
    for rel in ("images/train/b.jpg", "images/train/a.PNG", "images/train/sub/c.webp", "images/train/notes.txt",
                "images/train/noext", "images/other/z.bmp", "images/other/y.jpeg"):  # fmt: skip
        _touch_image(root / rel)
    for rel in ("images/train/.hidden/h.jpg", "images/train/.h.jpg", "images/train/dir.jpg/d.png", "outside/o.jpg"):
        _touch_image(root / rel)
    (root / "images" / "train" / "linked").symlink_to(root / "outside", target_is_directory=True)
    lst = root / "list.txt"
    lst.write_text(f"./images/other/z.bmp\n{root}/images/other/y.jpeg\nimages/other/rel.jpg\n\n", encoding="utf-8")
    y = _write_yaml(root / "d.yaml", {"path": str(root), "train": "images/train", "val": "list.txt",
                                      "test": ["images/train", "list.txt"], "names": ["a"]})  # fmt: skip
    spec = resolve_dataset(y)
    monkeypatch.chdir(tmp_path)
    for split in ("train", "val", "test"):
        sources = [str(p) for p in spec.split_paths(split)]
        expected = _ultra_img_files(sources if len(sources) > 1 else sources[0])
        assert split_image_paths(spec, split) == expected, split
        assert split_image_files(spec, split) == [Path(p) for p in expected]
    assert split_image_paths(spec, "val")[-1] == "images/other/rel.jpg"  # relative lines stay cwd-relative
    train = split_image_paths(spec, "train")
    assert str(root / "images" / "train" / "linked" / "o.jpg") in train  # symlinked folders are followed
    assert not any("/." in p.replace(os.sep, "/") for p in train)  # hidden files and folders are skipped


def test_label_file_for_matches_img2label_paths() -> None:
    from ultralytics.data.utils import img2label_paths

    cases = ["/d/images/train/a.jpg", "/d/images/x/images/b.c.png", "/d/pics/a.jpg", "rel/images/a.JPG", "/images/a"]
    assert [str(label_file_for(p)) for p in cases] == img2label_paths(cases) == datasets.img2label_paths(cases)
    assert label_file_for(Path("/d/images/train/a.jpg")) == Path("/d/labels/train/a.txt")


# ------------------------------------------------------------------------------------------------------------- errors


def test_missing_yaml_names_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as e:
        resolve_dataset("no_such_dataset.yaml")
    msg = str(e.value)
    assert str(tmp_path / "no_such_dataset.yaml") in msg and "cfg" in msg and "Nothing is downloaded" in msg


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ({"val": "x", "names": ["a"]}, "'train:' key missing"),
        ({"train": "x", "val": "x"}, "either 'names' or 'nc'"),
        ({"train": "x", "val": "x", "names": ["a"], "nc": 2}, "must match"),
        ({"train": "x", "val": "x", "nc": "many"}, "must be an integer"),
        ({"train": "x", "val": "x", "names": "a b"}, "'names' must be list or dict"),
        ({"train": "x", "val": "x", "names": {0: "a", 5: "b"}}, "requires class indices 0-1"),
        ({"train": "x", "val": "x", "names": []}, "at least one class name"),
        (["not", "a", "mapping"], "is not a YAML mapping"),
    ],
)
def test_invalid_yaml_is_a_data_error_naming_the_file(tmp_path: Path, content: Any, needle: str) -> None:
    y = tmp_path / "bad.yaml"
    y.write_text(yaml.safe_dump(content), encoding="utf-8")
    with pytest.raises(DataError) as e:
        resolve_dataset(y)
    assert needle in str(e.value) and str(y) in str(e.value)


def test_urls_and_archives_are_refused_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="URLs are not supported"):
        resolve_dataset("https://example.com/data.zip")
    (tmp_path / "d.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(DataError, match="archive"):
        resolve_dataset(tmp_path / "d.zip")


def test_missing_split_folder_names_it(tmp_path: Path) -> None:
    y = _write_yaml(tmp_path / "d.yaml", {"train": "images/train", "val": "images/val", "names": ["a"]})
    spec = resolve_dataset(y)
    with pytest.raises(DataError) as e:
        split_image_paths(spec, "train")
    assert str(tmp_path / "images" / "train") in str(e.value) and "has no 'download:'" in str(e.value)
    with pytest.raises(DataError, match="split 'test' is not defined"):
        split_image_paths(spec, "test")


def test_split_without_images_is_empty_error(tmp_path: Path) -> None:
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "images" / "train" / "readme.md").write_text("no images")
    y = _write_yaml(tmp_path / "d.yaml", {"train": "images/train", "val": "images/train", "names": ["a"]})
    with pytest.raises(DataError, match="is empty") as e:
        split_image_paths(resolve_dataset(y), "train")
    assert str(tmp_path / "images" / "train") in str(e.value)


def test_importing_datasets_is_light() -> None:
    code = "import sys, yolocustom.datasets\nprint(sorted(m for m in ('numpy', 'ultralytics') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert os.path.basename(datasets.__file__) == "datasets.py"
