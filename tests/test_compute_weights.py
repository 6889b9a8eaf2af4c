"""Tests for ``yolocustom compute-weights`` and the label counter behind it.

The reference for every count is Ultralytics' own ``YOLODataset(...).labels`` built on the same files: on the shared
coco8 copy (skipped when absent) and on a generated dataset seeded with every corrupt-label case Ultralytics rejects.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from conftest import median_seconds
from typer.testing import CliRunner

from yolocustom import datasets, label_counts
from yolocustom.commands import compute_weights
from yolocustom.datasets import img2label_path, resolve_dataset, split_image_paths
from yolocustom.label_counts import count_labels, verify_label_file

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
COCO8 = SHARED / "coco8"
REPO = Path(__file__).resolve().parents[1]
# Ultralytics' own loader warns when '1e40' overflows float32 while building the reference; that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")

# ------------------------------------------------------------------------------------------------------------ helpers


def _app() -> typer.Typer:
    """A throwaway CLI holding only compute-weights (the callback keeps it a subcommand)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """Test app."""

    compute_weights.register(app)
    return app


def _run(*args: str | Path) -> Any:
    return CliRunner().invoke(_app(), ["compute-weights", *map(str, args)])


def _png(path: Path, size: int = 32) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (90, 140, 30)).save(path, "PNG")


def _dataset(root: Path, labels: Mapping[str, bytes | None], names: Any = ("cat", "dog", "bird")) -> Path:
    """Write ``root/images/train/<stem>.png`` for every stem plus its label file (None: none); return the YAML."""
    for stem, content in labels.items():
        _png(root / "images" / "train" / f"{stem}.png")
        if content is not None:
            lb = root / "labels" / "train" / f"{stem}.txt"
            lb.parent.mkdir(parents=True, exist_ok=True)
            lb.write_bytes(content)
    (root / "images" / "val").mkdir(parents=True, exist_ok=True)
    cfg = {"path": str(root), "train": "images/train", "val": "images/val", "names": names}
    cfg["names"] = list(names) if isinstance(names, tuple) else names
    file = root / "data.yaml"
    file.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return file


def _counts_dataset(root: Path, per_class: list[int], boxes_per_file: int = 3, names: Any = None) -> Path:
    """A clean dataset with exactly ``per_class[c]`` instances of class ``c``."""
    rows = [c for c, n in enumerate(per_class) for _ in range(n)]
    labels: dict[str, bytes | None] = {}
    for f in range(0, len(rows), boxes_per_file):
        lines = [f"{c} {0.1 + 0.01 * k:.2f} 0.5 0.05 0.05" for k, c in enumerate(rows[f : f + boxes_per_file])]
        labels[f"im{f:04d}"] = ("\n".join(lines) + "\n").encode()
    if names is None:
        names = {i: f"c{i}" for i in range(len(per_class))}
    return _dataset(root, labels, names=names)


def _reference(img_path: str | list[str], names: dict[int, str], kpt_shape: Any = None) -> dict[str, Any]:
    """Build Ultralytics' YOLODataset on the files; return what it loaded and the files it rejected, with reasons."""
    import numpy as np
    from ultralytics.data import YOLODataset

    data: dict[str, Any] = {"names": names, "channels": 3}
    if kpt_shape is not None:
        data["kpt_shape"] = kpt_shape
    ds = YOLODataset(img_path=img_path, data=data, task="detect", augment=False, imgsz=64)
    counts = [0] * len(names)
    for lb in ds.labels:
        for c in lb["cls"].reshape(-1):
            counts[int(c)] += 1
    cache = Path(ds.label_files[0]).parent.with_suffix(".cache")
    rejected = set()
    if cache.exists():  # the cache keeps Ultralytics' warnings: "<im_file>: ignoring corrupt image/label: <reason>"
        for msg in np.load(str(cache), allow_pickle=True).item()["msgs"]:
            im_file, mark, reason = msg.partition(": ignoring corrupt image/label: ")
            if mark:
                rejected.add((img2label_path(im_file), reason))
    return {
        "counts": counts,
        "images": len(ds.labels),
        "backgrounds": sum(len(lb["cls"]) == 0 for lb in ds.labels),
        "rejected": rejected,
        "cache": cache,
    }


# A generated split covering every rule: file stem -> label bytes (None: an image without a label file).
CORRUPT_CASES: dict[str, bytes | None] = {
    "ok_basic": b"0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n",
    "ok_crlf_bom": b"\xef\xbb\xbf2 0.5 0.5 0.2 0.2\r\n0 0.1 0.1 0.05 0.05\r\n",
    "ok_trailing_blank": b"1 0.5 0.5 0.1 0.1\n\n\n   \n\t\n",
    "ok_tabs_spaces": b"  2\t0.25   0.25 0.1\t0.1  \n",
    "ok_exotic_whitespace": b"0\x1f0.5 0.5 0.2 0.2\x0c1 0.5\x1f0.5 0.2 0.2\x1c\x0b2 .1 .1 .1 .1\x1e",
    "ok_no_final_newline": b"0 0.5 0.5 0.2 0.2\n0 0.6 0.5 0.2 0.2",
    "ok_duplicates": b"0 0.5 0.5 0.2 0.2\n0 0.50 0.5000 0.2 0.2\n1 0 0.4 0.1 0.1\n1 -0 0.4 0.1 0.1\n2 .3 .3 .1 .1\n",
    "ok_float_class": b"2.0 0.5 0.5 0.2 0.2\n",
    "ok_tolerance": b"0 1.005 0.5 0.01 0.2\n1 -0.005 0.5 0.02 0.2\n",
    "ok_segment": b"2 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n2 0.5 0.5 0.6 0.5 0.6 0.6\n",
    "ok_segment_same_box": b"1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n1 0.1 0.1 0.3 0.3 0.1 0.3 0.3 0.1\n",
    "ok_segment_dup": b"0 0.1 0.1 0.2 0.1 0.2 0.2\n0 0.1 0.1 0.2 0.1 0.2 0.2\n",
    "bg_empty": b"",
    "bg_blank_lines": b"\n \r\n\n",
    "bg_bom_only": b"\xef\xbb\xbf",
    "bg_no_label": None,
    "ok_at_tolerance": b"0 1.01 0.5 0.2 0.2\n1 -0.01 0.5 0.2 0.2\n",
    "bad_four_fields": b"0 0.5 0.5 0.2\n",
    "bad_six_fields": b"0 0.5 0.5 0.2 0.2 0.9\n",
    "bad_ragged": b"0 0.5 0.5 0.2 0.2\n1 0.5 0.5\n",
    "bad_not_number": b"0 0.5 abc 0.2 0.2\n",
    "bad_nan": b"0 nan 0.5 0.2 0.2\n",
    "bad_negative_class": b"-1 0.5 0.5 0.2 0.2\n",
    "bad_class_too_big": b"0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n",
    "bad_fractional_class": b"1.5 0.5 0.5 0.2 0.2\n",
    "bad_unnormalised": b"0 50 60 20 20\n",
    "bad_just_over_tolerance": b"0 0.5 1.015 0.2 0.2\n",
    "bad_just_under_tolerance": b"1 -0.015 0.5 0.2 0.2\n",
    "bad_negative_coord": b"0 -0.5 0.5 0.2 0.2\n",
    "bad_negative_width": b"0 0.5 0.5 -0.005 0.2\n",
    "bad_overflow": b"0 1e40 0.5 0.2 0.2\n",
    "bad_not_utf8": b"\xff\xfe0 0.5 0.5 0.2 0.2\n",
    "bad_segment_mixed": b"0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n",
    "bad_segment_odd": b"0 0.1 0.1 0.2 0.1 0.2 0.2 0.1\n",
}
CORRUPT_NAMES = {0: "cat", 1: "dog", 2: "bird"}


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The generated corrupt split: our scans (made before any cache exists) and Ultralytics' reference."""
    root = tmp_path_factory.mktemp("corrupt")
    yaml_file = _dataset(root, CORRUPT_CASES, names=list(CORRUPT_NAMES.values()))
    spec = resolve_dataset(yaml_file)
    images = split_image_paths(spec, "train")
    scan = count_labels(images, spec.nc, use_cache=False)
    default_chunk = label_counts.CHUNK_SIZE
    try:  # tiny chunks: clean and corrupt files share one NumPy conversion, and some chunks hold only bad files
        label_counts.CHUNK_SIZE = 3
        chunked = count_labels(images, spec.nc, use_cache=False)
        pooled = count_labels(images, spec.nc, workers=2, use_cache=False)
    finally:
        label_counts.CHUNK_SIZE = default_chunk
    ref = _reference(str(root / "images" / "train"), CORRUPT_NAMES)
    return {
        "root": root,
        "yaml": yaml_file,
        "images": images,
        "scan": scan,
        "chunked": chunked,
        "pooled": pooled,
        "ref": ref,
    }


def _summary(r: Any) -> dict[str, Any]:
    return {"counts": r.counts, "images": r.images, "backgrounds": r.backgrounds, "rejected": set(r.rejected)}


def test_corrupt_split_matches_yolodataset(corrupt: dict[str, Any]) -> None:
    ref = corrupt["ref"]
    expected = {k: ref[k] for k in ("counts", "images", "backgrounds", "rejected")}
    for key in ("scan", "chunked", "pooled"):
        assert _summary(corrupt[key]) == expected, key
    scan = corrupt["scan"]
    assert scan.instances == sum(ref["counts"])
    assert scan.source == "scan"


def test_corrupt_split_exercises_every_rule(corrupt: dict[str, Any]) -> None:
    """Guard the fixture itself: the ok_/bg_/bad_ prefixes say what Ultralytics does with each file."""
    scan = corrupt["scan"]
    rejected_stems = {Path(f).stem for f, _ in scan.rejected}
    assert rejected_stems == {s for s in CORRUPT_CASES if s.startswith("bad_")}
    assert scan.images == len(CORRUPT_CASES) - len(rejected_stems)
    assert scan.backgrounds == sum(s.startswith("bg_") for s in CORRUPT_CASES)
    assert scan.duplicates == 3  # '0.50' == '0.5', '-0' == '0', and one repeated polygon
    reasons = dict((Path(f).stem, r) for f, r in scan.rejected)
    assert reasons["bad_four_fields"] == "labels require 5 columns, 4 columns detected"
    assert reasons["bad_not_number"] == "could not convert string to float: 'abc'"
    assert reasons["bad_class_too_big"].startswith("Label class 3 exceeds dataset class count 3")
    assert reasons["bad_negative_class"].startswith("negative label values")
    assert reasons["bad_fractional_class"].startswith("non-integer class labels")
    assert reasons["bad_unnormalised"].startswith("non-normalized or out of bounds coordinates")
    assert reasons["bad_segment_mixed"] == "labels mix segment and detection rows"
    assert "utf-8" in reasons["bad_not_utf8"]


def test_uses_valid_ultralytics_cache_and_ignores_stale(corrupt: dict[str, Any]) -> None:
    """After YOLODataset wrote labels/train.cache, the counter reads it; touching a label file invalidates it."""
    ref, images = corrupt["ref"], corrupt["images"]
    assert ref["cache"].exists()
    cached = count_labels(images, 3)
    assert cached.source == "cache" and cached.cache_file == str(ref["cache"])
    assert _summary(cached) == _summary(corrupt["scan"])

    lb = corrupt["root"] / "labels" / "train" / "ok_basic.txt"
    old = lb.read_bytes()
    try:
        lb.write_bytes(old + b"2 0.9 0.9 0.05 0.05\n")
        fresh = count_labels(images, 3)
        assert fresh.source == "scan"
        assert fresh.counts[2] == corrupt["scan"].counts[2] + 1
        assert count_labels(images, 4).source == "scan"  # nc is part of the hash too
    finally:
        lb.write_bytes(old)


def test_image_list_with_missing_image_is_rejected_like_ultralytics(tmp_path: Path) -> None:
    """A .txt split listing an image that does not exist: Ultralytics drops it as corrupt, and so do we."""
    yaml_file = _dataset(tmp_path, {"a": b"0 0.5 0.5 0.1 0.1\n", "b": b"1 0.5 0.5 0.1 0.1\n"})
    ghost = tmp_path / "images" / "train" / "ghost.png"
    listing = tmp_path / "train.txt"
    listing.write_text("./images/train/a.png\n./images/train/b.png\n./images/train/ghost.png\n", encoding="utf-8")
    cfg = yaml.safe_load(yaml_file.read_text())
    cfg["train"] = "train.txt"
    yaml_file.write_text(yaml.safe_dump(cfg))
    images = split_image_paths(resolve_dataset(yaml_file), "train")
    assert str(ghost) in images
    ours = count_labels(images, 3, use_cache=False)
    ref = _reference(str(listing), {0: "cat", 1: "dog", 2: "bird"})
    assert _summary(ours) == {k: ref[k] for k in ("counts", "images", "backgrounds", "rejected")}
    assert [Path(f).stem for f, _ in ours.rejected] == ["ghost"]


def test_pose_rows_are_trimmed_to_boxes_like_ultralytics(tmp_path: Path) -> None:
    """With kpt_shape in the YAML, a box task keeps the first 5 values of pose rows (Ultralytics 8.4 behaviour)."""
    pose = "0 0.5 0.5 0.2 0.2 " + " ".join(["0.5 0.5 2"] * 2)
    labels = {"p1": f"{pose}\n{pose.replace('0 0.5', '1 0.4', 1)}\n".encode(), "p2": f"{pose}\n".encode()}
    root = tmp_path / "pose"
    _dataset(root, labels, names=["a", "b"])
    images = sorted(str(p) for p in (root / "images" / "train").iterdir())
    ours = count_labels(images, 2, kpt_shape=[2, 3], use_cache=False)
    ref = _reference(str(root / "images" / "train"), {0: "a", 1: "b"}, kpt_shape=[2, 3])
    assert ours.counts == ref["counts"] == [2, 1]
    assert count_labels(images, 2, use_cache=False).rejected  # without kpt_shape the 11-value rows are corrupt


@pytest.mark.skipif(not COCO8.is_dir(), reason=f"shared dataset not found at {COCO8}")
@pytest.mark.parametrize("split", ["train", "val"])
def test_coco8_counts_match_yolodataset(tmp_path: Path, split: str) -> None:
    cfg = yaml.safe_load((COCO8 / "coco8.yaml").read_text(encoding="utf-8"))
    cfg["path"] = str(COCO8)
    yaml_file = tmp_path / "coco8.yaml"
    yaml_file.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    spec = resolve_dataset(yaml_file)
    images = split_image_paths(spec, split)
    ours = count_labels(images, spec.nc, use_cache=False)
    ref = _reference(str(COCO8 / "images" / split), spec.names)
    assert ours.counts == ref["counts"]
    assert (ours.images, ours.backgrounds, ours.rejected) == (ref["images"], ref["backgrounds"], [])
    assert ours.instances == {"train": 13, "val": 17}[split]  # COUNTS.md next to the shared datasets


def test_random_labels_match_yolodataset(tmp_path: Path) -> None:
    """Seeded random label files mixing valid rows, near-threshold values, odd number spellings and corrupt rows."""
    import random

    rng = random.Random(1234)
    values = ["0.5", "0.25", ".5", "5e-1", "+0.3", "1", "0", "-0", "1.01", "1.0100001", "1.0101", "-0.01", "-0.0101"]
    values += ["0.999", "1e-3", "0.1000", "nan", "x", "1_0", "inf"]
    classes = ["0", "1", "2", "2.0", "3", "-1", "0.5", "1e0"]

    def row() -> str:
        r = rng.random()
        if r < 0.75:  # mostly plausible boxes
            x, y, w, h = rng.random(), rng.random(), rng.random() / 4, rng.random() / 4
            return f"{rng.randrange(3)} {x:.3f} {y:.3f} {w:.3f} {h:.3f}"
        if r < 0.97:
            return " ".join([rng.choice(classes)] + [rng.choice(values) for _ in range(4)])
        return " ".join([rng.choice(classes)] + [rng.choice(values) for _ in range(rng.choice([3, 5, 6, 8]))])

    labels: dict[str, bytes | None] = {}
    for i in range(300):
        rows = [row() for _ in range(rng.randrange(0, 6))]
        if rows and rng.random() < 0.2:
            rows.append(rng.choice(rows))  # duplicate row
        sep = rng.choice(["\n", "\r\n"])
        body = (sep.join(rows) + rng.choice(["", sep, sep * 3])).encode()
        labels[f"r{i:03d}"] = None if rng.random() < 0.05 else (b"\xef\xbb\xbf" if rng.random() < 0.1 else b"") + body
    _dataset(tmp_path, labels)
    images = sorted(str(p) for p in (tmp_path / "images" / "train").iterdir())
    default_chunk = label_counts.CHUNK_SIZE
    try:
        label_counts.CHUNK_SIZE = 37
        ours = count_labels(images, 3, use_cache=False)
    finally:
        label_counts.CHUNK_SIZE = default_chunk
    ref = _reference(str(tmp_path / "images" / "train"), CORRUPT_NAMES)
    assert _summary(ours) == {k: ref[k] for k in ("counts", "images", "backgrounds", "rejected")}
    assert 20 < len(ours.rejected) < 200 and ours.duplicates > 0  # the mix really exercises both outcomes


# ----------------------------------------------------------------------------------------------------- weights maths


def _json(*args: str | Path) -> dict[str, Any]:
    result = _run(*args, "--format", "json", "--quiet")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _expected(counts: list[int], scheme: str, beta: float, normalize: str, max_weight: float | None) -> list[float]:
    """The documented formulas, written out independently of yolocustom.weighting."""
    top = max(counts)
    raw: list[float | None] = []
    for n in counts:
        if n == 0:
            raw.append(None)
        elif scheme == "inverse":
            raw.append(top / n)
        elif scheme == "sqrt_inverse":
            raw.append(math.sqrt(top / n))
        else:
            raw.append((1 - beta) / (1 - beta**n))
    floor = min(w for w in raw if w is not None)
    w = [floor if x is None else x for x in raw]
    if normalize == "mean":
        w = [x / (sum(w) / len(w)) for x in w]
    return [min(x, max_weight) for x in w] if max_weight is not None else w


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    per_class = [40, 10, 3, 1, 0]
    return _counts_dataset(tmp_path_factory.mktemp("counted"), per_class), per_class


@pytest.mark.parametrize(
    ("scheme", "beta", "normalize", "max_weight"),
    [
        ("inverse", 0.999, "mean", None),
        ("inverse", 0.999, "none", None),
        ("sqrt_inverse", 0.999, "mean", None),
        ("sqrt_inverse", 0.999, "none", 2.5),
        ("effective_number", 0.9, "mean", None),
        ("effective_number", 0.999, "none", None),
        ("inverse", 0.999, "mean", 2.0),
    ],
)
def test_weights_follow_scheme_formulas(
    counted: tuple[Path, list[int]], scheme: str, beta: float, normalize: str, max_weight: float | None
) -> None:
    yaml_file, per_class = counted
    args: list[str | Path] = ["--data", yaml_file, "--scheme", scheme, "--beta", str(beta), "--normalize", normalize]
    if max_weight is not None:
        args += ["--max-weight", str(max_weight)]
    out = _json(*args)
    assert out["counts"] == per_class
    assert out["weights"] == pytest.approx(_expected(per_class, scheme, beta, normalize, max_weight), rel=1e-12)
    if max_weight is not None:
        assert max(out["weights"]) == pytest.approx(max_weight)


def test_cli_and_shared_maths_agree(counted: tuple[Path, list[int]]) -> None:
    """The CLI must print exactly what yolocustom.weighting (used by the trainer's auto mode) computes."""
    from yolocustom.weighting import compute_class_weights

    yaml_file, per_class = counted
    out = _json("--data", yaml_file, "--scheme", "sqrt_inverse", "--max-weight", "1.7")
    assert out["weights"] == compute_class_weights(per_class, "sqrt_inverse", max_weight=1.7).weights


# ------------------------------------------------------------------------------------------------------ CLI outputs


def test_json_is_schema_stable(counted: tuple[Path, list[int]]) -> None:
    yaml_file, per_class = counted
    out = _json("--data", yaml_file, "--split", "train")
    assert list(out) == list(compute_weights.JSON_KEYS)
    assert out["data"] == str(yaml_file.resolve())
    assert (out["split"], out["scheme"], out["normalize"]) == ("train", "inverse", "mean")
    assert out["names"] == {str(i): f"c{i}" for i in range(5)}
    assert out["instances"] == sum(per_class) and out["backgrounds"] == 0
    assert out["images"] == math.ceil(sum(per_class) / 3)
    assert len(out["weights"]) == len(out["counts"]) == 5 and out["rejected"] == []
    assert all(isinstance(w, float) for w in out["weights"])


def test_json_lists_rejected_files(corrupt: dict[str, Any]) -> None:
    result = _run("--data", corrupt["yaml"], "--format", "json", "--no-cache")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {(r["file"], r["reason"]) for r in out["rejected"]} == corrupt["ref"]["rejected"]
    assert out["counts"] == corrupt["ref"]["counts"]
    assert all(set(r) == {"file", "reason"} for r in out["rejected"])
    for f, _ in corrupt["ref"]["rejected"]:  # each is also warned about on stderr, as Ultralytics warns
        assert f"warning: {f}: ignoring corrupt image/label:" in result.stderr


def test_table_output(counted: tuple[Path, list[int]]) -> None:
    yaml_file, _ = counted
    result = _run("--data", yaml_file, "--quiet")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "name" in line)
    assert header.split()[1::2] == ["id", "name", "count", "share", "weight"]
    rows = [line.split("│")[1:-1] for line in lines if line.startswith("│")]
    cells = [[c.strip() for c in row] for row in rows]
    # 40 of 54 instances; inverse raw weights 1, 4, 13.33, 40 and 1 (empty class) have mean 11.8667
    assert cells[0] == ["0", "c0", "40", "74.1%", "0.0843"]
    assert cells[3] == ["3", "c3", "1", "1.9%", "3.3708"]
    assert cells[-1] == ["", "all", "54", "100.0%", ""]  # the footer
    caption = " ".join(" ".join(lines[lines.index(next(x for x in lines if x.startswith("└"))) + 1 :]).split())
    assert caption == (
        "18 images, 0 backgrounds, 54 instances, imbalance ratio 40.00 (max/min count over classes present)"
    )


def test_yaml_output_is_ready_to_paste(counted: tuple[Path, list[int]]) -> None:
    yaml_file, per_class = counted
    result = _run("--data", yaml_file, "--format", "yaml", "--scheme", "sqrt_inverse")
    assert result.exit_code == 0, result.output
    block = yaml.safe_load(result.stdout)
    weights = block["features"]["class_weights"]["weights"]
    assert list(weights) == [f"c{i}" for i in range(5)]
    expected = _expected(per_class, "sqrt_inverse", 0.999, "mean", None)
    assert list(weights.values()) == pytest.approx(expected, rel=1e-5)
    assert result.stdout.startswith("# yolocustom compute-weights")


def test_yaml_block_is_accepted_by_the_recipe_schema(counted: tuple[Path, list[int]]) -> None:
    """The pasted block validates as a class_weights feature and maps back onto the same per-class weights."""
    recipe = pytest.importorskip("yolocustom.recipe")
    feature = pytest.importorskip("yolocustom.features.class_weights")
    yaml_file, per_class = counted
    out = _run("--data", yaml_file, "--format", "yaml", "--scheme", "effective_number", "--beta", "0.9999999")
    block = yaml.safe_load(out.stdout)["features"]["class_weights"]
    parsed = recipe.ClassWeightsFeature.model_validate(block)
    mapped = feature.map_explicit_weights(parsed.weights, {i: f"c{i}" for i in range(len(per_class))})
    expected = _expected(per_class, "effective_number", 0.9999999, "mean", None)
    assert mapped == pytest.approx(expected, rel=1e-5) and min(mapped) > 0


def test_yaml_output_quotes_awkward_names(tmp_path: Path) -> None:
    names = {0: "yes", 1: "null", 2: "a: b"}
    yaml_file = _counts_dataset(tmp_path, [2, 1, 1], names=names)
    block = yaml.safe_load(_run("--data", yaml_file, "--format", "yaml").stdout)
    assert list(block["features"]["class_weights"]["weights"]) == ["yes", "null", "a: b"]


def test_output_file_and_plot(counted: tuple[Path, list[int]], tmp_path: Path) -> None:
    yaml_file, _ = counted
    out, png = tmp_path / "w.json", tmp_path / "w.png"
    result = _run("--data", yaml_file, "--format", "json", "--output", out, "--plot", png, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert json.loads(out.read_text())["counts"] == [40, 10, 3, 1, 0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.json", "w.png"]  # no temporary files left


@pytest.mark.parametrize("existing", [True, False])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_output_is_atomic_when_interrupted(
    counted: tuple[Path, list[int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool, error: type
) -> None:
    yaml_file, _ = counted
    target = tmp_path / "weights.yaml"
    if existing:
        target.write_text("old content\n")

    def crash_midway(f: Any, payload: bytes) -> None:
        f.write(payload[: len(payload) // 2])
        f.flush()
        raise error("simulated crash while writing")

    monkeypatch.setattr(compute_weights, "_write_payload", crash_midway)
    with pytest.raises(error):
        compute_weights.compute_weights(
            data=str(yaml_file), split="train", task="detect", scheme=compute_weights.SchemeChoice.inverse, beta=0.999,
            normalize=compute_weights.NormalizeChoice.mean, max_weight=None,
            fmt=compute_weights.FormatChoice.yaml, output=target, plot=None, workers=None, no_cache=False,
            quiet=True,
        )  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == (["weights.yaml"] if existing else [])
    if existing:
        assert target.read_text() == "old content\n"


def test_output_to_missing_folder_is_a_user_error(counted: tuple[Path, list[int]], tmp_path: Path) -> None:
    yaml_file, _ = counted
    result = _run("--data", yaml_file, "--output", tmp_path / "nope" / "w.json")
    assert result.exit_code == 1
    assert "does not exist" in result.stderr and str(tmp_path / "nope") in result.stderr


# ------------------------------------------------------------------------------------------------------- edge cases


def test_zero_instance_class_gets_defined_weight_and_warning(counted: tuple[Path, list[int]]) -> None:
    yaml_file, per_class = counted
    result = _run("--data", yaml_file, "--format", "json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert per_class[4] == 0
    assert math.isfinite(out["weights"][4]) and out["weights"][4] == pytest.approx(min(out["weights"]))
    assert "warning: class 4 'c4' has no instances in split 'train'" in result.stderr
    assert result.stderr.count("has no instances") == 1


def test_empty_split_is_an_error(tmp_path: Path) -> None:
    yaml_file = _dataset(tmp_path, {"a": b"0 0.5 0.5 0.1 0.1\n"})
    result = _run("--data", yaml_file, "--split", "val")
    assert result.exit_code == 1
    assert "error:" in result.stderr and "is empty" in result.stderr
    assert str(tmp_path / "images" / "val") in result.stderr
    assert "Traceback" not in result.output


def test_split_with_only_backgrounds_is_an_error(tmp_path: Path) -> None:
    yaml_file = _dataset(tmp_path, {"a": b"", "b": b"\n\n"})
    result = _run("--data", yaml_file)
    assert result.exit_code == 1
    assert "no labelled instances" in result.stderr and "2 backgrounds" in result.stderr


def test_missing_labels_folder_is_an_error_that_names_it(tmp_path: Path) -> None:
    yaml_file = _dataset(tmp_path, {"a": None, "b": None})
    result = _run("--data", yaml_file)
    assert result.exit_code == 1
    assert "labels folder not found" in result.stderr
    assert str(tmp_path / "labels" / "train") in result.stderr


def test_undefined_split_is_an_error(counted: tuple[Path, list[int]]) -> None:
    result = _run("--data", counted[0], "--split", "test")
    assert result.exit_code == 1 and "split 'test' is not defined" in result.stderr


def test_crlf_bom_and_trailing_blank_lines(tmp_path: Path) -> None:
    labels = {
        "crlf": b"0 0.5 0.5 0.2 0.2\r\n1 0.5 0.5 0.2 0.2\r\n",
        "bom": b"\xef\xbb\xbf1 0.5 0.5 0.2 0.2\n",
        "bom_crlf_blank": b"\xef\xbb\xbf1 0.4 0.5 0.2 0.2\r\n\r\n\r\n  \r\n",
        "cr_only": b"0 0.5 0.5 0.2 0.2\r0 0.4 0.4 0.2 0.2\r",
    }
    out = _json("--data", _dataset(tmp_path, labels, names=["a", "b"]))
    assert out["counts"] == [3, 3] and out["rejected"] == [] and out["backgrounds"] == 0


def test_one_class_dataset(tmp_path: Path) -> None:
    out = _json("--data", _counts_dataset(tmp_path, [7], names=["only"]), "--scheme", "effective_number")
    assert out["counts"] == [7] and out["names"] == {"0": "only"}
    assert out["weights"] == [pytest.approx(1.0)]


def test_names_as_list_or_mapping_give_the_same_result(tmp_path: Path) -> None:
    as_list = _json("--data", _counts_dataset(tmp_path / "l", [3, 1], names=["x", "y"]))
    as_map = _json("--data", _counts_dataset(tmp_path / "m", [3, 1], names={0: "x", 1: "y"}))
    as_str_keys = _json("--data", _counts_dataset(tmp_path / "s", [3, 1], names={"0": "x", "1": "y"}))
    for out in (as_list, as_map, as_str_keys):
        assert out["names"] == {"0": "x", "1": "y"} and out["counts"] == [3, 1]
        assert out["weights"] == as_list["weights"]


def test_bundled_name_without_data_fails_fast_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """coco8.yaml resolves to Ultralytics' bundled config; its images are absent and the network is down: its
    download: is tried through one quick connect, then a clear error names the URL and datasets_dir (no retries, no
    Ultralytics import)."""
    import time

    attempts: list[Any] = []

    def unreachable(address: Any, *args: Any, **kwargs: Any) -> None:
        attempts.append(address)
        raise OSError(101, "Network is unreachable")

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("compute-weights opened a network connection past the reachability probe")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(datasets, "ultralytics_datasets_dir", lambda: tmp_path / "datasets")  # no coco8 there
    monkeypatch.chdir(tmp_path)
    local = tmp_path / "local.yaml"  # data missing, nothing to download: the same command's baseline, no network
    local.write_text(f"path: {tmp_path / 'nowhere'}\ntrain: images/train\nval: images/val\nnames: {{0: a}}\n")
    base = median_seconds(lambda: _run("--data", str(local)), 3)
    assert _run("--data", str(local)).exit_code == 1 and attempts == []
    start = time.perf_counter()
    result = _run("--data", "coco8.yaml")
    elapsed = time.perf_counter() - start
    assert elapsed <= 3 * base + 1.0, f"{elapsed:.2f}s, {base:.2f}s without a download"  # no 5/10/20 s retry sleeps
    assert result.exit_code == 1, result.output
    assert attempts == [("github.com", 443)]
    assert "cfg/datasets/coco8.yaml" in result.stderr.replace(os.sep, "/")
    assert str(tmp_path / "datasets" / "coco8" / "images" / "train") in result.stderr
    assert "cannot be downloaded from https://github.com/ultralytics/assets/releases/download/" in result.stderr
    assert "Network is unreachable" in result.stderr and str(tmp_path / "datasets") in result.stderr
    assert not (tmp_path / "datasets").exists()


def test_bad_options_are_usage_errors(counted: tuple[Path, list[int]]) -> None:
    assert _run("--data", counted[0], "--scheme", "bogus").exit_code == 2
    assert _run("--data", counted[0], "--beta", "1.5").exit_code == 2
    assert _run("--data", counted[0], "--max-weight", "0").exit_code == 2


# --------------------------------------------------------------------------------------------------- library details


def test_progress_callback_and_no_bar_without_tty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = {f"f{i:03d}": b"0 0.5 0.5 0.1 0.1\n" for i in range(25)}
    _dataset(tmp_path, labels, names=["a"])
    images = sorted(str(p) for p in (tmp_path / "images" / "train").iterdir())
    seen: list[tuple[int, int]] = []
    default_chunk = label_counts.CHUNK_SIZE
    try:
        label_counts.CHUNK_SIZE = 10
        assert count_labels(images, 1, progress=lambda done, total: seen.append((done, total))).counts == [25]
        count_labels(images, 1, progress=True)  # stderr is not a terminal under pytest: no bar
    finally:
        label_counts.CHUNK_SIZE = default_chunk
    assert seen == [(10, 25), (20, 25), (25, 25)]
    assert capsys.readouterr().err == ""


def test_progress_bar_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, progress=True draws a (transient) bar on stderr."""
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    labels = {f"f{i:03d}": b"0 0.5 0.5 0.1 0.1\n" for i in range(40)}
    _dataset(tmp_path, labels, names=["a"])
    images = sorted(str(p) for p in (tmp_path / "images" / "train").iterdir())
    fake = Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    monkeypatch.setattr(label_counts, "CHUNK_SIZE", 10)
    assert count_labels(images, 1, progress=True, use_cache=False).counts == [40]
    assert "counting labels" in fake.getvalue()


@pytest.mark.parametrize(("flag", "expected"), [([], True), (["--quiet"], False)])
def test_quiet_hides_the_progress_bar(
    counted: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch, flag: list[str], expected: bool
) -> None:
    seen: list[Any] = []
    real = label_counts.count_labels

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("progress"))
        return real(*args, **kwargs)

    monkeypatch.setattr(label_counts, "count_labels", spy)
    assert _run("--data", counted[0], "--format", "json", *flag).exit_code == 0
    assert seen == [expected]


def test_automatic_workers_only_when_worthwhile_and_safe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1), raising=False)
    assert label_counts._pick_workers(None, 1_000, 1) == 0  # too small to repay a pool
    assert label_counts._pick_workers(2, 50_000, 1) == 0  # one chunk: nothing to share
    monkeypatch.setattr(label_counts, "_main_is_reimport_safe", lambda: True)
    assert label_counts._pick_workers(None, 200_000, 100) == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (1.6, 1.0, 1.0), raising=False)
    assert label_counts._pick_workers(None, 200_000, 100) == 0  # the other CPU is busy: no pool
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1), raising=False)
    monkeypatch.setattr(label_counts, "_main_is_reimport_safe", lambda: False)
    assert label_counts._pick_workers(None, 200_000, 100) == 0
    assert label_counts._pick_workers(2, 200_000, 100) == 2  # an explicit request is honoured


@pytest.mark.parametrize(
    ("source", "safe"),
    [("import x\nrun()\n", False), ("def f():\n    pass\n\nif __name__ == '__main__':\n    f()\n", True)],
)
def test_main_reimport_safety_detects_the_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, safe: bool
) -> None:
    script = tmp_path / "user_script.py"
    script.write_text(source)
    fake_main = type(sys)("__main__")
    fake_main.__file__ = str(script)
    fake_main.__spec__ = None
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    assert label_counts._main_is_reimport_safe() is safe


def test_broken_pool_falls_back_to_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import concurrent.futures
    from concurrent.futures.process import BrokenProcessPool

    class Broken:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise BrokenProcessPool("workers could not start")

    labels = {f"f{i:02d}": f"{i % 2} 0.5 0.5 0.1 0.1\n".encode() for i in range(30)}
    _dataset(tmp_path, labels, names=["a", "b"])
    images = sorted(str(p) for p in (tmp_path / "images" / "train").iterdir())
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Broken)
    monkeypatch.setattr(label_counts, "CHUNK_SIZE", 7)
    assert count_labels(images, 2, workers=2, use_cache=False).counts == [15, 15]


def test_verify_label_file_matches_ultralytics_function(tmp_path: Path) -> None:
    """The exact fallback checker against Ultralytics' verify_image_label on each corrupt case, file by file."""
    from multiprocessing.pool import ThreadPool

    from ultralytics.data.utils import verify_image_label

    image = tmp_path / "images" / "x.png"
    _png(image)
    for stem, content in CORRUPT_CASES.items():
        lb = tmp_path / "labels" / f"{stem}.txt"
        lb.parent.mkdir(exist_ok=True)
        lb.unlink(missing_ok=True)
        if content is not None:
            lb.write_bytes(content)
        with ThreadPool(1) as pool:  # as in YOLODataset.cache_labels (the thread matters for NumPy print options)
            theirs = pool.apply(verify_image_label, ((str(image), str(lb), "", False, 3, 0, 0, False),))
        classes, note = verify_label_file(str(lb), 3)
        if theirs[0] is None:
            assert classes is None and theirs[-1].endswith(f"ignoring corrupt image/label: {note}"), stem
        else:
            assert classes == [int(c) for c in theirs[1][:, 0]], stem


def test_import_is_light() -> None:
    """The CLI start-up budget: importing these modules must not pull NumPy, rich tables, matplotlib or Ultralytics."""
    code = (
        "import sys, yolocustom.commands.compute_weights, yolocustom.datasets, yolocustom.label_counts\n"
        "print([m for m in ('numpy', 'matplotlib', 'ultralytics', 'torch', 'rich.table') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
