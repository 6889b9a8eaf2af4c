"""Helpers for the multi-process tests: the real ``yolocustom train`` CLI under real ``torchrun`` (gloo, 127.0.0.1),
with the test-only probe of ``tests/ddp_probe`` recording every rank's weights, class weights and shards per epoch."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).resolve().parent / "ddp_probe"
TORCHRUN = (
    [str(Path(sys.executable).parent / "torchrun")] if (Path(sys.executable).parent / "torchrun").exists() else []
)
TORCHRUN = TORCHRUN or [sys.executable, "-m", "torch.distributed.run"]

# Every feature on, sized for COCO8 (4 train images) at imgsz 32: 3 epochs, global batch 4 = 2 per rank. The freeze
# schedule unfreezes a stage at the start of epochs 2 and 3 (DDP re-wrap on every rank), with an LR ramp.
ALL_FEATURES: dict[str, Any] = {
    "f1_logging": {"per_class": True},
    "class_weights": {"auto": "sqrt_inverse"},
    "fitness": {"metric": "recall", "classes": ["person"]},
    "freeze": {
        "schedule": [{"epoch": 1, "layers": [0, 1, 2]}, {"epoch": 2, "layers": [3, 4, 5]}],
        "ramp": {"epochs": 1, "start": 0.2},
    },
    "layer_lr": {"backbone_ratio": 0.5},
    "repeat_factor_sampling": {"threshold": 0.5},
    "thresholds": {},
}
TRAIN: dict[str, Any] = {"epochs": 3, "batch": 4, "nbs": 4, "optimizer": "SGD", "lr0": 0.01}


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for the rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(probe_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """The CLI's environment: this checkout first on the path, offline, one thread per rank, optionally the probe."""
    out = dict(os.environ)
    out.pop("PYTEST_CURRENT_TEST", None)  # else Ultralytics thinks it runs under pytest and moves run folders
    paths = [str(REPO)] + ([str(PROBE)] if probe_dir is not None else [])
    out.update(
        PYTHONPATH=os.pathsep.join(paths),
        YOLO_OFFLINE="1",
        YOLO_AUTOINSTALL="false",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        MPLBACKEND="Agg",
        **extra,
    )
    if probe_dir is not None:
        probe_dir.mkdir(parents=True, exist_ok=True)
        out["YC_PROBE_DIR"] = str(probe_dir)
    return out


def torchrun_cmd(*launcher_args: str, recipe: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """``torchrun LAUNCHER_ARGS -m yolocustom train RECIPE EXTRA``."""
    return [*TORCHRUN, *launcher_args, "-m", "yolocustom", "train", str(recipe), *extra]


@dataclass
class Finished:
    """A finished launcher process."""

    returncode: int
    output: str
    wall_s: float


def run(cmd: list[str], environ: dict[str, str], cwd: Path, timeout: float = 600) -> Finished:
    """Run ``cmd`` to completion (its own session, killed as a group on timeout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
    return Finished(proc.returncode, out, time.perf_counter() - start)


def two_nodes(recipe: Path, probe_dir: Path, cwd: Path, extra: tuple[str, ...] = ()) -> list[Finished]:
    """Two ``torchrun --nnodes 2 --node-rank {0,1}`` processes on 127.0.0.1 (one worker each): two simulated nodes."""
    port = str(free_port())
    procs = []
    start = time.perf_counter()
    for node in (0, 1):
        args = ("--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1")
        args += ("--master-addr", "127.0.0.1", "--master-port", port)
        cmd = torchrun_cmd(*args, recipe=recipe, extra=extra)
        procs.append(
            subprocess.Popen(
                cmd, cwd=cwd, env=env(probe_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outs = [p.communicate(timeout=600)[0] for p in procs]
    wall = time.perf_counter() - start
    return [Finished(p.returncode, o, wall) for p, o in zip(procs, outs)]


def probe_rows(probe_dir: Path, event: str = "end") -> dict[int, list[dict[str, Any]]]:
    """The probe's rows per global rank (``end`` of each epoch by default)."""
    rows: dict[int, list[dict[str, Any]]] = {}
    for file in sorted(probe_dir.glob("rank*.jsonl")):
        for line in file.read_text().splitlines():
            row = json.loads(line)
            if row["event"] == event:
                rows.setdefault(row["rank"], []).append(row)
    return rows


def clean(folder: Path) -> None:
    """Remove a folder left by a previous attempt."""
    shutil.rmtree(folder, ignore_errors=True)
