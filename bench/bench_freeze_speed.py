"""Freeze speed-up: epoch time while the backbone is frozen against after ``yolocustom`` unfreezes it.

``yolocustom train`` runs a recipe with ``freeze: {layers: backbone, epochs: 3}`` over 7 epochs: epochs 1-3 train
with the backbone frozen, epoch 4 starts by unfreezing it, epochs 4-7 train everything. A control arm runs the same
recipe without ``freeze``, so a trend unrelated to freezing (warm-up, caches, load drift) shows as a control ratio away
from 1. Arms alternate (ABBA), each run a fresh subprocess. Epoch times are differences of results.csv's cumulative
``time`` (validation included, which freezing does not change); epoch 1 is warm-up. Frozen = median of epochs 2-3,
unfrozen = median of epochs 5-7, the unfreeze epoch 4 on its own; each the median over runs.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    epoch_times,
    fmt,
    main,
    median,
    recipe_command,
    shell_join,
    table,
    train_args,
    train_measured,
    work_dir,
)

NAME = "freeze_speed"
TITLE = "Freeze speed-up"
EPOCHS, FREEZE = 7, {"layers": "backbone", "epochs": 3}
FROZEN, UNFREEZE, UNFROZEN = (2, 3), 4, (5, 6, 7)  # 1-based epochs
_UNFROZE = re.compile(r"unfroze layers .*\((\d+) tensors, ([\d,]+) parameters\) at the start of epoch (\d+)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Runs per arm."""
    parser.add_argument("--repeats", type=int, default=3, help="runs per arm")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Alternate the two arms; per arm the medians of the frozen, unfreeze and unfrozen epochs."""
    from yolocustom.demo_data import generate_demo_dataset

    repeats, (n_train, n_val) = (1, (64, 16)) if args.quick else (args.repeats, (400, 100))
    work = work_dir(args, NAME)
    data = generate_demo_dataset(work / "shapes", n_train=n_train, n_val=n_val, img_size=64, seed=0, rare_ratio=10)
    runs, commands, unfroze = [], {}, None
    for i in range(repeats):
        for arm in ("freeze", "control") if i % 2 == 0 else ("control", "freeze"):
            name = f"{arm}_{i}"
            shutil.rmtree(work / "runs" / name, ignore_errors=True)
            targs = train_args(data, work / "runs", name, EPOCHS)
            cmd = recipe_command(
                work / f"{name}.yaml", "yolo26n.yaml", targs, {"freeze": FREEZE} if arm == "freeze" else {}
            )
            measured, rows = train_measured(cmd, work / "runs" / name, work / f"{name}.log")
            t = epoch_times(rows, skip_first=False)
            frozen, unfrozen = median([t[e - 1] for e in FROZEN]), median([t[e - 1] for e in UNFROZEN])
            runs.append({"arm": arm, "epoch_s": [round(x, 3) for x in t], "frozen_s": frozen,
                         "unfreeze_s": t[UNFREEZE - 1], "unfrozen_s": unfrozen})  # fmt: skip
            commands.setdefault(arm, shell_join(cmd))
            if m := _UNFROZE.search(measured.log.read_text(errors="replace")):
                unfroze = {"tensors": int(m[1]), "parameters": int(m[2].replace(",", "")), "at_epoch": int(m[3])}
            print(f"[freeze] {arm} #{i}: {runs[-1]['epoch_s']}", flush=True)
    arms = {}
    for arm in ("freeze", "control"):
        rs = [r for r in runs if r["arm"] == arm]
        a = {k: median([r[k] for r in rs]) for k in ("frozen_s", "unfreeze_s", "unfrozen_s")}
        arms[arm] = {"runs": len(rs), **a, "ratio": a["unfrozen_s"] / a["frozen_s"]}
    return {
        "design": {
            "n_train": n_train,
            "n_val": n_val,
            "imgsz": 64,
            "epochs": EPOCHS,
            "freeze": FREEZE,
            "repeats_per_arm": repeats,
        },  # fmt: skip
        "commands": commands,
        "unfroze": unfroze,
        "runs": runs,
        "arms": arms,
        "frozen_vs_control": arms["control"]["frozen_s"] / arms["freeze"]["frozen_s"],
    }


def render(result: dict[str, Any]) -> str:
    """The section: per-arm epoch times and the ratio attributable to freezing."""
    d, arms, u = result["design"], result["arms"], result.get("unfroze") or {}
    speed, control = arms["freeze"]["ratio"], arms["control"]["ratio"]
    rows = [
        [arm, fmt(a["frozen_s"]), fmt(a["unfreeze_s"]), fmt(a["unfrozen_s"]), fmt(a["ratio"])]
        for arm, a in arms.items()
    ]
    return (
        f"## {TITLE}\n\n`yolocustom train` with `freeze: {json.dumps(d['freeze'])}` over {d['epochs']} epochs, against "
        f"a control arm without `freeze`; {d['repeats_per_arm']} runs per arm, alternated; {d['n_train']} train / "
        f"{d['n_val']} val generated images, imgsz {d['imgsz']}, CPU. Epoch times from results.csv (validation "
        f"included, which freezing does not change); epoch 1 is warm-up. The backbone is {u.get('parameters', 0):,} "
        f"parameters in {u.get('tensors', 0)} tensors. One run: `{result['commands']['freeze']}`.\n\n"
        + table("arm | epochs 2-3 (s) | epoch 4, unfreeze (s) | epochs 5-7 (s) | epochs 5-7 / epochs 2-3", rows)
        + f"\n\nAn unfrozen epoch takes {speed:.2f}x the time of a frozen one; the control arm's same ratio is "
        f"{control:.2f}, so {speed / control:.2f}x is attributable to freezing. Frozen epochs against the "
        f"control's same epochs: {result['frozen_vs_control']:.2f}x. No target: on CPU a frozen backbone skips its "
        "weight gradients and optimizer update; the saving in training alone is larger than these ratios, which "
        "include validation."
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.modules[__name__]))
