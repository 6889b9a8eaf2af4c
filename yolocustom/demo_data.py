"""A built-in, offline demo dataset: coloured "defects" on noisy grey plates, imbalanced on purpose.

The dataset mimics an inspection line: two common defect classes, one medium and one rare one, so that class
weighting and F1 logging have something to show. It is generated deterministically from a seed (NumPy ``Generator``
plus lossless PNG through OpenCV), so the same arguments always give byte-identical files, in Ultralytics YOLO
detection format::

    out/
      data.yaml            # path (absolute), train, val, names
      manifest.json        # generator version and arguments, used to reuse or refuse an existing folder
      images/{train,val}/img_00000.png
      labels/{train,val}/img_00000.txt   # "class cx cy w h", normalised, 6 decimals; empty for background images

Each class has its own shape and colour so that a tiny YOLO trained from scratch at ``imgsz=64`` learns it in a few
CPU minutes:

====  =======  ===========================================  ==========================
 id    name     shape                                        frequency
====  =======  ===========================================  ==========================
 0     scratch  thin diagonal bar, yellow                    common (reference class)
 1     dent     filled disc with a dark rim, blue            common
 2     stain    irregular blotch of overlapping ellipses,    medium
                green
 3     crack    filled triangle, red                         rare: ~1/rare_ratio of 0
====  =======  ===========================================  ==========================

With ``task`` other than ``detect`` the shapes are drawn from exact polygons (a rotated bar, a 20-gon disc, an
irregular star-shaped blotch, a triangle) and the labels follow the task's format (``tasks.TASKS``):

* ``segment``: the drawn polygon itself, ``class x1 y1 x2 y2 ...``;
* ``obb``: the polygon's minimum-area rotated rectangle, ``class x1 y1 x2 y2 x3 y3 x4 y4``;
* ``pose``: the box plus 4 keypoints, the polygon's leftmost, rightmost, topmost and bottommost corners (visible),
  with ``kpt_shape: [4, 3]`` and ``flip_idx: [1, 0, 2, 3]`` (a horizontal flip swaps left and right) in data.yaml.

The class plan (and so the rare class's rarity) is the same for every task.

Generation never overwrites silently: an existing folder is reused only when its ``manifest.json`` matches the
arguments, and ``force=True`` deletes only a folder that carries our manifest. The new dataset is written to a
temporary sibling folder and renamed into place at the end, so an interruption never leaves a half dataset at ``out``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from yolocustom.errors import UserError
from yolocustom.tasks import TASKS

GENERATOR = "yolocustom.demo_data"
GENERATOR_VERSION = 1
POSE_KPT_SHAPE = [4, 3]  # leftmost, rightmost, topmost, bottommost corner; x, y, visibility
POSE_FLIP_IDX = [1, 0, 2, 3]  # a horizontal flip swaps the leftmost and rightmost corners
MANIFEST_NAME = "manifest.json"
YAML_NAME = "data.yaml"
SPLITS: tuple[str, ...] = ("train", "val")
CLASS_NAMES: tuple[str, ...] = ("scratch", "dent", "stain", "crack")
RARE_CLASS = 3
# Relative instance frequencies of the non-rare classes; the rare class gets ``1 / rare_ratio``.
_BASE_WEIGHTS: tuple[float, ...] = (1.0, 0.85, 0.45)
# Base colours (BGR) per class, jittered per object.
_COLOURS: tuple[tuple[int, int, int], ...] = ((40, 215, 240), (205, 95, 35), (45, 150, 40), (45, 40, 220))
_BACKGROUND_FRACTION = 0.05
_MAX_OBJECTS = 4
_REFERENCE_SIZE = 64  # object sizes below are in pixels of a 64 px image and scale with img_size


@dataclass(frozen=True)
class _Box:
    """A pixel bounding box, ``x1``/``y1`` inclusive and ``x2``/``y2`` exclusive."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def area(self) -> int:
        return (self.x2 - self.x1) * (self.y2 - self.y1)

    def overlap(self, other: _Box) -> float:
        """Return the intersection area divided by the smaller box's area (0 = disjoint, 1 = one inside the other)."""
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        if w <= 0 or h <= 0:
            return 0.0
        return (w * h) / max(1, min(self.area, other.area))


def generate_demo_dataset(
    out: Path,
    *,
    n_train: int = 600,
    n_val: int = 150,
    img_size: int = 64,
    seed: int = 0,
    rare_ratio: float = 10.0,
    force: bool = False,
    task: str = "detect",
) -> Path:
    """Generate (or reuse) the demo detection dataset in ``out`` and return the path of its ``data.yaml``.

    Args:
        out (Path): Dataset folder. Created if missing; its parent is created too.
        n_train (int): Number of training images (>= 1).
        n_val (int): Number of validation images (>= 1).
        img_size (int): Side of the square images in pixels (>= 32); object sizes scale with it.
        seed (int): Seed of the NumPy generator; the same arguments always give byte-identical files.
        rare_ratio (float): Instances of the most common class (``scratch``) per instance of the rare class
            (``crack``), >= 1. Each split gets at least one rare instance.
        force (bool): Regenerate even if ``out`` already holds a dataset made by this generator. A folder without
            our manifest is never deleted.
        task (str): Label format: ``detect`` (boxes), ``segment`` (polygons), ``pose`` (box + 4 corner keypoints) or
            ``obb`` (rotated rectangles).

    Returns:
        (Path): ``out/data.yaml``, absolute.

    Raises:
        UserError: On invalid arguments, or when ``out`` exists and cannot be reused or safely replaced.
    """
    _check_args(n_train=n_train, n_val=n_val, img_size=img_size, rare_ratio=rare_ratio)
    if task not in TASKS:
        raise UserError(f"demo dataset: task must be one of {', '.join(TASKS)}, got {task!r}")
    out = Path(out).expanduser().resolve()
    args = _manifest_args(n_train=n_train, n_val=n_val, img_size=img_size, seed=seed, rare_ratio=rare_ratio)
    if task != "detect":  # detection manifests stay as they were, so existing demo folders are still reused
        args["task"] = task
    replace_existing = False

    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise UserError(f"{out} exists and is not a folder; choose another --out for the demo dataset")
        manifest = _read_manifest(out)
        if manifest is None:
            if any(out.iterdir()):
                hint = " (--force only replaces a folder created by 'yolocustom demo-data')" if force else ""
                raise UserError(
                    f"{out} is not empty and was not created by 'yolocustom demo-data' (no readable {MANIFEST_NAME})"
                    f"; refusing to write into it{hint}. Choose another --out."
                )
            replace_existing = True  # an empty folder: nothing to lose
        elif not force:
            if manifest.get("version") == GENERATOR_VERSION and manifest.get("args") == args:
                missing = _missing_parts(out, n_train=n_train, n_val=n_val)
                if not missing:
                    _write_yaml(out, out, task)  # refresh ``path:`` in case the folder was moved; no-op otherwise
                    return out / YAML_NAME
                raise UserError(f"{out} holds an incomplete demo dataset ({missing}); regenerate it with --force")
            raise UserError(
                f"{out} already holds a demo dataset generated with different settings "
                f"({_describe_diff(manifest, args)}); pass --force to regenerate it, or choose another --out"
            )
        else:
            replace_existing = True

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_sibling(out, "tmp")
    try:
        _generate_into(
            tmp,
            final=out,
            n_train=n_train,
            n_val=n_val,
            img_size=img_size,
            seed=seed,
            rare_ratio=rare_ratio,
            task=task,
        )
        _write_manifest(tmp, args)
        if replace_existing:
            trash = _new_sibling(out, "old")
            os.replace(out, trash / out.name)
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / YAML_NAME


def count_instances(yaml_path: Path | str, split: str = "train") -> dict[str, int]:
    """Count labelled instances per class name in one split of a YOLO dataset described by ``yaml_path``.

    Args:
        yaml_path (Path | str): A dataset YAML with ``path``, the split key and ``names`` (list or id -> name map).
        split (str): The split key in the YAML, e.g. ``train`` or ``val``.

    Returns:
        (dict[str, int]): Instances per class name, in class-id order, zeros included.
    """
    yaml_path = Path(yaml_path)
    data = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    names_raw = data["names"]
    names = dict(enumerate(names_raw)) if isinstance(names_raw, list) else {int(k): v for k, v in names_raw.items()}
    root = Path(data.get("path") or yaml_path.parent)
    images = root / data[split]
    # Same rule as Ultralytics: labels live where the last "/images/" of the image folder becomes "/labels/".
    head, marker, tail = (str(images) + os.sep).rpartition(f"{os.sep}images{os.sep}")
    labels = Path(head + f"{os.sep}labels{os.sep}" + tail) if marker else images
    counts = {names[i]: 0 for i in sorted(names)}
    for label_file in sorted(labels.glob("*.txt")):
        for line in label_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                counts[names[int(line.split()[0])]] += 1
    return counts


# --------------------------------------------------------------------------------------------------------------------
# Argument checks and manifest


def _check_args(*, n_train: int, n_val: int, img_size: int, rare_ratio: float) -> None:
    problems = []
    if n_train < 1:
        problems.append(f"n_train must be >= 1, got {n_train}")
    if n_val < 1:
        problems.append(f"n_val must be >= 1, got {n_val}")
    if img_size < 32:
        problems.append(f"img_size must be >= 32, got {img_size}")
    if not math.isfinite(rare_ratio) or rare_ratio < 1:
        problems.append(f"rare_ratio must be a finite number >= 1, got {rare_ratio}")
    if problems:
        raise UserError("demo dataset: " + "; ".join(problems))


def _manifest_args(*, n_train: int, n_val: int, img_size: int, seed: int, rare_ratio: float) -> dict[str, Any]:
    return {
        "n_train": int(n_train),
        "n_val": int(n_val),
        "img_size": int(img_size),
        "seed": int(seed),
        "rare_ratio": float(rare_ratio),
    }


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    """Return our manifest in ``folder``, or None when it is missing, unreadable or not written by this generator."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("generator") != GENERATOR:
        return None
    return manifest


def _missing_parts(folder: Path, *, n_train: int, n_val: int) -> str:
    """Describe what is missing from a dataset folder whose manifest matches, or return ``""`` if it is complete."""
    if not (folder / YAML_NAME).is_file():
        return f"no {YAML_NAME}"
    for split, n in zip(SPLITS, (n_train, n_val), strict=True):
        n_images = sum(1 for _ in (folder / "images" / split).glob("*.png"))
        n_labels = sum(1 for _ in (folder / "labels" / split).glob("*.txt"))
        if n_images != n or n_labels != n:
            return f"{split}: {n_images} images and {n_labels} label files, expected {n}"
    return ""


def _new_sibling(out: Path, tag: str) -> Path:
    """Create and return a new hidden folder next to ``out`` (same file system, so renames are atomic)."""
    while True:
        candidate = out.parent / f".{out.name}.{tag}-{secrets.token_hex(4)}"
        try:
            candidate.mkdir()  # unlike tempfile.mkdtemp, honours the umask: the final folder gets normal permissions
        except FileExistsError:
            continue
        return candidate


def _write_manifest(folder: Path, args: dict[str, Any]) -> None:
    manifest = {"generator": GENERATOR, "version": GENERATOR_VERSION, "args": args}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _describe_diff(manifest: dict[str, Any], args: dict[str, Any]) -> str:
    if manifest.get("version") != GENERATOR_VERSION:
        return f"generator version {manifest.get('version')}, this is version {GENERATOR_VERSION}"
    old = manifest.get("args") if isinstance(manifest.get("args"), dict) else {}
    assert isinstance(old, dict)
    diffs = [f"{k}={old.get(k)!r} there, {v!r} now" for k, v in args.items() if old.get(k) != v]
    return ", ".join(diffs) or "unreadable arguments"


def _write_yaml(folder: Path, final: Path, task: str = "detect") -> None:
    """Write ``data.yaml`` into ``folder`` with ``path:`` pointing at ``final``; skip if the content is unchanged."""
    data: dict[str, Any] = {
        "path": str(final),
        "train": "images/train",
        "val": "images/val",
        "nc": len(CLASS_NAMES),
        "names": dict(enumerate(CLASS_NAMES)),
    }
    data.update(_YAML_EXTRA.get(task, {}))
    text = (
        "# Demo dataset generated by 'yolocustom demo-data' (see manifest.json); safe to delete and regenerate.\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    target = folder / YAML_NAME
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------------------------------------
# Generation


def _generate_into(
    folder: Path,
    *,
    final: Path,
    n_train: int,
    n_val: int,
    img_size: int,
    seed: int,
    rare_ratio: float,
    task: str = "detect",
) -> None:
    for split_index, (split, n_images) in enumerate(zip(SPLITS, (n_train, n_val), strict=True)):
        # One independent stream per split: the val split does not change when n_train changes, and vice versa.
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, split_index])
        images_dir = folder / "images" / split
        labels_dir = folder / "labels" / split
        images_dir.mkdir(parents=True)
        labels_dir.mkdir(parents=True)
        for index, classes in enumerate(_plan_split(rng, n_images, rare_ratio)):
            stem = f"img_{index:05d}"
            write = LABEL_WRITERS.get(task)
            if write is None:  # detect: plain boxes
                image, boxes = _render_image(rng, classes, img_size)
                lines = [_label_line(c, box, img_size) for c, box in zip(classes, boxes, strict=True)]
            else:
                image, polygons = _render_polygons(rng, classes, img_size)
                lines = [f"{c} {write(poly / img_size)}" for c, poly in zip(classes, polygons, strict=True)]
            if not cv2.imwrite(str(images_dir / f"{stem}.png"), image, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
                raise OSError(f"could not write {images_dir / f'{stem}.png'}")
            (labels_dir / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    _write_yaml(folder, final, task)


def _class_counts(total: int, rare_ratio: float) -> list[int]:
    """Split ``total`` instances over the classes by weight (largest remainder), with at least one rare instance."""
    weights = [*_BASE_WEIGHTS, 1.0 / rare_ratio]
    scaled = [total * w / sum(weights) for w in weights]
    counts = [math.floor(s) for s in scaled]
    for i in sorted(range(len(weights)), key=lambda i: (counts[i] - scaled[i], i))[: total - sum(counts)]:
        counts[i] += 1
    if total > 0 and counts[RARE_CLASS] == 0:
        counts[RARE_CLASS] = 1
        counts[max(range(len(counts)), key=lambda i: counts[i])] -= 1
    return counts


def _plan_split(rng: np.random.Generator, n_images: int, rare_ratio: float) -> list[list[int]]:
    """Return, per image, the class ids of its objects (an empty list for a background-only image)."""
    n_background = min(n_images - 1, round(n_images * _BACKGROUND_FRACTION))
    n_objects = rng.integers(1, _MAX_OBJECTS + 1, size=n_images)
    n_objects[rng.permutation(n_images)[:n_background]] = 0
    counts = _class_counts(int(n_objects.sum()), rare_ratio)
    pool = rng.permutation(np.repeat(np.arange(len(CLASS_NAMES)), counts))
    plan, start = [], 0
    for k in n_objects.tolist():
        plan.append(sorted(int(c) for c in pool[start : start + k]))
        start += k
    return plan


def _label_line(class_id: int, box: _Box, img_size: int) -> str:
    x1, y1 = max(0, box.x1), max(0, box.y1)
    x2, y2 = min(img_size, box.x2), min(img_size, box.y2)
    cx, cy = (x1 + x2) / 2 / img_size, (y1 + y2) / 2 / img_size
    w, h = (x2 - x1) / img_size, (y2 - y1) / img_size
    return f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Return a float32 ``(size, size, 3)`` grey plate with a smooth texture, a slight colour cast and fine grain."""
    level = rng.uniform(85.0, 165.0)
    cast = rng.uniform(-10.0, 10.0, size=3)
    coarse = rng.normal(0.0, 14.0, size=(6, 6)).astype(np.float32)
    texture = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    streaks = rng.normal(0.0, 4.0, size=(size, 1)).astype(np.float32)  # brushed-metal rows
    plate = level + texture + streaks
    return plate[:, :, None] + cast[None, None, :].astype(np.float32)


def _colour(rng: np.random.Generator, class_id: int) -> np.ndarray:
    base = np.asarray(_COLOURS[class_id], dtype=np.float32)
    return np.clip(base * rng.uniform(0.85, 1.1) + rng.uniform(-22.0, 22.0, size=3), 0, 255).astype(np.float32)


def _draw_mask(rng: np.random.Generator, class_id: int, size: int, centre: tuple[float, float]) -> np.ndarray:
    """Draw one object of ``class_id`` centred near ``centre`` as an anti-aliased uint8 alpha mask."""
    s = size / _REFERENCE_SIZE
    cx, cy = centre
    mask = np.zeros((size, size), dtype=np.uint8)
    if class_id == 0:  # scratch: thin bar, diagonal in either direction
        length = rng.uniform(14.0, 27.0) * s
        angle = math.radians(rng.uniform(25.0, 65.0)) * (1 if rng.random() < 0.5 else -1)
        dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
        thickness = max(2, round(rng.uniform(2.0, 3.4) * s))
        p1, p2 = (round(cx - dx), round(cy - dy)), (round(cx + dx), round(cy + dy))
        cv2.line(mask, p1, p2, 255, thickness, cv2.LINE_AA)
    elif class_id == 1:  # dent: filled disc
        radius = max(3, round(rng.uniform(4.5, 9.5) * s))
        cv2.circle(mask, (round(cx), round(cy)), radius, 255, -1, cv2.LINE_AA)
    elif class_id == 2:  # stain: blotch of 3 overlapping ellipses
        base = rng.uniform(5.0, 10.0) * s
        for _ in range(3):
            off = rng.normal(0.0, base * 0.35, size=2)
            axes = (max(2, round(base * rng.uniform(0.6, 1.0))), max(2, round(base * rng.uniform(0.4, 0.8))))
            centre_i = (round(cx + off[0]), round(cy + off[1]))
            cv2.ellipse(mask, centre_i, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
    else:  # crack: filled triangle, random rotation
        circumradius = rng.uniform(6.0, 12.0) * s
        start = rng.uniform(0, 2 * math.pi)
        angles = start + np.array([0.0, 2.0, 4.0]) * math.pi / 3 + rng.uniform(-0.25, 0.25, size=3)
        pts = np.stack([cx + circumradius * np.cos(angles), cy + circumradius * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255, cv2.LINE_AA)
    return mask


def _mask_box(mask: np.ndarray, threshold: int = 64) -> _Box | None:
    ys, xs = np.nonzero(mask >= threshold)
    if xs.size == 0:
        return None
    return _Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _render_image(rng: np.random.Generator, classes: Sequence[int], size: int) -> tuple[np.ndarray, list[_Box]]:
    """Render one image with an object per entry of ``classes``; return the BGR uint8 image and the boxes."""
    image = _background(rng, size)
    boxes: list[_Box] = []
    margin = 0.16 * size
    for class_id in classes:
        best: tuple[float, np.ndarray, _Box] | None = None
        for _ in range(40):  # rejection sampling: keep the placement with the least overlap, stop at a clean one
            centre = (float(rng.uniform(margin, size - margin)), float(rng.uniform(margin, size - margin)))
            mask = _draw_mask(rng, class_id, size, centre)
            box = _mask_box(mask)
            if box is None or box.x1 < 1 or box.y1 < 1 or box.x2 > size - 1 or box.y2 > size - 1:
                continue
            worst = max((box.overlap(other) for other in boxes), default=0.0)
            if best is None or worst < best[0]:
                best = (worst, mask, box)
            if worst <= 0.05:
                break
        if best is None:  # practically unreachable: shapes are small and centres are kept away from the border
            raise RuntimeError(f"could not place a {CLASS_NAMES[class_id]} in a {size}px image")
        _, mask, box = best
        alpha = (mask.astype(np.float32) / 255.0)[:, :, None]
        colour = _colour(rng, class_id)
        if class_id == 1:  # dents get a darker rim so they read as a depression, not a flat dot
            rim = cv2.erode(mask, np.ones((3, 3), np.uint8))
            shade = (1.0 - 0.35 * ((mask > 0) & (rim == 0)).astype(np.float32))[:, :, None]
            image = image * (1 - alpha) + colour * shade * alpha
        else:
            image = image * (1 - alpha) + colour * alpha
        boxes.append(box)
    image = image + rng.normal(0.0, rng.uniform(3.0, 9.0), size=image.shape).astype(np.float32)  # sensor noise
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), boxes


# --------------------------------------------------------------------------------------------------------------------
# Polygon shapes (segment, pose, obb): the label is computed from the very polygon that is drawn


def _shape_polygon(rng: np.random.Generator, class_id: int, size: int, centre: tuple[float, float]) -> np.ndarray:
    """Return the outline of one object of ``class_id`` near ``centre`` as a float ``(k, 2)`` polygon in pixels."""
    s = size / _REFERENCE_SIZE
    cx, cy = centre
    if class_id == 0:  # scratch: thin bar (a rotated rectangle), diagonal in either direction
        length = rng.uniform(14.0, 27.0) * s
        thickness = max(2.0, rng.uniform(2.0, 3.4) * s)
        angle = math.radians(rng.uniform(25.0, 65.0)) * (1 if rng.random() < 0.5 else -1)
        u = np.array([math.cos(angle), math.sin(angle)]) * length / 2
        v = np.array([-math.sin(angle), math.cos(angle)]) * thickness / 2
        pts = np.array([-u - v, u - v, u + v, -u + v])
    elif class_id == 1:  # dent: disc, as a regular 20-gon
        radius = rng.uniform(4.5, 9.5) * s
        a = np.linspace(0, 2 * math.pi, 20, endpoint=False) + rng.uniform(0, 2 * math.pi / 20)
        pts = np.stack([np.cos(a), np.sin(a)], axis=1) * radius
    elif class_id == 2:  # stain: irregular star-shaped blotch
        base = rng.uniform(5.0, 10.0) * s
        a = np.sort(rng.uniform(0, 2 * math.pi, 12))
        r = base * rng.uniform(0.55, 1.0, 12)
        pts = np.stack([np.cos(a) * r, np.sin(a) * r], axis=1)
    else:  # crack: triangle, random rotation
        circumradius = rng.uniform(6.0, 12.0) * s
        start = rng.uniform(0, 2 * math.pi)
        a = start + np.array([0.0, 2.0, 4.0]) * math.pi / 3 + rng.uniform(-0.25, 0.25, size=3)
        pts = np.stack([np.cos(a), np.sin(a)], axis=1) * circumradius
    return pts + np.array([cx, cy])


_SHIFT = 4  # fillPoly sub-pixel bits: the polygon is drawn at 1/16 px precision, so the label is its outline


def _polygon_mask(poly: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    # pixel centres are at integer coordinates in OpenCV; labels use pixel-edge coordinates, hence the -0.5
    pts = np.round((poly - 0.5) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, shift=_SHIFT)
    return mask


def _render_polygons(
    rng: np.random.Generator, classes: Sequence[int], size: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Render one image with an object per entry of ``classes``; return the BGR uint8 image and their polygons."""
    image = _background(rng, size)
    polygons: list[np.ndarray] = []
    boxes: list[_Box] = []
    margin = 0.16 * size
    for class_id in classes:
        best: tuple[float, np.ndarray, np.ndarray, _Box] | None = None
        for _ in range(40):  # rejection sampling, as for the detection shapes
            centre = (float(rng.uniform(margin, size - margin)), float(rng.uniform(margin, size - margin)))
            poly = _shape_polygon(rng, class_id, size, centre)
            if poly.min() < 1 or poly.max() > size - 1:
                continue
            mask = _polygon_mask(poly, size)
            box = _mask_box(mask, threshold=1)
            if box is None:
                continue
            worst = max((box.overlap(other) for other in boxes), default=0.0)
            if best is None or worst < best[0]:
                best = (worst, poly, mask, box)
            if worst <= 0.05:
                break
        if best is None:
            raise RuntimeError(f"could not place a {CLASS_NAMES[class_id]} in a {size}px image")
        _, poly, mask, box = best
        alpha = (mask.astype(np.float32) / 255.0)[:, :, None]
        image = image * (1 - alpha) + _colour(rng, class_id) * alpha
        polygons.append(poly)
        boxes.append(box)
    image = image + rng.normal(0.0, rng.uniform(3.0, 9.0), size=image.shape).astype(np.float32)  # sensor noise
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), polygons


def _fmt(values: Any) -> str:
    return " ".join(f"{min(1.0, max(0.0, float(v))):.6f}" for v in values)


def _segment_label(p: np.ndarray) -> str:
    """The drawn polygon itself (normalised)."""
    return _fmt(p.reshape(-1))


def _obb_label(p: np.ndarray) -> str:
    """The polygon's minimum-area rotated rectangle: 4 corners."""
    return _fmt(cv2.boxPoints(cv2.minAreaRect(p.astype(np.float32))).reshape(-1))


def _pose_label(p: np.ndarray) -> str:
    """The box, then the leftmost, rightmost, topmost and bottommost corners, visible (``POSE_FLIP_IDX`` order)."""
    x1, y1 = p.min(axis=0)
    x2, y2 = p.max(axis=0)
    box = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
    extremes = [p[p[:, 0].argmin()], p[p[:, 0].argmax()], p[p[:, 1].argmin()], p[p[:, 1].argmax()]]
    return f"{_fmt(box)} " + " ".join(f"{_fmt(c)} 2" for c in extremes)  # visibility 2: labelled and visible


# Per task: the label row (after the class id) of a normalised polygon, and the data.yaml keys it needs.
LABEL_WRITERS: dict[str, Any] = {"segment": _segment_label, "obb": _obb_label, "pose": _pose_label}
_YAML_EXTRA: dict[str, dict[str, Any]] = {"pose": {"kpt_shape": POSE_KPT_SHAPE, "flip_idx": POSE_FLIP_IDX}}
