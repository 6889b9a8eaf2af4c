"""Freeze speed-up: epoch time while the backbone is frozen against after ``yolocustom`` unfreezes it.

``yolocustom train`` with ``freeze: {layers: backbone, epochs: 3}`` over 7 epochs (frozen 1-3, unfrozen at the start
of 4) against a control arm without ``freeze``, so a trend unrelated to freezing (warm-up, caches, load drift) shows as
a control ratio away from 1. Arms alternate (ABBA), each run a fresh subprocess; epoch times from results.csv
(validation included); frozen = median of epochs 2-3, unfrozen = median of 5-7, each then the median over runs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import epoch_times, fmt, main, median, table, train_run, work_dir  # noqa: E402

NAME = "freeze_speed"
TITLE = "Freeze speed-up"
EPOCHS, FREEZE = 7, {"layers": "backbone", "epochs": 3}
FROZEN, UNFREEZE, UNFROZEN = (2, 3), 4, (5, 6, 7)  # 1-based epochs
_UNFROZE = re.compile(r"unfroze layers .*\((\d+) tensors, ([\d,]+) parameters\) at the start of epoch (\d+)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
            features = {"freeze": FREEZE} if arm == "freeze" else {}
            cmd, measured, rows = train_run(work, f"{arm}_{i}", "yolo26n.yaml", data, EPOCHS, features)
            t = epoch_times(rows, skip_first=False)
            runs += [{"arm": arm, "epoch_s": [round(x, 3) for x in t], "frozen_s": median([t[e - 1] for e in FROZEN]),
                      "unfreeze_s": t[UNFREEZE - 1], "unfrozen_s": median([t[e - 1] for e in UNFROZEN])}]  # fmt: skip
            commands.setdefault(arm, cmd)
            if m := _UNFROZE.search(measured.log.read_text(errors="replace")):
                unfroze = {"tensors": int(m[1]), "parameters": int(m[2].replace(",", "")), "at_epoch": int(m[3])}
            print(f"[freeze] {arm} #{i}: {runs[-1]['epoch_s']}", flush=True)
    arms = {}
    for arm in ("freeze", "control"):
        rs = [r for r in runs if r["arm"] == arm]
        a = {k: median([r[k] for r in rs]) for k in ("frozen_s", "unfreeze_s", "unfrozen_s")}
        arms[arm] = {"runs": len(rs), **a, "ratio": a["unfrozen_s"] / a["frozen_s"]}
    return {"design": {"n_train": n_train, "n_val": n_val, "imgsz": 64, "epochs": EPOCHS, "freeze": FREEZE,
                       "repeats_per_arm": repeats}, "commands": commands, "unfroze": unfroze, "runs": runs,
            "arms": arms, "frozen_vs_control": arms["control"]["frozen_s"] / arms["freeze"]["frozen_s"]}  # fmt: skip


def render(result: dict[str, Any]) -> str:
    """The section: per-arm epoch times and the ratio attributable to freezing."""
    d, arms, u = result["design"], result["arms"], result.get("unfroze") or {}
    speed, control = arms["freeze"]["ratio"], arms["control"]["ratio"]
    rows = [[arm, *(fmt(a[k]) for k in ("frozen_s", "unfreeze_s", "unfrozen_s", "ratio"))] for arm, a in arms.items()]
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
