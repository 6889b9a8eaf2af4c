"""Freeze, then unfreeze (in one stage or several) through Ultralytics' own ``freeze`` mechanism, with an LR ramp."""

from __future__ import annotations

from typing import Any

from torch import nn, optim

from yolocustom.features._base import TrainerBase
from yolocustom.features.layers import in_layers, layer_prefixes, resolve_layers

ALWAYS_FROZEN = (".dfl",)  # Ultralytics keeps these frozen in every run (BaseTrainer._setup_train)


def unfreeze(model: nn.Module, prefixes: list[str]) -> list[str]:
    """Set ``requires_grad`` on every floating-point parameter under ``prefixes``, never on ``.dfl``.

    Returns:
        (list[str]): Names of the parameters that were unfrozen.
    """
    unfrozen = []
    for name, param in model.named_parameters():
        if param.requires_grad or not param.dtype.is_floating_point or any(a in name for a in ALWAYS_FROZEN):
            continue
        if in_layers(name, prefixes):
            param.requires_grad = True
            unfrozen.append(name)
    return unfrozen


def rewrap_ddp(ddp: nn.parallel.DistributedDataParallel) -> nn.parallel.DistributedDataParallel:
    """Re-wrap a DDP model so parameters unfrozen after wrapping get their gradients all-reduced.

    DDP registers its reducer hooks only for parameters that required grad when it was built; parameters unfrozen
    later would train on each rank's own gradient and drift apart silently. Collective: every rank must call it.
    """
    kwargs: dict[str, Any] = {
        "device_ids": ddp.device_ids,
        "find_unused_parameters": ddp.find_unused_parameters,
        "static_graph": ddp.static_graph,
        "process_group": ddp.process_group,
    }
    # Ultralytics turns buffer syncing off; torch >= 2.13 spells that forward_sync_buffers
    sync_key = "forward_sync_buffers" if hasattr(ddp, "forward_sync_buffers") else "broadcast_buffers"
    kwargs[sync_key] = getattr(ddp, sync_key, ddp.broadcast_buffers)
    return nn.parallel.DistributedDataParallel(ddp.module, **kwargs)


STAGE_KEY = "yc_stage"  # extra key on each param group when a ramp is set: the stage index, or -1 (no stage)


def split_by_stage(optimizer: optim.Optimizer, model: nn.Module, stages: list[list[int]]) -> None:
    """Split every group in place into one group per stage plus the rest (``STAGE_KEY`` -1), in that order.

    Every part is emitted, even empty, so the number and order of groups depend only on the model, the optimizer type
    and the recipe: resume loads the saved optimizer state group by group. Each part keeps all keys of its group.
    """
    owner: dict[int, int] = {}
    for n, layers in enumerate(stages):
        prefixes = layer_prefixes(layers)
        owner.update({id(p): n for name, p in model.named_parameters() if in_layers(name, prefixes)})
    groups = list(optimizer.param_groups)
    optimizer.param_groups.clear()
    for group in groups:
        options = {k: v for k, v in group.items() if k != "params"}
        parts: dict[int, list[Any]] = {n: [] for n in [*range(len(stages)), -1]}
        for p in group["params"]:
            parts[owner.get(id(p), -1)].append(p)
        for n, params in parts.items():
            optimizer.add_param_group({**options, "params": params, STAGE_KEY: n})


def ramp_factor(progress: float, epochs: float, start: float) -> float:
    """LR multiplier ``progress`` epochs after a stage unfroze: ``start`` rising linearly to 1 over ``epochs``."""
    if progress < 0:
        return 1.0  # not unfrozen yet: its parameters have no gradient, the LR does not matter
    return start + (1.0 - start) * min(1.0, progress / epochs)


class FreezeMixin(TrainerBase):
    """Freeze layers, then unfreeze them: one stage (``layers`` + ``epochs``) or a ``schedule`` of stages.

    Hooks:
        ``set_model_attributes``: runs in ``_setup_train`` after the model is built and just before Ultralytics applies
            ``args.freeze``; resolves each stage's layers (``backbone`` from the model YAML), rejects a layer in two
            stages, and sets ``args.freeze`` to all of them. Ultralytics' ``build_optimizer`` puts every parameter in
            a group, frozen or not, so unfrozen layers train.
        ``_model_train``: runs at the start of every epoch. Unfreezes each stage whose epoch has come (``>=``, not
            ``==``: a run resumed after that epoch must come back unfrozen), idempotently; restores BatchNorm training
            by removing the layers from ``freeze_layer_names``; keeps ``.dfl`` frozen; re-wraps DDP so the new
            parameters sync. Also resets the batch counter the ramp reads.
        ``preprocess_batch``: counts the epoch's batches (the ramp's per-iteration progress); the batch is untouched.
        ``build_optimizer`` (ramp only): splits Ultralytics' groups by stage (stable count and order, for resume);
            ``layer_lr`` then splits each part into backbone/head, so the ramp multiplies the layer-LR value.
        ``optimizer_step`` (ramp only): before each step, a stage's groups get the LR Ultralytics set (warmup and
            schedule) times ``ramp_factor`` of the progress since the stage unfroze, ``(epoch - E) + i / nb``. The
            ramped LR stays in the group (so it is what results.csv and callbacks see); Ultralytics' next write of the
            group's LR is recognised as a new base. Progress depends only on epoch and batch index, so a resumed run
            continues the ramp where it was.
    """

    yc_unfrozen = False
    model: Any
    freeze_layer_names: list[str]
    yc_stages: list[tuple[int, list[int]]]
    yc_batch = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.yc_unfrozen_stages: set[int] = set()

    def preprocess_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        self.yc_batch += 1  # Ultralytics calls this once per training iteration, and nowhere else
        return super().preprocess_batch(batch)

    def set_model_attributes(self) -> None:
        super().set_model_attributes()
        from yolocustom.errors import UserError

        feature = self.yc_recipe.features.freeze
        stages: list[tuple[int, list[int]]] = []
        owner: dict[int, int] = {}
        for n, (epoch, spec) in enumerate(feature.stages()):
            field = "features.freeze.layers" if feature.schedule is None else f"features.freeze.schedule.{n}.layers"
            layers = resolve_layers(spec, self.model, field)
            for i in layers:
                if i in owner:
                    raise UserError(
                        f"{field}: expected each layer in one stage only, found layer {i} in stages {owner[i]} and {n}"
                    )
                owner[i] = n
            stages.append((epoch, layers))
        self.yc_stages = stages
        self.yc_freeze_layers = sorted(owner)
        self.args.freeze = list(self.yc_freeze_layers)

    def build_optimizer(self, model: nn.Module, *args: Any, **kwargs: Any) -> optim.Optimizer:
        optimizer = super().build_optimizer(model, *args, **kwargs)
        if self.yc_recipe.features.freeze.ramp is not None:
            from ultralytics.utils.torch_utils import unwrap_model

            split_by_stage(optimizer, unwrap_model(model), [layers for _, layers in self.yc_stages])
        return optimizer

    def _model_train(self) -> None:
        epoch = getattr(self, "epoch", 0)
        due = [n for n, (e, _) in enumerate(self.yc_stages) if epoch >= e and n not in self.yc_unfrozen_stages]
        if due:
            self.yc_unfreeze(due)
        self.yc_batch = 0
        super()._model_train()

    def yc_unfreeze(self, stages: list[int] | None = None) -> None:
        """Unfreeze the given stages (all by default) now; idempotent."""
        from ultralytics.utils import LOGGER
        from ultralytics.utils.torch_utils import unwrap_model

        stages = list(range(len(self.yc_stages))) if stages is None else stages
        layers = sorted(i for n in stages for i in self.yc_stages[n][1])
        prefixes = layer_prefixes(layers)
        names = unfreeze(unwrap_model(self.model), prefixes)
        self.freeze_layer_names = [n for n in self.freeze_layer_names if n not in prefixes]
        if isinstance(self.model, nn.parallel.DistributedDataParallel):
            self.model = rewrap_ddp(self.model)
        self.yc_unfrozen_stages.update(stages)
        self.yc_unfrozen = len(self.yc_unfrozen_stages) == len(self.yc_stages)
        count = sum(p.numel() for n, p in unwrap_model(self.model).named_parameters() if n in set(names))
        LOGGER.info(
            f"freeze: unfroze layers {layers} ({len(names)} tensors, {count:,} parameters) "
            f"at the start of epoch {getattr(self, 'epoch', 0) + 1}"
        )

    def optimizer_step(self) -> None:
        ramp = self.yc_recipe.features.freeze.ramp
        if ramp is not None:
            nb = max(len(self.train_loader), 1)
            for group in self.optimizer.param_groups:
                stage = group.get(STAGE_KEY, -1)
                if stage < 0:
                    continue
                if group["lr"] != group.get("yc_ramped_lr"):  # Ultralytics wrote a new LR since the last step
                    group["yc_base_lr"] = group["lr"]
                progress = self.epoch - self.yc_stages[stage][0] + (self.yc_batch - 1) / nb
                group["lr"] = group["yc_ramped_lr"] = group["yc_base_lr"] * ramp_factor(
                    progress, ramp.epochs, ramp.start
                )
        super().optimizer_step()


def frozen_parameter_count(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad=False``."""
    return sum(p.numel() for p in model.parameters() if not p.requires_grad)
