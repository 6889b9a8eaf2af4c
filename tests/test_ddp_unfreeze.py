"""Unfreezing under DDP, with 2 real gloo processes on CPU: re-wrapping is what makes the new parameters sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from yolocustom.features.freeze import FreezeMixin


class Net(nn.Module):
    """Parameter names like Ultralytics' (``model.0.weight``), so the real prefixes apply."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _Trainer(FreezeMixin):
    """Just the state FreezeMixin.yc_unfreeze reads, to exercise the mixin's own code path."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.yc_freeze_layers = [0]
        self.freeze_layer_names = ["model.0.", ".dfl"]
        self.epoch = 1


def _worker(rank: int, store: str, rewrap: bool, out: Any) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    net = Net()
    for p in net.model[0].parameters():
        p.requires_grad = False  # frozen when DDP wraps the model, as in Ultralytics' _setup_train
    ddp = nn.parallel.DistributedDataParallel(net, find_unused_parameters=True)
    trainer = _Trainer(ddp)
    if rewrap:
        trainer.yc_unfreeze()
    else:  # the hand-written callback: flip requires_grad on the wrapped model, keep the old DDP
        for p in net.model[0].parameters():
            p.requires_grad = True
    x = torch.full((8, 4), float(rank + 1))  # different data per rank -> different local gradients
    trainer.model(x).pow(2).sum().backward()
    grad = net.model[0].weight.grad.clone()
    grads = [torch.zeros_like(grad) for _ in range(2)]
    dist.all_gather(grads, grad)
    if rank == 0:
        out.put((torch.equal(grads[0], grads[1]), trainer.freeze_layer_names, type(trainer.model).__name__))
    dist.destroy_process_group()


def _run(rewrap: bool, store: Path) -> tuple[bool, list[str], str]:
    queue = mp.get_context("spawn").Queue()  # file rendezvous: no TCP port to race for
    mp.start_processes(_worker, args=(str(store), rewrap, queue), nprocs=2, join=True, start_method="spawn")
    return queue.get(timeout=60)


def test_unfrozen_params_are_all_reduced_only_after_rewrap(tmp_path: Path) -> None:
    synced, names, wrapper = _run(rewrap=True, store=tmp_path / "store-rewrap")
    assert synced, "after yc_unfreeze, both ranks must see the same (all-reduced) gradient"
    assert names == [".dfl"] and wrapper == "DistributedDataParallel"
    naive_synced, _, _ = _run(rewrap=False, store=tmp_path / "store-naive")
    assert not naive_synced, "without re-wrapping, DDP leaves the unfrozen layer's gradients rank-local (the trap)"
