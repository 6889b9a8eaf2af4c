"""Fitness: best.pt, EarlyStopping and ``best_fitness`` all follow the recipe's metric, consistently."""

from __future__ import annotations

from typing import Any

from yolocustom.features._base import TrainerBase
from yolocustom.features.f1_logging import mean_f1
from yolocustom.recipe import FitnessFeature
from yolocustom.tasks import metric_key, parse_metric

DEFAULT_FITNESS = "default (Ultralytics 8.4: mAP50-95, summed over the task's families)"


def fitness_weights(feature: FitnessFeature) -> dict[str, float]:
    """The blend as metric -> weight, normalised to sum to 1 (a single ``metric`` is weight 1)."""
    if feature.metric is not None:
        return {feature.metric: 1.0}
    assert feature.weights is not None
    total = sum(feature.weights.values())
    return {k: v / total for k, v in feature.weights.items() if v > 0}


def fitness_formula(feature: FitnessFeature) -> str:
    """Human-readable formula, for ``--dry-run``."""
    terms = [f"{w:g} x {m}" if w != 1 else m for m, w in fitness_weights(feature).items()]
    text = " + ".join(terms)
    return text.replace("default", DEFAULT_FITNESS)


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

    Hook: ``validate``. The usual override (call ``super().validate()`` then swap the fitness) is wrong: the base has
    already compared the *default* fitness with ``best_fitness`` and stored it, so the two scales mix and best.pt,
    EarlyStopping and resume disagree. Here the base's update is undone, the recipe's fitness is computed from the same
    validation, and ``best_fitness`` is updated exactly once, on one scale. EarlyStopping and ``save_model`` read the
    returned fitness; the checkpoint stores this ``best_fitness``, so a resumed run continues on the same scale.
    """

    best_fitness: float | None

    def validate(self) -> tuple[dict[str, Any] | None, float | None]:
        best_before = self.best_fitness
        metrics, default = super().validate()
        self.best_fitness = best_before
        if metrics is None:
            return metrics, default
        feature = self.yc_recipe.features.fitness
        fitness = compute_fitness(feature, metrics, default, self.validator.metrics)
        if self.best_fitness is None or self.best_fitness < fitness:
            self.best_fitness = fitness
        return metrics, fitness
