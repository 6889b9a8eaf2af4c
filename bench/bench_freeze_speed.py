"""Freeze speed-up: epoch time while the backbone is frozen against after ``yolocustom`` unfreezes it.

``yolocustom train`` runs a recipe with ``freeze: {layers: backbone, epochs: 3}`` over 7 epochs: epochs 1-3 (1-based)
train with the backbone frozen, epoch 4 starts by unfreezing it, epochs 4-7 train everything. A control arm runs the
same recipe without ``freeze``, so a trend that has nothing to do with freezing (warm-up, caches, thermal or load drift)
shows up as a control ratio away from 1. Arms alternate (ABBA), each run in a fresh subprocess.

Epoch times are differences of results.csv's cumulative ``time`` column (validation included, which freezing does not
change); epoch 1 is excluded as warm-up. Reported as measured: frozen = median of epochs 2-3, unfrozen = median of
epochs 5-7 (epoch 4, the unfreeze epoch, shown on its own), each the median over runs.

Usage::

    python bench/bench_freeze_speed.py           # 3 runs per arm, 400/100 images
    python bench/bench_freeze_speed.py --quick   # smoke run: 1 run per arm, 64/16 images
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    OUT_DIR,
    YOLOCUSTOM,
    epoch_times,
    machine_info,
    median,
    read_results_csv,
    run_measured,
    shell_join,
    write_json,
)

EPOCHS = 7
FREEZE_EPOCHS = 3
FROZEN = (2, 3)  # 1-based epochs measured as frozen (epoch 1 is warm-up)
UNFREEZE_EPOCH = FREEZE_EPOCHS + 1
UNFROZEN = (5, 6, 7)
_UNFROZE = re.compile(r"unfroze layers .*\((\d+) tensors, ([\d,]+) parameters\) at the start of epoch (\d+)")


def write_recipe(path: Path, data: Path, project: Path, name: str, freeze: bool) -> None:
    """Write one arm's recipe.

    Args:
        path (Path): Recipe file.
        data (Path): Dataset YAML.
        project (Path): Runs folder.
        name (str): Run name.
        freeze (bool): Whether the freeze feature is on.
    """
    recipe: dict[str, Any] = {
        "model": "yolo26n.yaml",
        "data": str(data),
        "device": "cpu",
        "train": {
            "epochs": EPOCHS,
            "imgsz": 64,
            "batch": 16,
            "workers": 0,
            "seed": 0,
            "plots": False,
            "project": str(project),
            "name": name,
            "exist_ok": True,
        },
        "features": {"freeze": {"layers": "backbone", "epochs": FREEZE_EPOCHS}} if freeze else {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))


def measure(arm: str, index: int, root: Path, data: Path) -> dict[str, Any]:
    """Run one arm once and return its per-epoch times.

    Args:
        arm (str): ``freeze`` or ``control``.
        index (int): Repeat number.
        root (Path): Work folder.
        data (Path): Dataset YAML.

    Returns:
        (dict[str, Any]): Command, per-epoch times (1-based epoch -> seconds) and the unfreeze log facts.
    """
    name = f"{arm}_{index}"
    project = root / "runs"
    shutil.rmtree(project / name, ignore_errors=True)
    recipe = root / "recipes" / f"{name}.yaml"
    write_recipe(recipe, data, project, name, freeze=arm == "freeze")
    cmd = [YOLOCUSTOM, "train", str(recipe)]
    measured = run_measured(cmd, root / "logs" / f"{name}.log")
    if measured.returncode != 0:
        raise SystemExit(f"{arm} run {index} failed (exit {measured.returncode}); see {measured.log}")
    rows = read_results_csv(project / name / "results.csv")
    times = epoch_times(rows, skip_first=False)
    record: dict[str, Any] = {
        "arm": arm,
        "repeat": index,
        "command": shell_join(cmd),
        "epoch_s": {str(i + 1): round(t, 3) for i, t in enumerate(times)},
        "frozen_s": median([times[e - 1] for e in FROZEN]),
        "unfreeze_epoch_s": times[UNFREEZE_EPOCH - 1],
        "unfrozen_s": median([times[e - 1] for e in UNFROZEN]),
    }
    match = _UNFROZE.search(Path(measured.log).read_text(errors="replace"))
    if match:
        record["unfroze"] = {
            "tensors": int(match[1]),
            "parameters": int(match[2].replace(",", "")),
            "at_epoch": int(match[3]),
        }
    print(
        f"[freeze] {arm:<8} #{index}: epochs {FROZEN} {record['frozen_s']:.3f} s, epoch {UNFREEZE_EPOCH} "
        f"{record['unfreeze_epoch_s']:.3f} s, epochs {UNFROZEN} {record['unfrozen_s']:.3f} s",
        flush=True,
    )
    return record


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON.

    Args:
        argv (list[str], optional): Command-line arguments.

    Returns:
        (int): Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 run per arm, 64/16 images")
    parser.add_argument("--repeats", type=int, default=None, help="runs per arm (default 3; --quick: 1)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default bench/out/freeze_speed.json)")
    args = parser.parse_args(argv)
    args.out = args.out or OUT_DIR / ("freeze_speed_quick.json" if args.quick else "freeze_speed.json")
    repeats = args.repeats or (1 if args.quick else 3)
    n_train, n_val = (64, 16) if args.quick else (400, 100)
    root = OUT_DIR / ("freeze_quick" if args.quick else "freeze")

    from yolocustom.demo_data import generate_demo_dataset

    data = generate_demo_dataset(root / "shapes", n_train=n_train, n_val=n_val, img_size=64, seed=0, rare_ratio=10)
    machine = machine_info()
    runs = []
    for i in range(repeats):
        for arm in ("freeze", "control") if i % 2 == 0 else ("control", "freeze"):
            runs.append(measure(arm, i, root, data))
    arms = {}
    for arm in ("freeze", "control"):
        rs = [r for r in runs if r["arm"] == arm]
        arms[arm] = {
            "runs": len(rs),
            "epochs_2_3_s": median([r["frozen_s"] for r in rs]),
            "epoch_4_s": median([r["unfreeze_epoch_s"] for r in rs]),
            "epochs_5_7_s": median([r["unfrozen_s"] for r in rs]),
        }
        arms[arm]["ratio_5_7_over_2_3"] = arms[arm]["epochs_5_7_s"] / arms[arm]["epochs_2_3_s"]
    f = arms["freeze"]
    result = {
        "benchmark": "freeze_speed",
        "machine": machine,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "design": {
            "dataset": {"n_train": n_train, "n_val": n_val, "img_size": 64, "rare_ratio": 10, "seed": 0},
            "epochs": EPOCHS,
            "freeze": {"layers": "backbone", "epochs": FREEZE_EPOCHS},
            "frozen_epochs": FROZEN,
            "unfrozen_epochs": UNFROZEN,
            "repeats_per_arm": repeats,
        },
        "commands": {
            "benchmark": "python bench/bench_freeze_speed.py" + (" --quick" if args.quick else ""),
            "freeze": next(r["command"] for r in runs if r["arm"] == "freeze"),
            "control": next(r["command"] for r in runs if r["arm"] == "control"),
        },
        "unfroze": next((r["unfroze"] for r in runs if "unfroze" in r), None),
        "runs": runs,
        "arms": arms,
        "speedup_frozen_vs_unfrozen": f["epochs_5_7_s"] / f["epochs_2_3_s"],
        "frozen_vs_control_same_epochs": arms["control"]["epochs_2_3_s"] / f["epochs_2_3_s"],
    }
    write_json(args.out, result)
    print(
        f"[freeze] unfrozen/frozen epoch time {result['speedup_frozen_vs_unfrozen']:.3f} "
        f"(control {arms['control']['ratio_5_7_over_2_3']:.3f}); wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
