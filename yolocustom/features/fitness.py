"""Fitness: best.pt, EarlyStopping and ``best_fitness`` all follow the recipe's metric, consistently.

Global metrics come from the validator's dict; per-class ones (``classes``) from its per-class arrays, which are also
written every epoch to ``metrics_per_class.csv``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from yolocustom.features._base import TrainerBase
from yolocustom.features.f1_logging import F1_KEY, mean_f1
from yolocustom.features.recipe_record import RecipeRecordMixin
from yolocustom.recipe import FitnessFeature

PER_CLASS_METRICS_FILE = "metrics_per_class.csv"
TIE_BREAK = 1e-6  # weight of Ultralytics' default fitness added to a per-class fitness, to break its frequent ties
PER_CLASS_COLUMNS = ("epoch", "class_id", "class_name", "instances", "P", "R", "F1", "AP50", "AP50-95")
# recipe metric -> per-class column (the validator's Metric attribute in PER_CLASS_ATTRS)
PER_CLASS_KEYS = {"precision": "P", "recall": "R", "f1": "F1", "mAP50": "AP50", "mAP50-95": "AP50-95"}
PER_CLASS_ATTRS = {"P": "p", "R": "r", "F1": "f1", "AP50": "ap50", "AP50-95": "ap"}

DEFAULT_FITNESS = "default (Ultralytics 8.4: mAP50-95)"
METRIC_KEYS = {
    "precision": "metrics/precision(B)",
    "recall": "metrics/recall(B)",
    "mAP50": "metrics/mAP50(B)",
    "mAP50-95": "metrics/mAP50-95(B)",
    "f1": F1_KEY,
}


def fitness_weights(feature: FitnessFeature) -> dict[str, float]:
    """The blend as metric -> weight, normalised to sum to 1 (a single ``metric`` is weight 1)."""
    if feature.metric is not None:
        return {feature.metric: 1.0}
    assert feature.weights is not None
    total = sum(feature.weights.values())
    return {k: v / total for k, v in feature.weights.items() if v > 0}


def fitness_formula(feature: FitnessFeature, names: Mapping[int, str] | None = None) -> str:
    """Human-readable formula, for ``--dry-run``."""
    terms = [f"{w:g} x {m}" if w != 1 else m for m, w in fitness_weights(feature).items()]
    text = " + ".join(terms)
    if feature.classes is not None:
        shown = [f"{names[i]} ({i})" if names else str(i) for i in resolve_classes(feature, names or {})]
        text = f"per class, mean over [{', '.join(shown)}] of: {text}"
    return text.replace("default", DEFAULT_FITNESS)


def resolve_classes(feature: FitnessFeature, names: Mapping[int, str]) -> list[int]:
    """The fitness classes as dataset ids (names looked up; with no names, the ids as given).

    Raises:
        ValueError: For a name not in the dataset (with a suggestion) or an id out of range.
    """
    from yolocustom.features.class_weights import class_id

    if not names:
        return [c for c in feature.classes or [] if isinstance(c, int)]
    return [class_id(c, names) for c in feature.classes or []]


def per_class_table(metrics: Any, family: str = "box") -> dict[int, dict[str, float]]:
    """``{class id: {P, R, F1, AP50, AP50-95, instances}}`` for every class with val instances.

    Args:
        metrics: The validator's metrics object (``DetMetrics`` or a task subclass).
        family (str): Which of its ``Metric`` members to read: ``box`` (detect, OBB), ``seg`` or ``pose``.
    """
    member = getattr(metrics, family)
    counts = getattr(metrics, "nt_per_class", None)
    table = {}
    for i, c in enumerate(member.ap_class_index):
        row = {col: float(getattr(member, attr)[i]) for col, attr in PER_CLASS_ATTRS.items()}
        row["instances"] = float(counts[c]) if counts is not None else float("nan")
        table[int(c)] = row
    return table


def per_class_fitness(feature: FitnessFeature, class_ids: Sequence[int], table: Mapping[int, Any]) -> float:
    """The recipe's fitness with every metric taken as its mean over ``class_ids`` (a class absent from val: 0)."""
    total = 0.0
    for name, weight in fitness_weights(feature).items():
        col = PER_CLASS_KEYS[name]
        total += weight * sum(table[c][col] if c in table else 0.0 for c in class_ids) / len(class_ids)
    return total


def compute_fitness(feature: FitnessFeature, metrics: dict[str, Any], default: float, det_metrics: Any) -> float:
    """Evaluate the recipe's fitness from one validation's metrics.

    Args:
        feature: The recipe's fitness block.
        metrics: The validator's metrics dict (``fitness`` already popped).
        default: Ultralytics' own fitness for this validation.
        det_metrics: The validator's ``DetMetrics``, for F1 when F1 logging is off.
    """
    total = 0.0
    for name, weight in fitness_weights(feature).items():
        if name == "default":
            value = float(default)
        elif name == "f1":
            value = float(metrics[F1_KEY]) if F1_KEY in metrics else mean_f1(det_metrics)
        else:
            value = float(metrics[METRIC_KEYS[name]])
        total += weight * value
    return total


class FitnessMixin(TrainerBase):
    """Recipe fitness.

    Hooks:
        ``validate``: the usual override (call ``super().validate()`` then swap the fitness) is wrong: the base has
            already compared the *default* fitness with ``best_fitness`` and stored it, so the two scales mix and
            best.pt, EarlyStopping and resume disagree. Here the base's update is undone, the recipe's fitness is
            computed from the same validation, and ``best_fitness`` is updated exactly once, on one scale.
            EarlyStopping and ``save_model`` read the returned fitness; the checkpoint stores this ``best_fitness``,
            so a resumed run continues on the same scale.
        ``get_validator``: once the loaders exist, resolves ``classes`` against the dataset's names and checks each
            has val instances, so a typo fails before the first epoch (and in ``--dry-run``).
        ``save_metrics``: rank 0, after NaN recovery (so a redone epoch writes once), appends the epoch's per-class
            rows to ``metrics_per_class.csv``; ``CSV_FILES`` makes ``RecipeRecordMixin`` trim it on resume.
    """

    CSV_FILES: ClassVar[tuple[str, ...]] = (*RecipeRecordMixin.CSV_FILES, PER_CLASS_METRICS_FILE)
    PER_CLASS_FAMILY: ClassVar[str] = "box"  # Metric member read per class; a segment/pose trainer may use seg/pose
    best_fitness: float | None
    yc_fitness_classes: list[int] | None = None
    _yc_per_class: dict[int, dict[str, float]] | None = None

    def get_validator(self) -> Any:
        validator = super().get_validator()
        feature = self.yc_recipe.features.fitness
        if feature.classes is not None:
            from yolocustom.errors import UserError

            names: dict[int, str] = self.data["names"]
            try:
                ids = resolve_classes(feature, names)
            except ValueError as e:
                raise UserError(f"features.fitness.classes: {e}") from None
            labels = getattr(getattr(self.test_loader, "dataset", None), "labels", None)
            if labels is not None:
                present = {int(c) for lb in labels for c in lb["cls"].flatten()}
                missing = [f"'{names[i]}' ({i})" for i in ids if i not in present]
                if missing:
                    raise UserError(
                        f"features.fitness.classes: {', '.join(missing)} has no instances in the val split, so its "
                        "per-class metrics are undefined and best.pt could never move; pick classes present in val"
                    )
            self.yc_fitness_classes = ids
        return validator

    def validate(self) -> tuple[dict[str, Any] | None, float | None]:
        best_before = self.best_fitness
        metrics, default = super().validate()
        self.best_fitness = best_before
        if metrics is None:
            return metrics, default
        feature = self.yc_recipe.features.fitness
        self._yc_per_class = per_class_table(self.validator.metrics, self.PER_CLASS_FAMILY)
        if self.yc_fitness_classes is not None:
            # Per-class metrics tie often (recall of 9 instances moves in steps of 1/9). Ultralytics re-saves best.pt on
            # a tie but EarlyStopping keeps the first, so they would disagree; a 1e-6 x default-fitness tie-break
            # makes both pick the same epoch, the one with the better overall metric.
            fitness = per_class_fitness(feature, self.yc_fitness_classes, self._yc_per_class)
            fitness += TIE_BREAK * float(default)
        else:
            fitness = compute_fitness(feature, metrics, default, self.validator.metrics)
        if self.best_fitness is None or self.best_fitness < fitness:
            self.best_fitness = fitness
        return metrics, fitness

    def save_metrics(self, metrics: dict[str, Any]) -> None:
        super().save_metrics(metrics)
        table, self._yc_per_class = self._yc_per_class, None
        if table is None:
            return
        path = Path(self.save_dir) / PER_CLASS_METRICS_FILE
        new = not path.exists()
        with open(path, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(PER_CLASS_COLUMNS)
            for i, name in self.data["names"].items():
                row = table.get(i)
                values = [f"{row[k]:.8g}" for k in PER_CLASS_COLUMNS[4:]] if row else [""] * 5
                count = int(row["instances"]) if row and row["instances"] == row["instances"] else 0
                writer.writerow([self.epoch + 1, i, name, count, *values])
