"""One rank of the DDP repeat-factor check; launched by tests/test_train_repeat_factor.py via ``torch.distributed.run``.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_sampler_worker.py RECIPE``.
Each rank builds the recipe's real trainer and its train loader through ``get_dataloader`` (Ultralytics' dataset,
label cache and augmentation, under a real gloo process group), then iterates two epochs the way Ultralytics' DDP
loop does (``sampler.set_epoch`` before each). Rank 0 prints one JSON line with every rank's factors and image files.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch.distributed as dist


def main(recipe_path: str) -> None:
    dist.init_process_group("gloo")
    from ultralytics.utils import RANK

    from yolocustom.factory import build_trainer, train_overrides
    from yolocustom.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    trainer = build_trainer(recipe)(overrides={**train_overrides(recipe), "model": recipe.model})
    trainer.setup_model()
    trainer.set_model_attributes()
    trainer.world_size = dist.get_world_size()  # device "cpu" makes Ultralytics count one; the group has two
    loader = trainer.get_dataloader(trainer.data["train"], batch_size=4, rank=RANK, mode="train")
    epochs = {}
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        epochs[epoch] = [Path(f).name for batch in loader for f in batch["im_file"]]
    mine = {
        "rank": RANK,
        "sampler": type(loader.sampler).__name__,
        "factors": trainer.yc_repeat_factors.image,
        "files": [Path(f).name for f in loader.dataset.im_files],
        "epochs": epochs,
    }
    gathered: list[dict | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    if RANK == 0:
        print("RESULT " + json.dumps(gathered), flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
    sys.stdout.flush()
    os._exit(0)  # as in ddp_unfreeze_worker.py: skip gloo's teardown, which sometimes aborts at exit under load
