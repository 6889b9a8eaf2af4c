"""Class weights on the classification BCE: ``pos_weight`` on the positive terms, or the whole term per class.

``apply_to: all`` uses Ultralytics' own ``model.class_weights`` hook (read by ``v8DetectionLoss``, both E2E heads).
``apply_to: positives`` gives every ``v8DetectionLoss`` in the model's criterion (the task losses for segment, pose and
OBB subclass it; the E2E losses hold two) a ``BCEWithLogitsLoss(pos_weight=w)`` in place of its plain one.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from yolocustom.features._base import TrainerBase
from yolocustom.recipe import ClassWeightsFeature
from yolocustom.weighting import DEFAULT_BETA, compute_class_weights, normalize_and_cap

WEIGHTS_FILE = "class_weights.json"


def class_id(key: int | str, names: Mapping[int, str]) -> int:
    """The dataset's id for a class given by id or name.

    Raises:
        ValueError: For an unknown name (with a suggestion) or an id outside ``0..nc-1``.
    """
    if isinstance(key, int):
        if key not in names:
            raise ValueError(f"class id {key} is not in the dataset (expected 0..{len(names) - 1})")
        return key
    by_name = {name: i for i, name in names.items()}
    if key in by_name:
        return by_name[key]
    hint = difflib.get_close_matches(key, list(by_name), n=1)
    raise ValueError(
        f"class '{key}' is not in the dataset's names"
        + (f"; did you mean '{hint[0]}'?" if hint else f" (known: {', '.join(list(by_name)[:12])})")
    )


def map_explicit_weights(weights: Mapping[int | str, float], names: Mapping[int, str]) -> list[float]:
    """Map ``{class id or name: weight}`` onto the dataset's ids; unlisted classes get 1.0.

    Raises:
        ValueError: For an unknown name (with a suggestion), an id outside ``0..nc-1``, or a class given twice.
    """
    out = [1.0] * len(names)
    seen: dict[int, int | str] = {}
    for key, weight in weights.items():
        idx = class_id(key, names)
        if idx in seen:
            raise ValueError(f"class {idx} ('{names[idx]}') is given twice, as {seen[idx]!r} and {key!r}")
        seen[idx] = key
        out[idx] = float(weight)
    return out


def resolve_weights(
    feature: ClassWeightsFeature, counts: list[float], names: Mapping[int, str]
) -> tuple[list[float], list[int]]:
    """Return ``(weights, zero_instance_class_ids)`` for the feature on a dataset with these counts."""
    if feature.auto is not None:
        result = compute_class_weights(
            counts,
            scheme=feature.auto,
            beta=feature.beta if feature.beta is not None else DEFAULT_BETA,
            normalize=feature.normalize or "mean",
            max_weight=feature.max_weight,
        )
        return result.weights, result.zero_classes
    assert feature.weights is not None
    explicit = map_explicit_weights(feature.weights, names)
    weights, _ = normalize_and_cap(explicit, feature.normalize or "none", feature.max_weight)
    return weights, [i for i, c in enumerate(counts) if c == 0]


def weight_table(names: Mapping[int, str], counts: list[float], weights: list[float]) -> str:
    """A plain-text table of id, name, train instances and weight."""
    rows = [f"{'id':>4} {'class':<20} {'instances':>10} {'weight':>8}"]
    rows += [f"{i:>4} {names[i]:<20} {int(c):>10} {w:8.3f}" for i, c, w in zip(names, counts, weights)]
    return "\n".join(rows)


def semantics_line(apply_to: str) -> str:
    """One line, for ``--dry-run``, saying what the weights do."""
    if apply_to == "positives":
        return (
            "apply_to: positives - a weight w scales only the class's positive BCE terms (torch pos_weight): "
            "w > 1 raises its recall, its negatives keep weight 1"
        )
    return (
        "apply_to: all - a weight w scales the class's whole BCE term, negatives included (Ultralytics cls_pw "
        "semantics): mostly its background terms"
    )


def detection_losses(criterion: Any, depth: int = 0) -> Iterator[Any]:
    """Every ``v8DetectionLoss`` reachable from a criterion (itself, E2E ``one2many``/``one2one``, wrappers)."""
    from torch import Tensor, nn
    from ultralytics.utils.loss import v8DetectionLoss

    if isinstance(criterion, v8DetectionLoss):
        yield criterion
    elif depth < 3 and hasattr(criterion, "__dict__") and not isinstance(criterion, nn.Module | Tensor):
        for value in vars(criterion).values():
            yield from detection_losses(value, depth + 1)


def apply_pos_weight(criterion: Any, weights: Any) -> int:
    """Give each detection loss in ``criterion`` a ``pos_weight`` BCE and no whole-term weights; idempotent.

    Returns:
        (int): How many detection losses (heads) were set.
    """
    from torch import nn

    heads = list(detection_losses(criterion))
    for head in heads:
        head.bce = nn.BCEWithLogitsLoss(reduction="none", pos_weight=weights.to(head.device))
        head.class_weights = None
    return len(heads)


class ClassWeightsMixin(TrainerBase):
    """Class-weighted classification loss.

    Hooks:
        ``set_class_weights``: called by ``_setup_train`` once the train loader exists and before EMA is built.
            ``all``: sets ``model.class_weights`` (Ultralytics' hook), so the EMA copy and any rebuilt criterion carry
            it. ``positives``: builds the criterion now (Ultralytics would build it lazily on the first batch) and
            swaps each head's BCE for one with ``pos_weight``; the EMA deep-copies the model, criterion included, so
            validation losses use the same weights. ``model.class_weights`` stays ``None``: the two never stack. In
            a DDP group every rank takes rank 0's weights (a broadcast), so the ranks cannot weight differently.
        ``resume_training``: Ultralytics rebuilds an E2E model's criterion from ``init_criterion`` on resume (to set
            its one-to-many/one-to-one gain); the ``pos_weight`` BCE is put back on the rebuilt heads.
    Replaces Ultralytics' ``cls_pw`` weighting, which the recipe forbids alongside this feature. ``auto`` counts the
    labels the trainer actually loaded (``get_class_counts``), so corrupt files Ultralytics dropped don't count.
    Checkpoints carry no criterion (Ultralytics strips it), so nothing yolocustom-specific is pickled into them.
    """

    yc_class_weights: Any = None

    def set_class_weights(self) -> None:
        import torch
        from ultralytics.utils import LOGGER, RANK

        from yolocustom.errors import UserError

        feature: ClassWeightsFeature = self.yc_recipe.features.class_weights
        names: dict[int, str] = self.data["names"]
        counts = [float(c) for c in self.get_class_counts()]
        try:
            weights, empty = resolve_weights(feature, counts, names)
        except ValueError as e:
            raise UserError(f"features.class_weights: {e}") from None
        for i in empty:
            LOGGER.warning(f"class_weights: class {i} '{names[i]}' has no training instances; weight {weights[i]:.3f}")
        self.yc_class_weights = torch.tensor(weights, dtype=torch.float32, device=self.device)
        if self.world_size > 1:  # one rank of a group: rank 0's weights on every rank, by construction
            from yolocustom.launcher import broadcast_tensor

            broadcast_tensor(self.yc_class_weights)
            weights = self.yc_class_weights.tolist()
        model = self._yc_loss_model()
        if feature.apply_to == "all":
            model.class_weights = self.yc_class_weights
        else:
            model.class_weights = None
            self._yc_apply_pos_weight()
        source = f"auto: {feature.auto}" if feature.auto else "explicit weights"
        LOGGER.info(f"Class weights ({source}, {feature.apply_to}):\n{weight_table(names, counts, weights)}")
        if RANK in {-1, 0}:
            from yolocustom.fsutil import atomic_write_text

            record = {
                "source": source,
                "apply_to": feature.apply_to,
                "names": names,
                "counts": counts,
                "weights": weights,
            }
            atomic_write_text(Path(self.save_dir) / WEIGHTS_FILE, json.dumps(record, indent=2))

    def resume_training(self, ckpt: Any) -> None:
        super().resume_training(ckpt)
        if self.yc_recipe.features.class_weights.apply_to == "positives":
            self._yc_apply_pos_weight()

    def _yc_loss_model(self) -> Any:
        """The model whose criterion computes the training loss (the student under distillation)."""
        from ultralytics.utils.torch_utils import unwrap_model

        model = unwrap_model(self.model)
        return getattr(model, "student_model", None) or model

    def _yc_apply_pos_weight(self) -> None:
        from ultralytics.utils.torch_utils import unwrap_model

        from yolocustom.errors import UserError

        top = unwrap_model(self.model)
        for model in {id(m): m for m in (top, self._yc_loss_model())}.values():  # distillation: wrapper and student
            if getattr(model, "criterion", None) is None:
                model.criterion = model.init_criterion()
            if not apply_pos_weight(model.criterion, self.yc_class_weights):
                raise UserError(
                    f"features.class_weights: apply_to: positives needs a YOLO detection-family loss; "
                    f"{type(model.criterion).__name__} has no classification BCE to weight"
                )
