"""What the benchmarks share: the module contract's entry point, measured subprocesses, statistics, tables.

A benchmark is a module ``bench/bench_<name>.py`` with ``NAME`` (its JSON is ``bench/out/<NAME>.json``),
``run(args) -> dict`` (measure; JSON-ready data), ``render(result) -> str`` (its markdown section, from that data
only) and optionally ``add_arguments(parser)``, ``output_name(args)`` (when one module writes several results) and
``TITLE`` (the heading shown while it has no result). :func:`main` runs one module alone; ``bench/run_all.py`` runs
the selected ones through it and renders docs/BENCHMARKS.md. Workloads run in fresh subprocesses measured from the
outside (wall time, and the peak RSS of that one child from ``os.wait4``), so the measuring process pollutes nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "bench" / "out"
DOCS = REPO / "docs"
PYTHON = sys.executable
BIN = Path(sys.executable).parent
YOLOCUSTOM = str(BIN / "yolocustom")
PLAIN = "import json, sys; from ultralytics import YOLO; YOLO(sys.argv[2]).train(**json.loads(sys.argv[1]))"


def bench_env(**extra: str) -> dict[str, str]:
    """Return the environment for benchmark subprocesses: offline, no auto-install, unbuffered, no bytecode writes."""
    return {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg", **extra}  # fmt: skip


@dataclass
class Measured:
    """One measured subprocess: exit status, wall and CPU (user + system) seconds, peak RSS (MiB), its output's log."""

    returncode: int
    wall_s: float
    cpu_s: float
    maxrss_mb: float
    log: Path


def run_measured(cmd: list[str], log: Path, *, cwd: Path | None = None, env: dict[str, str] | None = None,
                 timeout: float = 3600, poll: Callable[[int], None] | None = None) -> Measured:  # fmt: skip
    """Run ``cmd`` (output into ``log``) and measure this child only; ``poll(pid)`` runs every ~10 ms meanwhile and
    the child is killed after ``timeout`` seconds. Check ``returncode`` yourself."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd or REPO, env=env or bench_env(), stdout=out, stderr=subprocess.STDOUT)
        while not (reaped := os.wait4(proc.pid, os.WNOHANG))[0]:
            if time.perf_counter() > start + timeout:
                proc.kill()
            if poll is not None:
                poll(proc.pid)
            time.sleep(0.01)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(reaped[1])  # reaped by wait4 already; keep Popen consistent
    usage = reaped[2]
    return Measured(proc.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, log)


def run_checked(cmd: list[str], log: Path, **kw: Any) -> Measured:
    """:func:`run_measured`, raising (with the log's tail) if ``cmd`` fails."""
    if (measured := run_measured(cmd, log, **kw)).returncode != 0:
        raise RuntimeError(f"{shell_join(cmd)} exited {measured.returncode}; {log}:\n{log.read_text()[-2000:]}")
    return measured


def call_fresh(module_file: str, function: str, *args: str, cwd: Path | None = None) -> Any:
    """Call ``function(*args)`` of the module at ``module_file`` in a fresh interpreter (no imports, threads or
    memory of the measuring one); return its JSON result."""
    path = Path(module_file).resolve()
    code = f"import json, sys; sys.path.insert(0, {str(path.parent)!r}); import {path.stem} as m; "
    code += f"print(json.dumps(m.{function}(*sys.argv[1:])))"
    out = subprocess.run([PYTHON, "-c", code, *args], capture_output=True, text=True, env=bench_env(), cwd=cwd or REPO)
    if out.returncode != 0:
        raise RuntimeError(f"{path.stem}.{function}{args} exited {out.returncode}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median(values: list[float]) -> float:
    """Return the median of ``values`` (NaN for an empty list)."""
    return statistics.median(values) if values else float("nan")


def paired(base: list[float], other: list[float], n: int = 10_000) -> dict[str, Any]:
    """Paired ratios ``other[i] / base[i]``, their ``median`` and its 95 % percentile-bootstrap interval ``ci95``
    (pairs measured back to back cancel slow drift of the machine, which dominates the noise between runs)."""
    ratios = [b / a for a, b in zip(base, other, strict=True) if a and b]
    rng = random.Random(0)
    meds = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(n)) if len(ratios) > 1 else []
    ci = [meds[int(0.025 * n)], meds[int(0.975 * n) - 1]] if meds else None
    return {"ratios": [round(r, 4) for r in ratios], "median": median(ratios), "ci95": ci}


def fmt(value: float | None, spec: str = ".3f") -> str:
    """Format a number for a table, ``n/a`` when missing."""
    return "n/a" if value is None else format(value, spec)


def table(header: str | list[str], rows: list[list[Any]], align: str = "") -> str:
    """Return a markdown table; ``header``: names joined by ``" | "``; ``align``: ``l``/``r`` per column (l, r...)."""
    names = header.split(" | ") if isinstance(header, str) else header
    align = align or "l" + "r" * (len(names) - 1)
    lines = ["| " + " | ".join(names) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def shell_join(cmd: list[str]) -> str:
    """Return ``cmd`` as a copy-pasteable shell line, with the repository root and the venv shortened."""
    return shlex.join(cmd).replace(str(BIN) + "/", ".venv/bin/").replace(str(REPO) + "/", "")


def read_results_csv(path: Path) -> list[dict[str, float]]:
    """Read an Ultralytics ``results.csv`` into rows of floats, keys stripped."""
    with open(path, newline="") as f:
        return [{k.strip(): float(v) for k, v in row.items() if k and v.strip()} for row in csv.DictReader(f)]


def epoch_times(rows: list[dict[str, float]], skip_first: bool = True) -> list[float]:
    """Per-epoch seconds from results.csv's cumulative ``time`` column; epoch 1 (warm-up) dropped unless asked."""
    times = [r["time"] for r in rows]
    deltas = [b - a for a, b in zip(times, times[1:], strict=False)]
    return deltas if skip_first else times[:1] + deltas


def train_args(data: Path, project: Path, name: str, epochs: int, **extra: Any) -> dict[str, Any]:
    """Return the Ultralytics ``train()`` arguments of the tiny CPU runs (imgsz 64, batch 16, no workers, seed 0)."""
    return {"data": str(data), "epochs": epochs, "imgsz": 64, "batch": 16, "workers": 0, "device": "cpu", "seed": 0,
            "plots": False, "project": str(project), "name": name, "exist_ok": True, **extra}  # fmt: skip


def train_run(work: Path, name: str, model: str, data: Path, epochs: int, features: dict[str, Any] | None,
              **kw: Any) -> tuple[str, Measured, list[dict[str, float]]]:  # fmt: skip
    """Train ``model`` once in a fresh subprocess under ``work`` (:func:`train_args`; ``kw``: :func:`run_measured`'s)
    as plain Ultralytics (``features`` None: :data:`PLAIN`) or as ``yolocustom train`` of the equal recipe with
    ``features``; raise if it fails. Return its command line, its measurement and its results.csv rows."""
    import yaml

    shutil.rmtree(work / "runs" / name, ignore_errors=True)
    args, recipe = train_args(data, work / "runs", name, epochs), work / f"{name}.yaml"
    if features is None:
        cmd = [PYTHON, "-c", PLAIN, json.dumps(args), model]
    else:
        train = {k: v for k, v in args.items() if k not in {"data", "device"}}
        recipe.parent.mkdir(parents=True, exist_ok=True)
        recipe.write_text(yaml.safe_dump({"model": model, "data": args["data"], "device": args["device"],
                                          "train": train, "features": features}, sort_keys=False))  # fmt: skip
        cmd = [YOLOCUSTOM, "train", str(recipe)]
    measured = run_checked(cmd, work / f"{name}.log", **kw)
    return shell_join(cmd), measured, read_results_csv(work / "runs" / name / "results.csv")


def machine_info() -> dict[str, Any]:
    """Describe the machine and software: CPU, cores, memory, GPU, versions, git commit, load average and date."""
    probe = ("import importlib.metadata as m, json, torch\nv = {p: m.version(p) for p in ('torch', 'ultralytics', "
             "'yolocustom')}\nv['gpu'] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'\n"
             "print(json.dumps(v))")  # fmt: skip
    out = subprocess.run([PYTHON, "-c", probe], capture_output=True, text=True, env=bench_env())
    versions = json.loads(out.stdout) if out.returncode == 0 else {}
    git = ["git", "-C", str(REPO)]
    rev = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "yolocustom", "bench/*.py"], capture_output=True)
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())  # Linux, like wait4 and /proc
    mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    return {
        "cpu": cpu[1] if cpu else "unknown", "memory_gib": round(int(mem[1]) / 1024**2, 1) if mem else None,
        "logical_cores": os.cpu_count(), "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), **versions,
        "git": (rev or "unknown") + (" (uncommitted changes)" if dirty.stdout.strip() else ""),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "nice": os.nice(0),  # a benchmark run niced on a shared machine gets only what the others leave
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }  # fmt: skip


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (temporary file, then rename); the folder is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def out_dir(quick: bool) -> Path:
    """Where results go: ``bench/out`` (committed JSON), or ``bench/out/quick`` for smoke runs (ignored)."""
    return OUT_DIR / "quick" if quick else OUT_DIR


def work_dir(args: argparse.Namespace, name: str) -> Path:
    """A module's run folder (datasets, runs, logs) under ``bench/out`` (ignored by git)."""
    return out_dir(args.quick) / "work" / name


def main(module: ModuleType, argv: list[str] | None = None) -> int:
    """Run one benchmark module: parse its options, ``run``, write its JSON (adding ``module``, ``command``,
    ``machine``, ``loadavg_at_end`` and ``seconds``), and print its section."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=(module.__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (not evidence); JSON under bench/out/quick")
    getattr(module, "add_arguments", lambda parser: None)(parser)
    args = parser.parse_args(argv)
    stem = Path(module.__file__ or "").stem
    machine, start = machine_info(), time.perf_counter()
    result = {**module.run(args), "module": stem.removeprefix("bench_"),
              "command": shlex.join(["python", f"bench/{stem}.py", *argv]), "machine": machine,
              "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
              "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    path = out_dir(args.quick) / f"{module.output_name(args) if hasattr(module, 'output_name') else module.NAME}.json"
    write_json(path, result)
    print(module.render(result), f"\nwrote {path.relative_to(REPO)}", sep="\n")
    return 0
