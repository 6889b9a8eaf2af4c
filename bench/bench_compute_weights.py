"""compute-weights scaling: ``count_labels`` against building Ultralytics' ``YOLODataset`` on the same label files.

Per size (1k, 10k, 100k label files, about 7 boxes each; tiny hard-linked JPEGs, page cache warm for all) every mode
of :func:`measure` runs ``--repeat`` times in a fresh interpreter, imports untimed; medians reported, counts of every
mode must agree. Targets at 100k files: under 5 s and >= 20x the cold ``YOLODataset`` scan.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import call_fresh, fmt, main, median, table, work_dir  # noqa: E402

NAME = "compute_weights"
TITLE = "compute-weights scaling"
NC = 80
LINKS_PER_SOURCE = 50_000  # ext4 allows 65,000 hard links per inode
TARGET_FILES, TARGET_S, TARGET_SPEEDUP = 100_000, 5.0, 20.0  # targets at 100k label files
COLUMNS = ("files | boxes | ours (s) | ours in-process (s) | YOLODataset cold (s) | speed-up cold | speed-up cold, "
           "in-process | YOLODataset warm (s) | ours warm (s) | speed-up warm | counts equal")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode; the median is reported")
    parser.add_argument("--ultralytics-max", type=int, default=100_000, help="skip YOLODataset above this size")


def generate(root: Path, n_files: int, seed: int = 0) -> int:
    """Write ``n_files`` image/label pairs (4-10 random boxes each) under ``root``; return the boxes written."""
    from PIL import Image

    img_dir, lb_dir = root / "images" / "train", root / "labels" / "train"
    img_dir.mkdir(parents=True)
    lb_dir.mkdir(parents=True)
    rng, boxes, source = random.Random(seed), 0, root / "src0.jpg"
    for i in range(n_files):
        if i % LINKS_PER_SOURCE == 0:
            source = root / f"src{i // LINKS_PER_SOURCE}.jpg"
            Image.new("RGB", (16, 16), (120, 30, 200)).save(source, "JPEG")
        os.link(source, img_dir / f"{i:07d}.jpg")
        boxes += (k := rng.randint(4, 10))
        rows = [f"{rng.randrange(NC)} {rng.random():.6f} {rng.random():.6f} {rng.random() / 2:.6f} "
                f"{rng.random() / 2:.6f}" for _ in range(k)]  # fmt: skip
        (lb_dir / f"{i:07d}.txt").write_text("\n".join(rows) + "\n")
    return boxes


def measure(mode: str, root: str) -> dict[str, Any]:
    """Time ``mode`` once in a fresh interpreter: ``ours``, ``ours_serial``, ``ours_warm`` (reading Ultralytics'
    cache), ``yolo_cold`` or ``yolo_warm`` (building ``YOLODataset`` without or with its label cache)."""
    if mode == "yolo_cold":
        Path(root, "labels", "train.cache").unlink(missing_ok=True)
    if mode.startswith("yolo"):
        os.environ.setdefault("YOLO_VERBOSE", "False")
        import numpy as np
        from ultralytics.data import YOLODataset

        data = {"names": {i: f"class{i}" for i in range(NC)}, "channels": 3}
        t = time.perf_counter()
        ds = YOLODataset(img_path=f"{root}/images/train", data=data, task="detect", augment=False, imgsz=64)
        seconds = time.perf_counter() - t
        cls = np.concatenate([lb["cls"].reshape(-1) for lb in ds.labels]).astype(np.int64)
        return {"seconds": seconds, "counts": np.bincount(cls, minlength=NC).tolist(), "images": len(ds.labels),
                "source": "yolo"}  # fmt: skip
    import numpy  # noqa: F401 - imported before timing, as Ultralytics' imports are for the yolo mode

    from yolocustom.datasets import resolve_dataset, split_image_paths
    from yolocustom.label_counts import count_labels

    spec = resolve_dataset(Path(root) / "data.yaml")
    t = time.perf_counter()
    images = split_image_paths(spec, "train")
    result = count_labels(images, NC, workers=0 if mode == "ours_serial" else None, use_cache=mode == "ours_warm")
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "counts": result.counts, "images": result.images, "source": result.source}


def bench_size(root: Path, n_files: int, repeat: int, ultralytics_max: int) -> dict[str, Any]:
    """Generate one tree, time every mode on it, check the counts agree; return the row."""
    import yaml

    boxes = generate(root, n_files)
    os.sync()  # write the new files back now, not during the first timed runs
    (root / "data.yaml").write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/train",
                                                    "names": [f"class{i}" for i in range(NC)]}))  # fmt: skip

    def runs(mode: str) -> list[dict[str, Any]]:
        return [call_fresh(__file__, "measure", mode, str(root)) for _ in range(repeat)]

    ours, serial = runs("ours"), runs("ours_serial")
    counts = ours[0]["counts"]
    assert all(r["source"] == "scan" and r["counts"] == counts for r in ours + serial), "scan modes disagree"
    assert sum(counts) == boxes, "counted boxes differ from the boxes written"
    row: dict[str, Any] = {"files": n_files, "boxes": boxes, "ours_s": median([r["seconds"] for r in ours]),
                           "ours_serial_s": median([r["seconds"] for r in serial])}  # fmt: skip
    if n_files <= ultralytics_max:
        cold, warm, ours_warm = runs("yolo_cold"), runs("yolo_warm"), runs("ours_warm")
        assert all(r["counts"] == counts and r["images"] == ours[0]["images"] for r in cold + warm), "YOLODataset"
        assert all(r["source"] == "cache" and r["counts"] == counts for r in ours_warm), "cache path disagrees"
        for key, rs in (("yolo_cold_s", cold), ("yolo_warm_s", warm), ("ours_warm_s", ours_warm)):
            row[key] = median([r["seconds"] for r in rs])
        cold_s = row["yolo_cold_s"]
        row.update(speedup_cold=cold_s / row["ours_s"], speedup_warm=row["yolo_warm_s"] / row["ours_warm_s"],
                   speedup_cold_in_process=cold_s / row["ours_serial_s"], counts_equal=True)  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every size in turn, in a scratch folder under bench/out."""
    sizes, repeat = ([1_000], 1) if args.quick else (args.sizes, args.repeat)
    work = work_dir(args, NAME)
    shutil.rmtree(work, ignore_errors=True)
    rows = [bench_size(work / f"d{n}", n, repeat, args.ultralytics_max) for n in sizes]
    targets = {"files": TARGET_FILES, "max_s": TARGET_S, "min_speedup_cold": TARGET_SPEEDUP}
    return {"repeat": repeat, "targets": targets, "sizes": rows}


def render(result: dict[str, Any]) -> str:
    """The section: one row per size, then the verdict at the largest size."""
    rows = [
        [f"{r['files']:,}", f"{r['boxes']:,}", fmt(r["ours_s"]), fmt(r["ours_serial_s"]), fmt(r.get("yolo_cold_s")),
         f"{fmt(r.get('speedup_cold'), '.1f')}x", f"{fmt(r.get('speedup_cold_in_process'), '.1f')}x",
         fmt(r.get("yolo_warm_s")), fmt(r.get("ours_warm_s")), f"{fmt(r.get('speedup_warm'), '.1f')}x",
         "yes" if r.get("counts_equal") else "n/a"] for r in result["sizes"]
    ]  # fmt: skip
    big, t = max(result["sizes"], key=lambda r: r["files"]), result["targets"]
    text = (
        f"## {TITLE}\n\nLabel trees of the sizes below (about 7 boxes per file), counted by `yolocustom.label_counts` "
        "and by building Ultralytics' `YOLODataset`, each timed in a fresh interpreter (imports untimed); median of "
        f"{result['repeat']} runs each; counts compared for equality. *cold* = no `labels/*.cache` (Ultralytics also "
        "opens every image), *warm* = both read the cache Ultralytics wrote.\n\n"
        + table(COLUMNS, rows)
        + f"\n\nAt {big['files']:,} files: {big['ours_s']:.2f} s"
    )
    judged, speed = big["files"] >= t.get("files", 0), big.get("speedup_cold")  # the targets hold at 100k files only
    if judged:
        text += f" against the {t['max_s']:g} s target ({'**met**' if big['ours_s'] < t['max_s'] else '**missed**'})"
    if speed:
        met = "**met**" if speed >= t["min_speedup_cold"] else f"**missed**, {t['min_speedup_cold'] / speed:.2f}x short"
        verdict = f" against the {t['min_speedup_cold']:g}x target ({met})" if judged else ""
        text += (
            f"; {speed:.1f}x faster than the cold `YOLODataset` scan{verdict}. The images here are "
            "tiny JPEGs, hard-linked and in the page cache: the cheapest case for the half of Ultralytics' scan that "
            "opens and verifies every image, which yolocustom never does; with real images on a real disk the ratio "
            "should grow, an expectation rather than a measurement. Against Ultralytics' warm label cache the ratio "
            f"is {big['speedup_warm']:.1f}x, the comparison that matters for any second run"
        )
    if not judged:
        text += (f". The targets (< {t['max_s']:g} s, >= {t['min_speedup_cold']:g}x) are set at {t['files']:,} files, "
                 "not measured in this edition (`--sizes`)")  # fmt: skip
    return text + "."


if __name__ == "__main__":
    raise SystemExit(main(sys.modules[__name__]))
