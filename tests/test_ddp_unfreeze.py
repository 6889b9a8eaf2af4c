"""Unfreezing under DDP, with 2 real gloo processes on CPU: re-wrapping is what makes the new parameters sync.

The ranks run in fresh interpreters launched by ``torch.distributed.run``, as Ultralytics' own DDP launcher does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("ddp_unfreeze_worker.py")


def _run(mode: str) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER), mode]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stdout[-1000:] + out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_unfrozen_params_are_all_reduced_only_after_rewrap() -> None:
    result = _run("rewrap")
    assert result["synced"], "after yc_unfreeze, both ranks must see the same (all-reduced) gradient"
    assert result["names"] == [".dfl"] and result["wrapper"] == "DistributedDataParallel"
    naive = _run("naive")
    assert not naive["synced"], "without re-wrapping, DDP leaves the unfrozen layer's gradients rank-local (the trap)"
