"""CLI start-up: ``yolocustom --help`` and ``validate-config`` against Ultralytics' own ``yolo version``.

Fresh subprocess per run, median of ``--repeat`` runs after ``--warmup`` ones; the reference imports torch. Target:
each yolocustom command under 0.35 s and at most 0.25x the reference. What a slow command imports:
``.venv/bin/python -X importtime -m yolocustom --help 2> imports.txt``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BIN, YOLOCUSTOM, fmt, main, median, run_checked, shell_join, table, work_dir  # noqa: E402

NAME = "cli_startup"
TITLE = "CLI start-up"
TARGET_S, TARGET_RATIO = 0.35, 0.25
COLUMNS = ("command | wall, median (s) | wall min-max (s) | wall ratio vs `yolo version` | CPU, median (s) | CPU ratio "
           "vs `yolo version` | target on wall | target on CPU")  # fmt: skip
COMMANDS = {"yolocustom --help": [YOLOCUSTOM, "--help"],
            "yolocustom validate-config configs/minimal.yaml": [YOLOCUSTOM, "validate-config", "configs/minimal.yaml"],
            "yolo version": [str(BIN / "yolo"), "version"]}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=int, default=7, help="measured runs per command (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded runs before measuring")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time every command; raise if one fails."""
    repeat, warmup = (2, 0) if args.quick else (args.repeat, args.warmup)
    log = work_dir(args, NAME) / "last.log"
    results = {}
    for label, cmd in COMMANDS.items():
        runs = [run_checked(cmd, log, timeout=300) for _ in range(warmup + repeat)][warmup:]
        wall = sorted(m.wall_s for m in runs)
        cpu = median([m.cpu_s for m in runs])
        results[label] = {"cmd": shell_join(cmd), "runs_s": wall, "median_s": median(wall), "median_cpu_s": cpu}
    for label, r in results.items():
        r["ratio_vs_yolo_version"] = r["median_s"] / results["yolo version"]["median_s"]
        if label.startswith("yolocustom"):
            r["meets_target"] = r["median_s"] < TARGET_S and r["ratio_vs_yolo_version"] <= TARGET_RATIO
    return {"repeat": repeat, "warmup": warmup, "targets": {"max_s": TARGET_S, "max_ratio": TARGET_RATIO}, **results}


def render(result: dict[str, Any]) -> str:
    """The section: one row per command, judged against the target on wall time and on CPU time."""
    t, ref = result["targets"], result["yolo version"]

    def verdict(r: dict[str, Any], seconds: float | None, ratio: float | None) -> str:
        if "meets_target" not in r or seconds is None or ratio is None:
            return "reference" if "meets_target" not in r else "n/a"
        return "**met**" if seconds < t["max_s"] and ratio <= t["max_ratio"] else "**missed**"

    rows = []
    for label in COMMANDS:
        r = result[label]
        cpu = r.get("median_cpu_s")
        cpu_ratio = cpu / ref["median_cpu_s"] if cpu and ref.get("median_cpu_s") else None
        rows.append([f"`{r['cmd']}`", fmt(r["median_s"]), f"{fmt(r['runs_s'][0])}-{fmt(r['runs_s'][-1])}",
                     fmt(r["ratio_vs_yolo_version"]), fmt(cpu), fmt(cpu_ratio),
                     verdict(r, r["median_s"], r["ratio_vs_yolo_version"]), verdict(r, cpu, cpu_ratio)])  # fmt: skip
    return (
        f"## {TITLE}\n\nFresh subprocess per run, timed from spawn to exit; median of {result['repeat']} runs after "
        f"{result['warmup']} discarded warm-up run(s). Target: each yolocustom command under {t['max_s']} s and at "
        f"most {t['max_ratio']}x `yolo version` (which imports torch), meant as wall time on a quiet machine. CPU "
        "seconds (user + system of the child) are judged too: load from other processes stretches wall time, CPU "
        "time much less (caches still suffer), so on a loaded machine (see the load average below) the CPU columns "
        "are the better guide.\n\n" + table(COLUMNS, rows, "lrrrrrll")
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.modules[__name__]))
