"""Unfreezing under DDP, with 2 real gloo processes on CPU: re-wrapping is what makes the new parameters sync.

The ranks run in fresh interpreters launched by ``torch.distributed.run``, as Ultralytics' own DDP launcher does.
"""

from __future__ import annotations

from pathlib import Path

from conftest import run_ddp

WORKER = Path(__file__).with_name("ddp_unfreeze_worker.py")


def test_unfrozen_params_are_all_reduced_only_after_rewrap() -> None:
    result = run_ddp(WORKER)
    rewrap, naive = result["rewrap"], result["naive"]
    assert rewrap["synced"], "after yc_unfreeze, both ranks must see the same (all-reduced) gradient"
    assert rewrap["names"] == [".dfl"] and rewrap["wrapper"] == "DistributedDataParallel"
    assert not naive["synced"], "without re-wrapping, DDP leaves the unfrozen layer's gradients rank-local (the trap)"
