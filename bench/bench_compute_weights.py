"""Benchmark ``yolocustom.label_counts.count_labels`` against building Ultralytics' ``YOLODataset`` on the same files.

For each size (default 1k, 10k and 100k label files, about 7 boxes each) the script generates ``images/train`` (tiny
16x16 JPEGs, hard-linked so 100k images cost a few inodes' worth of data) and ``labels/train`` under a temporary folder,
then times each mode ``--repeat`` times and reports the median:

* ``ours``: ``split_image_paths`` + ``count_labels`` with the Ultralytics cache ignored (label text parsed), with the
  default worker choice (a process pool when the split is large and CPUs are idle), and in-process only (``workers=0``);
* ``YOLODataset cold``: building ``YOLODataset(...)`` after deleting ``labels/train.cache`` (a full scan that also opens
  every image, as Ultralytics does);
* ``warm``: ``YOLODataset`` and ``count_labels`` both reading the ``labels/train.cache`` Ultralytics wrote.

Every timed run happens in a fresh interpreter (``--measure``), so neither tool's imports, threads or memory affect the
other; imports are not timed. Counts must be identical in every mode or the script fails. The OS page cache is warm in
all runs (the files were just written and synced); that favours neither side. Prints a markdown table and writes JSON
(``--out``).

Usage::

    .venv/bin/python bench/bench_compute_weights.py [--sizes 1000 10000 100000] [--repeat 3] [--out PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

NC = 80
LINKS_PER_SOURCE = 50_000  # ext4 allows 65,000 hard links per inode


def generate(root: Path, n_files: int, seed: int = 0) -> int:
    """Write ``n_files`` image/label pairs under ``root``; return the number of boxes written.

    Args:
        root (Path): Dataset root (``images/train`` and ``labels/train`` are created in it).
        n_files (int): Number of images and label files.
        seed (int): Random seed.

    Returns:
        (int): Total boxes (4 to 10 per file, about 7 on average).
    """
    from PIL import Image

    img_dir, lb_dir = root / "images" / "train", root / "labels" / "train"
    img_dir.mkdir(parents=True)
    lb_dir.mkdir(parents=True)
    rng = random.Random(seed)
    boxes = 0
    source = root / "src0.jpg"
    for i in range(n_files):
        if i % LINKS_PER_SOURCE == 0:
            source = root / f"src{i // LINKS_PER_SOURCE}.jpg"
            Image.new("RGB", (16, 16), (120, 30, 200)).save(source, "JPEG")
        name = f"{i:07d}"
        os.link(source, img_dir / f"{name}.jpg")
        k = rng.randint(4, 10)
        boxes += k
        rows = [
            f"{rng.randrange(NC)} {rng.random():.6f} {rng.random():.6f} {rng.random() / 2:.6f} {rng.random() / 2:.6f}"
            for _ in range(k)
        ]
        (lb_dir / f"{name}.txt").write_text("\n".join(rows) + "\n")
    return boxes


def measure(mode: str, root: Path) -> dict[str, Any]:
    """Time one mode once, in this (fresh) process; return the time and what was counted.

    Args:
        mode (str): ``ours`` (listing + ``count_labels``, automatic workers, cache ignored), ``ours_serial`` (the same,
            in-process only), ``ours_count_only`` (``count_labels`` on an already listed split), ``ours_warm``
            (reading Ultralytics' cache) or ``yolo`` (building ``YOLODataset``: cold or warm as the cache dictates).
        root (Path): Dataset root holding ``data.yaml``.

    Returns:
        (dict[str, Any]): ``seconds``, ``counts``, ``images`` and ``source``.
    """
    if mode == "yolo":
        os.environ.setdefault("YOLO_VERBOSE", "False")  # keep Ultralytics' scan logs quiet
        from ultralytics.data import YOLODataset

        names = {i: f"class{i}" for i in range(NC)}
        t = time.perf_counter()
        ds = YOLODataset(img_path=str(root / "images" / "train"), data={"names": names, "channels": 3},
                         task="detect", augment=False, imgsz=64)  # fmt: skip
        seconds = time.perf_counter() - t
        return {"seconds": seconds, "counts": ultralytics_counts(ds), "images": len(ds.labels), "source": "yolo"}

    import numpy  # noqa: F401 - imported before timing, as Ultralytics' imports are for the yolo mode

    from yolocustom.datasets import resolve_dataset, split_image_paths
    from yolocustom.label_counts import count_labels

    spec = resolve_dataset(root / "data.yaml")
    listed = split_image_paths(spec, "train") if mode == "ours_count_only" else None
    workers = 0 if mode == "ours_serial" else None
    t = time.perf_counter()
    images = listed if listed is not None else split_image_paths(spec, "train")
    result = count_labels(images, NC, workers=workers, use_cache=mode == "ours_warm")
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "counts": result.counts, "images": result.images, "source": result.source}


def run_mode(mode: str, root: Path, repeat: int, before: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Run :func:`measure` ``repeat`` times, each in a fresh interpreter; return the runs."""
    runs = []
    for _ in range(repeat):
        if before is not None:
            before()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", mode, str(root)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return runs


def ultralytics_counts(dataset: Any) -> list[int]:
    """Per-class instance counts of a built ``YOLODataset``."""
    import numpy as np

    cls = [lb["cls"].reshape(-1) for lb in dataset.labels]
    return np.bincount(np.concatenate(cls).astype(np.int64), minlength=NC).tolist()


def bench_size(workdir: Path, n_files: int, repeat: int, ultralytics_max: int) -> dict[str, Any]:
    """Generate one dataset, time every mode on it and check the counts agree; return the figures."""
    import yaml

    from yolocustom.datasets import img2label_path
    from yolocustom.label_counts import cache_path_for

    root = workdir / f"d{n_files}"
    t = time.perf_counter()
    boxes = generate(root, n_files)
    if hasattr(os, "sync"):
        os.sync()  # finish writing back the new files now, not during the first timed runs
    gen_s = time.perf_counter() - t
    cfg = {"path": str(root), "train": "images/train", "val": "images/train", "names": [f"class{i}" for i in range(NC)]}
    (root / "data.yaml").write_text(yaml.safe_dump(cfg))
    cache = cache_path_for([img2label_path(str(root / "images" / "train" / "0000000.jpg"))])

    def med(runs: list[dict[str, Any]]) -> float:
        return statistics.median(r["seconds"] for r in runs)

    ours = run_mode("ours", root, repeat)
    serial = run_mode("ours_serial", root, repeat)
    count_only = run_mode("ours_count_only", root, repeat)
    counts = ours[0]["counts"]
    for r in ours + serial + count_only:
        assert r["source"] == "scan" and r["counts"] == counts, "scan modes disagree"
    assert sum(counts) == boxes, "counted boxes differ from the boxes written"
    row: dict[str, Any] = {
        "files": n_files,
        "boxes": boxes,
        "generate_s": round(gen_s, 2),
        "ours_scan_s": [r["seconds"] for r in ours],
        "ours_scan_median_s": med(ours),
        "ours_count_only_median_s": med(count_only),
        "ours_serial_s": [r["seconds"] for r in serial],
        "ours_serial_median_s": med(serial),
    }
    if n_files <= ultralytics_max:
        cold = run_mode("yolo", root, repeat, before=lambda: cache.unlink(missing_ok=True))
        warm = run_mode("yolo", root, repeat)
        ours_warm = run_mode("ours_warm", root, repeat)
        for r in cold + warm:
            assert r["counts"] == counts and r["images"] == ours[0]["images"], "counts differ from YOLODataset"
        for r in ours_warm:
            assert r["source"] == "cache" and r["counts"] == counts, "cache path disagrees"
        row.update(
            {
                "yolo_cold_s": [r["seconds"] for r in cold],
                "yolo_cold_median_s": med(cold),
                "yolo_warm_median_s": med(warm),
                "ours_warm_cache_median_s": med(ours_warm),
                "speedup_cold": med(cold) / med(ours),
                "speedup_cold_in_process": med(cold) / med(serial),
                "speedup_warm": med(warm) / med(ours_warm),
                "counts_equal": True,
            }
        )
    shutil.rmtree(root, ignore_errors=True)
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    """Render the figures as a markdown table."""

    def f(row: dict[str, Any], key: str, fmt: str = "{:.3f}") -> str:
        return fmt.format(row[key]) if key in row else "n/a"

    lines = [
        "| files | boxes | ours (s) | ours in-process (s) | YOLODataset cold (s) | speed-up cold | "
        "speed-up cold, in-process | YOLODataset warm (s) | ours warm (s) | counts equal |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['files']:,} | {r['boxes']:,} | {f(r, 'ours_scan_median_s')} | {f(r, 'ours_serial_median_s')} | "
            f"{f(r, 'yolo_cold_median_s')} | {f(r, 'speedup_cold', '{:.1f}x')} | "
            f"{f(r, 'speedup_cold_in_process', '{:.1f}x')} | {f(r, 'yolo_warm_median_s')} | "
            f"{f(r, 'ours_warm_cache_median_s')} | {'yes' if r.get('counts_equal') else 'n/a'} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run every size, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode; the median is reported")
    parser.add_argument("--ultralytics-max", type=int, default=100_000, help="skip YOLODataset above this size")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "compute_weights.json")
    parser.add_argument("--workdir", type=Path, default=None, help="where to generate data (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1k files, one repeat")
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # internal: one timed run in this fresh interpreter
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return
    if args.quick:
        args.sizes, args.repeat = [1_000], 1

    from importlib.metadata import version

    workdir = Path(tempfile.mkdtemp(prefix="bench_cw_", dir=args.workdir))
    started = time.perf_counter()
    rows = []
    try:
        for n in args.sizes:
            rows.append(bench_size(workdir, n, args.repeat, args.ultralytics_max))
            print(f"done {n:,} files ({time.perf_counter() - started:.0f}s elapsed)", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": version("numpy"),
            "ultralytics": version("ultralytics"),
            "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "method": "each timed run in a fresh interpreter; imports not timed; median of `repeat` runs",
        "repeat": args.repeat,
        "total_s": round(time.perf_counter() - started, 1),
        "sizes": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(rows))
    print(f"\nJSON written to {args.out}; total {result['total_s']}s")


if __name__ == "__main__":
    main()
