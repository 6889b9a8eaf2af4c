"""Class-weighting maths, shared by ``yolocustom compute-weights`` and the ``class_weights`` feature.

Keeping the formulas in one place means the CLI's table and the trainer's loss weights can never disagree.
Pure Python on purpose: importing NumPy would cost start-up time in the CLI for no gain on vectors of ``nc`` floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Scheme = Literal["inverse", "sqrt_inverse", "effective_number"]
Normalize = Literal["mean", "none"]
SCHEMES: tuple[str, ...] = ("inverse", "sqrt_inverse", "effective_number")
DEFAULT_BETA = 0.999


@dataclass(frozen=True)
class ClassWeights:
    """Result of a weighting computation.

    Attributes:
        weights (list[float]): One weight per class id, ``len == nc``.
        zero_classes (list[int]): Class ids with no training instances; they got a defined weight (see
            ``compute_class_weights``) and deserve a warning.
        capped_classes (list[int]): Class ids whose weight was clipped to ``max_weight``.
    """

    weights: list[float]
    zero_classes: list[int] = field(default_factory=list)
    capped_classes: list[int] = field(default_factory=list)


def raw_weight(count: float, max_count: float, scheme: Scheme, beta: float = DEFAULT_BETA) -> float:
    """Return the un-normalised weight of one class with ``count > 0`` instances.

    Args:
        count (float): Instances of this class (must be > 0).
        max_count (float): Instances of the most frequent class.
        scheme (str): ``inverse`` (max/count), ``sqrt_inverse`` (sqrt(max/count)) or ``effective_number``
            ((1-beta)/(1-beta**count), Cui et al., CVPR 2019).
        beta (float): Only for ``effective_number``, in (0, 1).

    Returns:
        (float): The weight before normalisation and capping.
    """
    if scheme == "inverse":
        return max_count / count
    if scheme == "sqrt_inverse":
        return math.sqrt(max_count / count)
    if scheme == "effective_number":
        return (1.0 - beta) / (1.0 - beta**count)
    raise ValueError(f"unknown weighting scheme {scheme!r}, expected one of {', '.join(SCHEMES)}")


def compute_class_weights(
    counts: Sequence[float],
    scheme: Scheme = "inverse",
    beta: float = DEFAULT_BETA,
    normalize: Normalize = "mean",
    max_weight: float | None = None,
) -> ClassWeights:
    """Turn per-class instance counts into loss weights.

    Steps, in this order: raw weight per present class; classes with zero instances get the smallest raw weight of
    the present classes (they are treated like the most frequent class: with no positives to learn from, up-weighting
    them would only push their scores down harder); ``normalize="mean"`` divides by the mean over all classes so the
    average weight is 1; finally ``max_weight`` clips from above.

    Args:
        counts (Sequence[float]): Instances per class id, ``len == nc``.
        scheme (str): See ``raw_weight``.
        beta (float): ``effective_number`` only.
        normalize (str): ``mean`` or ``none``.
        max_weight (float | None): Upper bound applied last.

    Returns:
        (ClassWeights): Weights plus the ids that were empty or capped.

    Raises:
        ValueError: If no class has any instance (an empty split), or a count is negative.
    """
    if any(c < 0 for c in counts):
        raise ValueError("class counts must be >= 0")
    present = [c for c in counts if c > 0]
    if not present:
        raise ValueError("no class has any instance: the split is empty, so no weights can be derived")
    max_count = max(present)
    raw = [raw_weight(c, max_count, scheme, beta) if c > 0 else None for c in counts]
    floor = min(w for w in raw if w is not None)
    zero_classes = [i for i, w in enumerate(raw) if w is None]
    weights, capped = normalize_and_cap([floor if w is None else w for w in raw], normalize, max_weight)
    return ClassWeights(weights=weights, zero_classes=zero_classes, capped_classes=capped)


def normalize_and_cap(
    weights: Sequence[float], normalize: Normalize = "mean", max_weight: float | None = None
) -> tuple[list[float], list[int]]:
    """Divide by the mean (``normalize="mean"``), then clip at ``max_weight``; return weights and capped ids."""
    out = list(weights)
    if normalize == "mean":
        mean = sum(out) / len(out)
        out = [w / mean for w in out]
    capped: list[int] = []
    if max_weight is not None:
        capped = [i for i, w in enumerate(out) if w > max_weight]
        out = [min(w, max_weight) for w in out]
    return out, capped


def imbalance_ratio(counts: Sequence[float]) -> float:
    """Return max/min over the classes that have instances (1.0 when fewer than two classes are present)."""
    present = [c for c in counts if c > 0]
    return max(present) / min(present) if present else 1.0
