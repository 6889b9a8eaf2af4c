"""Helpers shared by the benchmark scripts: paths, a clean offline environment, measured subprocesses, machine facts.

Every benchmark runs its workloads in fresh subprocesses and measures them from the outside: wall time with
``time.perf_counter`` and peak resident memory of that one child with ``os.wait4`` (``ru_maxrss``, KiB on Linux), so
the measuring process never pollutes the figures.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "bench" / "out"
DOCS = REPO / "docs"
PYTHON = sys.executable
BIN = Path(sys.executable).parent
YOLOCUSTOM = str(BIN / "yolocustom")


def bench_env(**extra: str) -> dict[str, str]:
    """Return the environment for benchmark subprocesses: offline, no auto-install, unbuffered output.

    Args:
        **extra (str): Additional variables.

    Returns:
        (dict[str, str]): A copy of ``os.environ`` with the offline settings applied.
    """
    env = dict(os.environ)
    env.update(
        YOLO_OFFLINE="1",
        YOLO_AUTOINSTALL="false",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        MPLBACKEND="Agg",
    )
    env.update(extra)
    return env


@dataclass
class Measured:
    """One measured subprocess.

    Attributes:
        cmd (list[str]): The command line.
        returncode (int): Exit status (negative: killed by that signal).
        wall_s (float): Wall-clock seconds from spawn to reap.
        maxrss_mb (float): Peak resident set size of the child, MiB (``ru_maxrss`` from ``wait4``).
        log (str): Path of the file holding its stdout and stderr.
    """

    cmd: list[str]
    returncode: int
    wall_s: float
    maxrss_mb: float
    log: str

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-ready data."""
        return asdict(self)


def run_measured(
    cmd: list[str],
    log: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 3600,
    poll: Callable[[int], None] | None = None,
) -> Measured:
    """Run ``cmd`` to completion and measure its wall time and peak RSS (this child only).

    Args:
        cmd (list[str]): Command line.
        log (Path): File receiving stdout and stderr.
        cwd (Path, optional): Working directory (default: the repository root).
        env (dict[str, str], optional): Environment (default: :func:`bench_env`).
        timeout (float): Seconds before the child is killed.
        poll (Callable[[int], None], optional): Called with the child's pid about every 10 ms while it runs.

    Returns:
        (Measured): The measurement; check ``returncode`` yourself.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd or REPO, env=env or bench_env(), stdout=out, stderr=subprocess.STDOUT)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
            if poll is not None:
                poll(proc.pid)
            time.sleep(0.01)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4; keep Popen consistent
    return Measured(cmd, proc.returncode, wall, usage.ru_maxrss / 1024.0, str(log))


def process_cpu_seconds(pid: int) -> float | None:
    """Return user + system CPU seconds used so far by process ``pid`` (all its threads), from ``/proc``.

    Args:
        pid (int): Process id.

    Returns:
        (float | None): CPU seconds, or None if the process is gone or ``/proc`` is unavailable.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def median(values: list[float]) -> float:
    """Return the median of ``values`` (NaN for an empty list)."""
    return statistics.median(values) if values else float("nan")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def _version(module: str) -> str:
    out = subprocess.run(
        [PYTHON, "-c", f"import importlib.metadata as m; print(m.version({module!r}))"],
        capture_output=True,
        text=True,
        env=bench_env(),
    )
    return out.stdout.strip() or "not installed"


def machine_info() -> dict[str, Any]:
    """Describe the machine and software the figures were taken on.

    Returns:
        (dict[str, Any]): CPU model, logical cores, memory, OS, Python/torch/Ultralytics versions, git commit, load.
    """
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=REPO)
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "memory_gib": round(_mem_gib(), 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": _version("torch"),
        "ultralytics": _version("ultralytics"),
        "yolocustom": _version("yolocustom"),
        "git": (rev.stdout.strip() or "unknown") + (" (uncommitted changes)" if dirty.stdout.strip() else ""),
        "gpu": "none used: no GPU is lent to this task (CPU-only figures)",
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (temporary file, then rename).

    Args:
        path (Path): Target file; its folder is created.
        data (Any): JSON-serialisable data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def shell_join(cmd: list[str]) -> str:
    """Return ``cmd`` as a copy-pasteable shell line, with the repository root and venv shortened.

    Args:
        cmd (list[str]): Command line.

    Returns:
        (str): The quoted line, with paths relative to the repository where possible.
    """
    text = shlex.join(cmd)
    return text.replace(str(BIN) + "/", ".venv/bin/").replace(str(REPO) + "/", "")


def read_results_csv(path: Path) -> list[dict[str, float]]:
    """Read an Ultralytics ``results.csv`` into rows of floats, keys stripped.

    Args:
        path (Path): The CSV.

    Returns:
        (list[dict[str, float]]): One dict per epoch row.
    """
    import csv

    with open(path, newline="") as f:
        return [{k.strip(): float(v) for k, v in row.items() if k and v.strip()} for row in csv.DictReader(f)]


def epoch_times(rows: list[dict[str, float]], skip_first: bool = True) -> list[float]:
    """Per-epoch wall seconds from the cumulative ``time`` column of results.csv.

    Args:
        rows (list[dict[str, float]]): From :func:`read_results_csv`.
        skip_first (bool): Drop epoch 1 (warm-up: model build, data-loader creation, first allocations).

    Returns:
        (list[float]): ``time[i] - time[i-1]`` for each epoch after the first (``time[0]`` too when not skipped).
    """
    times = [r["time"] for r in rows]
    deltas = [b - a for a, b in zip(times, times[1:], strict=False)]
    return deltas if skip_first else [times[0], *deltas] if times else []
