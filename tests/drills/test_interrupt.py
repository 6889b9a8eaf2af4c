"""Drill: Ctrl-C (SIGINT) during training leaves a usable last.pt and says how to resume; a restart starts clean.

* SIGINT to a real ``yolocustom train`` once epoch 1's checkpoint exists: exit 130, the message
  ``Interrupted. Resume with: yolocustom train --resume <path>``, and resuming from exactly that path finishes the
  run with every epoch once.
* SIGINT before any checkpoint: exit 130 and the message says there is nothing to resume.
* A fresh run into an existing folder (``exist_ok``), such as a restart after a kill before the first checkpoint, does
  not inherit the earlier run's per-class F1 rows.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ALL_FEATURES, CliProcess, read_csv, run_cli, run_cli_in_process, write_drill_recipe

_HINT = re.compile(r"Interrupted\. Resume with: yolocustom train --resume (\S+)")


def _wait_for(proc: CliProcess, ready: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.running(), f"the run ended early:\n{proc.output_so_far()[-3000:]}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.drill
def test_ctrl_c_leaves_a_resumable_last_pt(tmp_path: Path, drill_shapes: Path, drill_record: Any) -> None:
    from yolocustom.training import checkpoint_is_complete

    recipe = write_drill_recipe(tmp_path, drill_shapes, ALL_FEATURES, epochs=5)
    run_dir = tmp_path / "runs" / "run"
    last = run_dir / "weights" / "last.pt"
    proc = CliProcess(["train", str(recipe)], tmp_path / "logs")
    _wait_for(proc, lambda: last.exists() and checkpoint_is_complete(last))
    sent = time.monotonic()
    proc.signal(signal.SIGINT)
    stopped = proc.wait(timeout=120)
    stop_s = time.monotonic() - sent
    assert stopped.returncode == 130, stopped.output[-3000:]
    assert "Traceback" not in stopped.output
    match = _HINT.search(stopped.stderr)
    assert match, f"no resume hint on stderr:\n{stopped.stderr[-2000:]}"
    hinted = Path(match[1])
    assert hinted == last and checkpoint_is_complete(hinted)
    rows_before = len(read_csv(run_dir / "results.csv"))

    resumed = run_cli(["train", "--resume", str(hinted)], tmp_path / "logs")
    assert resumed.returncode == 0, resumed.output[-3000:]
    assert [int(r["epoch"]) for r in read_csv(run_dir / "results.csv")] == [1, 2, 3, 4, 5]
    assert [int(r["epoch"]) for r in read_csv(run_dir / "f1_per_class.csv")] == [1, 2, 3, 4, 5]
    drill_record(sigint_to_exit_s=round(stop_s, 2), epochs_done_at_sigint=rows_before, resumed_from=hinted.name)


def test_ctrl_c_before_the_first_checkpoint_says_there_is_nothing_to_resume(tmp_path: Path, drill_shapes: Path) -> None:
    recipe = write_drill_recipe(tmp_path, drill_shapes, {"f1_logging": {}}, epochs=2)
    proc = CliProcess(["train", str(recipe)], tmp_path / "logs")
    _wait_for(proc, lambda: "Starting training for" in proc.output_so_far())
    proc.signal(signal.SIGINT)
    stopped = proc.wait(timeout=120)
    assert stopped.returncode == 130, stopped.output[-3000:]
    assert "Traceback" not in stopped.output
    assert "Interrupted. No checkpoint had been written yet, so there is no last.pt to resume from." in stopped.stderr
    assert not (tmp_path / "runs" / "run" / "weights" / "last.pt").exists()


def test_fresh_run_into_existing_folder_starts_clean_logs(tmp_path: Path, drill_shapes: Path) -> None:
    recipe = write_drill_recipe(tmp_path, drill_shapes, {"f1_logging": {"per_class": True}}, epochs=1, imgsz=32)
    run_dir = tmp_path / "runs" / "run"
    run_dir.mkdir(parents=True)
    stale = "epoch,scratch,dent,stain,crack\n1,0.1,0.1,0.1,0.1\n2,0.2,0.2,0.2,0.2\n"
    (run_dir / "f1_per_class.csv").write_text(stale)  # left by an earlier run killed before its first checkpoint
    (run_dir / "results.csv").write_text("epoch,time\n1,1.0\n")
    run = run_cli_in_process(["train", str(recipe)])  # the files are the point: no interpreter start needed
    assert run.returncode == 0, run.output[-3000:]
    assert [int(r["epoch"]) for r in read_csv(run_dir / "f1_per_class.csv")] == [1]
    assert [int(r["epoch"]) for r in read_csv(run_dir / "results.csv")] == [1]
