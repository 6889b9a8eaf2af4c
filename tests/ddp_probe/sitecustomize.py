"""Test-only probe for multi-process runs: with ``YC_PROBE_DIR`` set and this folder on ``PYTHONPATH``, every Python
process registers an Ultralytics default callback that records, per rank and epoch, a hash of the model's parameters,
the class weights and the train sampler's draw and shard (and each epoch's first finished batch, with the process
id), as JSON lines in ``$YC_PROBE_DIR/rank<RANK>.jsonl``.

Python imports ``sitecustomize`` at start-up, so the real ``yolocustom train`` CLI under torchrun carries the probe
without any test hook in the product code.
"""

from __future__ import annotations

import os

if os.environ.get("YC_PROBE_DIR"):
    import hashlib
    import json
    from pathlib import Path
    from typing import Any

    def _digest(module: Any) -> str:
        """Hash of the parameters (not BatchNorm's running statistics: DDP leaves those per rank, as Ultralytics)."""
        h = hashlib.sha256()
        for name, tensor in module.named_parameters():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def _record(trainer: Any) -> None:
        from ultralytics.utils.torch_utils import unwrap_model

        sampler = getattr(trainer.train_loader, "sampler", None)
        row: dict[str, Any] = {
            "event": "end",
            "rank": int(os.environ.get("RANK", "-1")),
            "pid": os.getpid(),
            "restart": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
            "epoch": int(trainer.epoch),
            "world_size": int(trainer.world_size),
            "model": _digest(unwrap_model(trainer.model)),
            "ema": _digest(trainer.ema.ema),
            "batch": int(trainer.train_loader.batch_size),
            "sampler": type(sampler).__name__,
            "save_dir": str(trainer.save_dir),
        }
        weights = getattr(trainer, "yc_class_weights", None)
        if weights is not None:
            row["class_weights"] = [round(float(w), 6) for w in weights]
        if hasattr(sampler, "shard"):
            row["draw"] = sampler.draw(trainer.epoch).tolist()
            row["shard"] = sampler.shard(trainer.epoch).tolist()
        _write(row)

    _batched: set[int] = set()

    def _first_batch(trainer: Any) -> None:
        """The epoch's first optimizer batch has ended: the worker is inside the epoch, with its rest still to run."""
        if int(trainer.epoch) not in _batched:
            _batched.add(int(trainer.epoch))
            rank = int(os.environ.get("RANK", "-1"))
            _write({"event": "batch", "rank": rank, "pid": os.getpid(), "epoch": int(trainer.epoch)})

    def _write(row: dict[str, Any]) -> None:
        out = Path(os.environ["YC_PROBE_DIR"]) / f"rank{row['rank']}.jsonl"
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    try:
        from ultralytics.utils.callbacks.base import default_callbacks

        default_callbacks["on_train_batch_end"].append(_first_batch)
        default_callbacks["on_train_epoch_end"].append(_record)
    except ImportError:  # a process without Ultralytics (never the trainer's)
        pass
