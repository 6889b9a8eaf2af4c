"""Drill: SIGKILL one worker of a 2-rank ``torchrun --max-restarts 1`` job during epoch 2 of 4.

torchrun stops the surviving rank and starts the group again with ``TORCHELASTIC_RESTART_COUNT=1``; ``yolocustom
train`` (same command, no flag) finds the run's own ``last.pt`` of the same recipe sha256 and resumes it. Checks: the
job succeeds, the restarted group starts again at the epoch that was in flight (no epoch lost, none repeated),
results.csv holds epochs 1..4 exactly once, there is one run folder and no half-written file, and both ranks hold
identical parameters after every epoch of the restarted group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ALL_FEATURES, read_csv, write_drill_recipe
from torchrun_helpers import env, free_port, probe_rows, torchrun_cmd

pytestmark = pytest.mark.drill
EPOCHS = 4


def _wait_for_batch(probe: Path, rank: int, epoch: int, proc: subprocess.Popen[str], timeout: float = 600) -> int:
    """Wait until ``rank`` has finished the first batch of 0-based ``epoch`` in the first attempt (so it is inside that
    epoch, with the rest of its batches still to run); return that worker's pid."""
    deadline = time.monotonic() + timeout
    file = probe / f"rank{rank}.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if file.exists():
            for line in file.read_text().splitlines():
                row = json.loads(line)
                if row["event"] == "batch" and row["epoch"] == epoch:
                    return int(row["pid"])
        time.sleep(0.05)
    raise AssertionError(f"rank {rank} never got into epoch {epoch + 1}")


def test_sigkill_one_worker_mid_epoch_resumes_under_max_restarts(tmp_path: Path, drill_shapes: Path) -> None:
    features = {
        **ALL_FEATURES,
        "freeze": {"layers": "backbone", "epochs": 2},
        "repeat_factor_sampling": {"threshold": 0.3},
    }
    recipe = write_drill_recipe(tmp_path, drill_shapes, features, epochs=EPOCHS, imgsz=32, batch=8, nbs=8)
    probe = tmp_path / "probe"
    args = ("--nnodes", "1", "--nproc-per-node", "2", "--max-restarts", "1")
    args += ("--master-addr", "127.0.0.1", "--master-port", str(free_port()))
    log = open(tmp_path / "torchrun.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        torchrun_cmd(*args, recipe=recipe),
        cwd=tmp_path,
        env=env(probe),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        # killed inside epoch 2: a fixed sleep after the epoch's start could outlast its 12 steps on a quiet machine
        victim = _wait_for_batch(probe, rank=1, epoch=1, proc=proc)
        os.kill(victim, signal.SIGKILL)
        code = proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    output = (tmp_path / "torchrun.log").read_text()
    assert code == 0, output[-5000:]
    assert "torchrun restart 1: resuming" in output, output[-5000:]

    runs = tmp_path / "runs"
    assert [p.name for p in runs.iterdir()] == ["run"]
    folder = runs / "run"
    assert [int(float(r["epoch"])) for r in read_csv(folder / "results.csv")] == list(range(1, EPOCHS + 1))
    assert sorted({int(r["epoch"]) for r in read_csv(folder / "f1_per_class.csv")}) == list(range(1, EPOCHS + 1))
    leftovers = [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.suffix in {".tmp", ".partial"}]
    assert leftovers == [], leftovers

    rows = probe_rows(probe)
    for rank in (0, 1):
        first = [r["epoch"] for r in rows[rank] if r["restart"] == 0]
        again = [r["epoch"] for r in rows[rank] if r["restart"] == 1]
        assert first == [0], first  # killed during epoch 2 (0-based 1): only epoch 1 had finished
        assert again == [1, 2, 3], again  # the restarted group redoes the epoch in flight, then goes on
    restarted = [[r for r in rows[rank] if r["restart"] == 1] for rank in (0, 1)]
    for a, b in zip(*restarted):
        assert (a["model"], a["ema"]) == (b["model"], b["ema"]), f"ranks diverged after epoch {a['epoch'] + 1}"
