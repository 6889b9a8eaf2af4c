"""Start-up time of the yolocustom CLI against Ultralytics' own ``yolo`` CLI in the same environment.

Times, from the outside (fresh subprocess per run, wall clock from spawn to exit), the median of ``--repeat`` runs after
``--warmup`` discarded runs of:

* ``yolocustom --help``
* ``yolocustom validate-config configs/minimal.yaml``
* ``yolo version`` (the reference: it imports Ultralytics and therefore torch)

Targets: each yolocustom command under 0.35 s and at most 0.25x ``yolo version``. Prints a markdown table and writes
JSON (``--out``). Exits 1 if a command fails, or (with ``--check``) if a target is missed. To see what a slow command
imports: ``.venv/bin/python -X importtime -m yolocustom --help 2> imports.txt``.

Usage::

    .venv/bin/python bench/bench_cli_startup.py [--repeat 7] [--warmup 1] [--out bench/out/cli_startup.json] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET_S = 0.35
TARGET_RATIO = 0.25


def _env() -> dict[str, str]:
    """Offline, no auto-install, no bytecode writes that would make the first run special."""
    return {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "PYTHONDONTWRITEBYTECODE": "1"}


def commands() -> dict[str, list[str]]:
    """The measured command lines by label: the console scripts next to this interpreter (as users run them)."""
    ours = [str(BIN / "yolocustom")] if (BIN / "yolocustom").exists() else [sys.executable, "-m", "yolocustom"]
    yolo = (
        [str(BIN / "yolo"), "version"]
        if (BIN / "yolo").exists()
        else [sys.executable, "-c", "from ultralytics.cfg import entrypoint; entrypoint('version')"]
    )
    return {
        "yolocustom --help": [*ours, "--help"],
        "yolocustom validate-config configs/minimal.yaml": [*ours, "validate-config", "configs/minimal.yaml"],
        "yolo version": yolo,
    }


def time_once(cmd: list[str]) -> float:
    """Wall seconds of one run; raises if the command fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = proc.stdout.decode(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    return elapsed


def measure(cmd: list[str], repeat: int, warmup: int) -> dict[str, Any]:
    """Median, min and max of ``repeat`` runs after ``warmup`` discarded ones."""
    for _ in range(warmup):
        time_once(cmd)
    runs = [time_once(cmd) for _ in range(repeat)]
    return {"cmd": cmd, "runs_s": runs, "median_s": statistics.median(runs), "min_s": min(runs), "max_s": max(runs)}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("yolocustom", "ultralytics", "torch", "typer", "pydantic"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="measured runs per command (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded runs before measuring")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "cli_startup.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    try:
        results = {label: measure(cmd, args.repeat, args.warmup) for label, cmd in commands().items()}
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    reference = results["yolo version"]["median_s"]
    rows = []
    missed = []
    for label, r in results.items():
        ratio = r["median_s"] / reference
        ours = label.startswith("yolocustom")
        ok = r["median_s"] < TARGET_S and ratio <= TARGET_RATIO if ours else None
        r.update(ratio_vs_yolo_version=ratio, meets_target=ok)
        if ok is False:
            missed.append(label)
        target = f"< {TARGET_S} s, <= {TARGET_RATIO}x" if ours else "reference"
        verdict = "" if ok is None else ("yes" if ok else "**no**")
        rows.append(
            f"| `{label}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | {ratio:.2f}x | {target} | "
            f"{verdict} |"
        )

    print(f"CLI start-up, median of {args.repeat} runs after {args.warmup} warm-up (wall seconds)\n")
    print("| command | median | min | max | vs `yolo version` | target | met |")
    print("|---|---:|---:|---:|---:|---|---|")
    print("\n".join(rows))
    report = {
        "benchmark": "cli_startup",
        "repeat": args.repeat,
        "warmup": args.warmup,
        "targets": {"max_s": TARGET_S, "max_ratio_vs_yolo_version": TARGET_RATIO},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "versions": _versions(),
        "results": results,
        "missed": missed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    if missed:
        print(f"missed targets: {', '.join(missed)} (profile with python -X importtime)", file=sys.stderr)
    return 1 if missed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
