"""Freeze, then unfreeze: frozen for the first N epochs through Ultralytics' own ``freeze`` mechanism."""

from __future__ import annotations

from typing import Any

from torch import nn

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


class FreezeMixin(TrainerBase):
    """Freeze ``layers`` for ``epochs`` epochs, then unfreeze at the start of epoch ``epochs`` (0-based).

    Hooks:
        ``set_model_attributes``: runs in ``_setup_train`` after the model is built and just before Ultralytics applies
            ``args.freeze``; resolves ``backbone`` from the model YAML and sets ``args.freeze`` to explicit indices.
            Ultralytics' ``build_optimizer`` puts every parameter in a group, frozen or not, so unfrozen layers train.
        ``_model_train``: runs at the start of every epoch. Unfreezes when ``epoch >= epochs`` (not ``==``: a run
            resumed after that epoch must come back unfrozen), idempotently; restores BatchNorm training by removing
            the layers from ``freeze_layer_names``; keeps ``.dfl`` frozen; re-wraps DDP so the new parameters sync.
    """

    yc_unfrozen = False
    model: Any
    freeze_layer_names: list[str]

    def set_model_attributes(self) -> None:
        super().set_model_attributes()
        feature = self.yc_recipe.features.freeze
        self.yc_freeze_layers = resolve_layers(feature.layers, self.model, "features.freeze.layers")
        self.args.freeze = list(self.yc_freeze_layers)

    def _model_train(self) -> None:
        epoch = getattr(self, "epoch", 0)
        if not self.yc_unfrozen and epoch >= self.yc_recipe.features.freeze.epochs:
            self.yc_unfreeze()
        super()._model_train()

    def yc_unfreeze(self) -> None:
        """Unfreeze the recipe's layers now (idempotent)."""
        from ultralytics.utils import LOGGER
        from ultralytics.utils.torch_utils import unwrap_model

        prefixes = layer_prefixes(self.yc_freeze_layers)
        names = unfreeze(unwrap_model(self.model), prefixes)
        self.freeze_layer_names = [n for n in self.freeze_layer_names if n not in prefixes]
        if isinstance(self.model, nn.parallel.DistributedDataParallel):
            self.model = rewrap_ddp(self.model)
        self.yc_unfrozen = True
        count = sum(p.numel() for n, p in unwrap_model(self.model).named_parameters() if n in set(names))
        LOGGER.info(
            f"freeze: unfroze layers {self.yc_freeze_layers} ({len(names)} tensors, {count:,} parameters) "
            f"at the start of epoch {getattr(self, 'epoch', 0) + 1}"
        )


def frozen_parameter_count(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad=False``."""
    return sum(p.numel() for p in model.parameters() if not p.requires_grad)
