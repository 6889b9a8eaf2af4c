"""Backbone/head learning rates: split Ultralytics' own optimizer groups, scale the backbone half."""

from __future__ import annotations

from typing import Any

from torch import nn, optim

from yolocustom.features._base import TrainerBase
from yolocustom.features.layers import in_layers, layer_prefixes, resolve_layers

PART_KEY = "yc_part"  # extra key on each param group: "backbone" or "head"


def split_param_groups(optimizer: optim.Optimizer, model: nn.Module, backbone: list[int], ratio: float) -> None:
    """Split every group in place into (backbone, head), in that order, backbone LR x ``ratio``.

    Each half keeps every key of its group (``param_group`` tag read by Ultralytics' warmup, weight decay, betas,
    ``use_muon``...). Both halves are always emitted, even empty, so the number and order of groups depend only on the
    model and optimizer type; that is what lets resume load the saved optimizer state group by group. Frozen
    parameters are in Ultralytics' groups from the start and land in the backbone half like any other.
    """
    prefixes = layer_prefixes(backbone)
    backbone_ids = {id(p) for name, p in model.named_parameters() if in_layers(name, prefixes)}
    groups = list(optimizer.param_groups)
    optimizer.param_groups.clear()
    for group in groups:
        options = {k: v for k, v in group.items() if k != "params"}
        parts = {"backbone": [], "head": []}  # type: dict[str, list[Any]]
        for p in group["params"]:
            parts["backbone" if id(p) in backbone_ids else "head"].append(p)
        optimizer.add_param_group(
            {**options, "params": parts["backbone"], "lr": group["lr"] * ratio, PART_KEY: "backbone"}
        )
        optimizer.add_param_group({**options, "params": parts["head"], PART_KEY: "head"})


class LayerLRMixin(TrainerBase):
    """Backbone LR = head LR x ``backbone_ratio``.

    Hook: ``build_optimizer``. Wraps ``super().build_optimizer()`` so Ultralytics' choices survive (``optimizer=auto``
    picking AdamW/MuSGD and its LR, the decay/no-decay/bias split, MuSGD's boosted head groups, ``param_group`` tags),
    then splits each group. The scheduler is created afterwards, so each group's ``initial_lr`` carries the ratio and
    the LambdaLR schedule preserves it. Warmup ramps non-bias groups from 0 (ratio kept at every step) and bias groups
    from Ultralytics' absolute ``warmup_bias_lr`` (ratio reached once warmup ends); ``--dry-run`` shows both.
    """

    def build_optimizer(self, model: nn.Module, *args: Any, **kwargs: Any) -> optim.Optimizer:
        from ultralytics.utils import LOGGER
        from ultralytics.utils.torch_utils import unwrap_model

        optimizer = super().build_optimizer(model, *args, **kwargs)
        feature = self.yc_recipe.features.layer_lr
        base = unwrap_model(model)
        backbone = resolve_layers(feature.backbone_layers, base, "features.layer_lr.backbone_layers")
        split_param_groups(optimizer, base, backbone, feature.backbone_ratio)
        LOGGER.info(
            f"layer_lr: {len(optimizer.param_groups)} groups, backbone layers {backbone[0]}-{backbone[-1]} at "
            f"{feature.backbone_ratio:g} x head LR"
        )
        return optimizer
