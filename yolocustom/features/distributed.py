"""One rank of a launcher's group (torchrun, ``srun``, PyTorchJob): train in this process as that rank.

Added by the factory when the run's plan has several processes (``runplan.make_group_plan`` has already joined the
group). Ultralytics' trainer only knows DDP as the workers of its own single-node launcher: ``world_size`` is its
count of local GPUs, ``_setup_ddp`` initialises the group itself with a 3-hour timeout, and the closing validation
picks a CUDA device on every rank. The hooks below make the in-process trainer one rank of the existing group.
"""

from __future__ import annotations

from typing import Any, ClassVar

from yolocustom.features._base import TrainerBase


def ddp_wrap(model: Any, compile_mode: Any) -> Any:
    """Wrap a CPU model in DDP as Ultralytics' ``_setup_train`` wraps a GPU one (same options, no ``device_ids``)."""
    from torch import nn

    kwargs: dict[str, Any] = {"static_graph": bool(compile_mode)}
    probe = nn.parallel.DistributedDataParallel.__init__.__code__.co_varnames
    kwargs["forward_sync_buffers" if "forward_sync_buffers" in probe else "broadcast_buffers"] = False
    return nn.parallel.DistributedDataParallel(model, find_unused_parameters=not bool(compile_mode), **kwargs)


class DistributedMixin(TrainerBase):
    """Train as one rank of the launcher's group.

    Hooks:
        ``__init__``: after Ultralytics set ``world_size`` from the device string (0 for CPU, 1 for one GPU), sets the
            group's size, so batches are split (``batch // world_size`` per rank), the loss is scaled, EMA buffers and
            stop decisions are broadcast, and validation is sharded and gathered on rank 0 as in Ultralytics' DDP.
            ``ddp`` stays False: never spawn Ultralytics' own launcher from inside a rank.
        ``_setup_ddp``: the group exists already (joined in pre-flight with yolocustom's timeout); only selects this
            rank's device (``cuda:LOCAL_RANK``, or CPU for gloo).
        ``_setup_train`` / ``_build_train_pipeline`` (gloo only): Ultralytics wraps DDP with
            ``device_ids=[device.index]``, which torch refuses for a CPU model. The world size is hidden from
            ``_setup_train`` until ``_build_train_pipeline`` (the next hook after the wrap), which wraps the CPU model
            itself with Ultralytics' options, restores it and broadcasts rank 0's AMP decision as Ultralytics does.
        ``final_eval``: Ultralytics validates best.pt on every rank from the file, on a CUDA device, which fails on a
            CPU group and on nodes that do not share the run folder. Rank 0 strips the checkpoints (atomically, see
            ``RecipeRecordMixin``) and sends best.pt's
            weights to every rank; the ranks validate them sharded, as each epoch (gathered on rank 0).
    """

    yc_world: ClassVar[dict[str, Any]] = {}
    world_size: int
    model: Any
    amp: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.world_size = int(type(self).yc_world["size"])
        self.ddp = False

    @property
    def _yc_cpu_group(self) -> bool:
        return type(self).yc_world.get("backend") == "gloo"

    def _setup_ddp(self) -> None:
        import torch
        from ultralytics.utils.torch_utils import get_torch_device_backend

        if self._yc_cpu_group:
            self.device = torch.device("cpu")
            return
        self.device = torch.device("cuda", int(self.args.device))
        self.accelerator = get_torch_device_backend(self.device)
        self.accelerator.set_device(self.device.index)

    def _setup_train(self) -> None:
        if self._yc_cpu_group:
            self.world_size = 1  # no DDP wrap with device_ids=[None]; restored by _build_train_pipeline
        try:
            super()._setup_train()
        finally:
            self.world_size = int(type(self).yc_world["size"])

    def _build_train_pipeline(self) -> None:
        import torch
        from torch import nn

        if self._yc_cpu_group and self.world_size == 1:
            from yolocustom.launcher import broadcast

            self.world_size = int(type(self).yc_world["size"])
            if not isinstance(self.model, nn.parallel.DistributedDataParallel):
                self.model = ddp_wrap(self.model, self.args.compile)
                self.amp = bool(broadcast(self.amp))  # the broadcast _setup_train skipped: rank 0's AMP check decides
                self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.args.amp != "bf16")
        super()._build_train_pipeline()

    def final_eval(self) -> None:
        from ultralytics.utils import LOGGER, RANK
        from ultralytics.utils.patches import torch_load

        from yolocustom.features.recipe_record import strip_checkpoint
        from yolocustom.launcher import broadcast

        state = None
        if RANK == 0:
            ckpt = strip_checkpoint(self.last) if self.last.exists() else {}
            if self.best.exists():
                strip_checkpoint(self.best, updates={"train_results": ckpt.get("train_results")})
                best = torch_load(self.best, map_location="cpu")
                state = (best.get("ema") or best["model"]).float().state_dict()
        state = broadcast(state)
        if state is None:
            return
        self.ema.ema.load_state_dict(state)
        LOGGER.info(f"\nValidating {self.best} (sharded across the {self.world_size} ranks)...")
        self.validator.args.plots = self.args.plots
        metrics = self.validator(self)  # training-mode validation of the EMA, which now holds best.pt's weights
        if metrics is not None:
            metrics.pop("fitness", None)
            self.metrics = metrics
        self.epoch += 1  # log best metrics at step epochs+1, not overwriting the last epoch (as Ultralytics)
        self.run_callbacks("on_fit_epoch_end")
        self.epoch -= 1
