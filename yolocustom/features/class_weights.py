"""Class weights through Ultralytics' own ``model.class_weights`` hook (read by ``v8DetectionLoss``, both E2E heads)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path

from yolocustom.features._base import TrainerBase
from yolocustom.recipe import ClassWeightsFeature
from yolocustom.weighting import DEFAULT_BETA, compute_class_weights, normalize_and_cap

WEIGHTS_FILE = "class_weights.json"


def map_explicit_weights(weights: Mapping[int | str, float], names: Mapping[int, str]) -> list[float]:
    """Map ``{class id or name: weight}`` onto the dataset's ids; unlisted classes get 1.0.

    Raises:
        ValueError: For an unknown name (with a suggestion), an id outside ``0..nc-1``, or a class given twice.
    """
    by_name = {name: i for i, name in names.items()}
    out = [1.0] * len(names)
    seen: dict[int, int | str] = {}
    for key, weight in weights.items():
        if isinstance(key, int):
            if key not in names:
                raise ValueError(f"class id {key} is not in the dataset (expected 0..{len(names) - 1})")
            idx = key
        elif key in by_name:
            idx = by_name[key]
        else:
            hint = difflib.get_close_matches(key, list(by_name), n=1)
            raise ValueError(
                f"class '{key}' is not in the dataset's names"
                + (f"; did you mean '{hint[0]}'?" if hint else f" (known: {', '.join(list(by_name)[:12])})")
            )
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


class ClassWeightsMixin(TrainerBase):
    """Class-weighted classification loss.

    Hook: ``set_class_weights`` (called by ``_setup_train`` once the train loader exists and before EMA is built, so
    the EMA copy and a resumed run's rebuilt criterion carry the same weights). Replaces Ultralytics' ``cls_pw``
    weighting, which the recipe forbids alongside this feature. ``auto`` counts the labels the trainer actually loaded
    (``get_class_counts``), so corrupt files Ultralytics dropped don't count.
    """

    def set_class_weights(self) -> None:
        import torch
        from ultralytics.utils import LOGGER, RANK
        from ultralytics.utils.torch_utils import unwrap_model

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
        model = unwrap_model(self.model)
        if hasattr(model, "student_model"):
            model = model.student_model  # distillation: the student builds the loss
        model.class_weights = torch.tensor(weights, dtype=torch.float32, device=self.device)
        source = f"auto: {feature.auto}" if feature.auto else "explicit weights"
        LOGGER.info(f"Class weights ({source}):\n{weight_table(names, counts, weights)}")
        if RANK in {-1, 0}:
            from yolocustom.features.recipe_record import atomic_write_text

            record = {"source": source, "names": names, "counts": counts, "weights": weights}
            atomic_write_text(Path(self.save_dir) / WEIGHTS_FILE, json.dumps(record, indent=2))
