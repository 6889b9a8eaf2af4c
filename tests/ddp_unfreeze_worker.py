"""One rank of the DDP unfreeze check; launched by tests/test_ddp_unfreeze.py through ``torch.distributed.run``.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_unfreeze_worker.py``. Both ways of
unfreezing run in the one group (one launch: most of its cost is starting the interpreters). Rank 0 prints one JSON
line: per way, whether the unfrozen layer's gradients are identical (all-reduced) on both ranks.
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist
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
        self.yc_stages = [(1, [0])]  # one stage: layer 0, unfreezing at epoch 1
        self.yc_unfrozen_stages: set[int] = set()
        self.freeze_layer_names = ["model.0.", ".dfl"]
        self.epoch = 1


def check(mode: str) -> dict[str, object]:
    """Unfreeze layer 0 of a DDP-wrapped model ``mode``'s way, backpropagate rank-specific data, compare gradients."""
    rank = dist.get_rank()
    net = Net()
    for p in net.model[0].parameters():
        p.requires_grad = False  # frozen when DDP wraps the model, as in Ultralytics' _setup_train
    trainer = _Trainer(nn.parallel.DistributedDataParallel(net, find_unused_parameters=True))
    if mode == "rewrap":
        trainer.yc_unfreeze()
    else:  # the hand-written callback: flip requires_grad on the wrapped model, keep the old DDP
        for p in net.model[0].parameters():
            p.requires_grad = True
    x = torch.full((8, 4), float(rank + 1))  # different data per rank -> different local gradients
    trainer.model(x).pow(2).sum().backward()
    grad = net.model[0].weight.grad.clone()
    grads = [torch.zeros_like(grad) for _ in range(2)]
    dist.all_gather(grads, grad)
    return {
        "synced": torch.equal(grads[0], grads[1]),
        "names": trainer.freeze_layer_names,
        "wrapper": type(trainer.model).__name__,
    }


def main() -> None:
    dist.init_process_group("gloo")
    result = {mode: check(mode) for mode in ("rewrap", "naive")}
    if dist.get_rank() == 0:
        print("RESULT " + json.dumps(result), flush=True)
    dist.barrier()  # both ranks are done with every collective
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # Skip interpreter teardown: under load, gloo's background threads sometimes abort in C++ destructors at exit
    # ("terminate called without an active exception", about 1 run in 20 here), after the check has finished.
    os._exit(0)
