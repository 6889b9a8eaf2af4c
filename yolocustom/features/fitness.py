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
from yolocustom.features.f1_logging import mean_f1, metric_families
from yolocustom.features.recipe_record import RecipeRecordMixin
from yolocustom.recipe import FitnessFeature
from yolocustom.tasks import metric_key, parse_metric

PER_CLASS_METRICS_FILE = "metrics_per_class.csv"
TIE_BREAK = 1e-6  # weight of Ultralytics' default fitness added to a per-class fitness, to break its frequent ties
PER_CLASS_COLUMNS = ("epoch", "class_id", "class_name", "instances", "P", "R", "F1", "AP50", "AP50-95")
# recipe metric -> per-class column (the validator's Metric attribute in PER_CLASS_ATTRS)
PER_CLASS_KEYS = {"precision": "P", "recall": "R", "f1": "F1", "mAP50": "AP50", "mAP50-95": "AP50-95"}
PER_CLASS_ATTRS = {"P": "p", "R": "r", "F1": "f1", "AP50": "ap50", "AP50-95": "ap"}

DEFAULT_FITNESS = "default (Ultralytics 8.4: mAP50-95, summed over the task's families)"


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


def per_class_tables(metrics: Any) -> dict[str, dict[int, dict[str, float]]]:
    """Per family suffix (``B``, and ``M``/``P`` for segment/pose), ``{class id: {P, R, F1, AP50, AP50-95,
    instances}}`` for every class with val instances.

    Args:
        metrics: The validator's metrics object (``DetMetrics`` or a task subclass).
    """
    counts = getattr(metrics, "nt_per_class", None)
    tables: dict[str, dict[int, dict[str, float]]] = {}
    for family in metric_families(metrics):
        member = getattr(metrics, family.attr)
        table = tables[family.suffix] = {}
        for i, c in enumerate(member.ap_class_index):
            row = {col: float(getattr(member, attr)[i]) for col, attr in PER_CLASS_ATTRS.items()}
            row["instances"] = float(counts[c]) if counts is not None else float("nan")
            table[int(c)] = row
    return tables


def per_class_fitness(
    feature: FitnessFeature, class_ids: Sequence[int], tables: Mapping[str, Mapping[int, Any]]
) -> float:
    """The recipe's fitness with every metric taken as its mean over ``class_ids`` (a class absent from val: 0), each
    from its own family (``recall(M)`` reads the mask table)."""
    total = 0.0
    for name, weight in fitness_weights(feature).items():
        base, family = parse_metric(name)
        col, table = PER_CLASS_KEYS[base], tables[family.suffix]
        total += weight * sum(table[c][col] if c in table else 0.0 for c in class_ids) / len(class_ids)
    return total


def compute_fitness(feature: FitnessFeature, metrics: dict[str, Any], default: float, det_metrics: Any) -> float:
    """Evaluate the recipe's fitness from one validation's metrics.

    Args:
        feature: The recipe's fitness block.
        metrics: The validator's metrics dict (``fitness`` already popped).
        default: Ultralytics' own fitness for this validation.
        det_metrics: The validator's metrics object, for F1 when F1 logging is off.

    A metric name maps to the validator's key through ``tasks.metric_key`` (``mAP50-95(M)`` -> ``metrics/mAP50-95(M)``);
    the recipe was checked to name only families the task reports.
    """
    total = 0.0
    for name, weight in fitness_weights(feature).items():
        if name == "default":
            value = float(default)
        elif (key := metric_key(name)) in metrics:
            value = float(metrics[key])
        else:  # an F1 while F1 logging is off: the same mean, from the validator's per-class F1
            value = mean_f1(det_metrics, parse_metric(name)[1])
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
    best_fitness: float | None
    yc_fitness_classes: list[int] | None = None
    _yc_per_class: dict[str, dict[int, dict[str, float]]] | None = None

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
        self._yc_per_class = per_class_tables(self.validator.metrics)
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
        tables, self._yc_per_class = self._yc_per_class, None
        if tables is None:
            return
        metric_cols = PER_CLASS_COLUMNS[4:]
        # box columns as named; a segment/pose task adds its mask/keypoint family's as 'P(M)', 'AP50(P)'...
        extra = [s for s in tables if s != "B"]
        path = Path(self.save_dir) / PER_CLASS_METRICS_FILE
        new = not path.exists()
        with open(path, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow([*PER_CLASS_COLUMNS, *(f"{c}({s})" for s in extra for c in metric_cols)])
            for i, name in self.data["names"].items():
                values: list[str] = []
                for suffix in ("B", *extra):
                    row = tables[suffix].get(i)
                    values += [f"{row[k]:.8g}" for k in metric_cols] if row else [""] * len(metric_cols)
                box = tables["B"].get(i)
                count = int(box["instances"]) if box and box["instances"] == box["instances"] else 0
                writer.writerow([self.epoch + 1, i, name, count, *values])
