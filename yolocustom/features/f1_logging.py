"""F1 logging: ``metrics/F1(B)`` (and ``F1(M)`` for segment, ``F1(P)`` for pose) in every metrics dict Ultralytics
produces, plus an optional per-class F1 log."""

from __future__ import annotations

import csv
import functools
from pathlib import Path
from typing import Any

from ultralytics.utils import LOGGER
from ultralytics.utils.metrics import DetMetrics

from yolocustom.features._base import TrainerBase
from yolocustom.tasks import BOX, FAMILIES, Family, f1_key

F1_KEY = f1_key(BOX)  # "metrics/F1(B)"
PER_CLASS_FILE = "f1_per_class.csv"


def mean_f1(metrics: Any, family: Family = BOX) -> float:
    """Mean F1 of one family over every class present in the val set, zero-F1 classes included.

    Uses the validator's own per-class F1 (``box.f1``, ``seg.f1``, ``pose.f1``: at the confidence that maximises mean
    F1, aligned with ``ap_class_index``). Averaging only the non-zero F1s would hide the rare classes that never get
    detected.
    """
    f1 = getattr(metrics, family.attr).f1
    return float(sum(float(x) for x in f1) / len(f1)) if len(f1) else 0.0


def metric_families(metrics: Any) -> tuple[Family, ...]:
    """The families a metrics object reports (``box`` always; ``seg`` for segment, ``pose`` for pose)."""
    return tuple(f for f in FAMILIES.values() if hasattr(metrics, f.attr))


class _F1Columns:
    """Mixed in before a validator's metrics class (``DetMetrics``, ``SegmentMetrics``, ``PoseMetrics``,
    ``OBBMetrics``): its keys, mean results and per-class results gain one F1 column per family it reports.

    Extending ``keys``/``mean_results`` (rather than post-editing dicts) puts the columns everywhere Ultralytics looks:
    the trainer's zero-initialised metrics (so results.csv has them from row 1, even with ``val=False``),
    ``results_dict``, results.png, the checkpoint's ``train_metrics`` and every logger integration. ``fitness`` is
    untouched: it is computed from the families' ``Metric`` objects directly.
    """

    fresh = False  # set by process(): a validation ran since the per-class log last consumed it

    @property
    def families(self) -> tuple[Family, ...]:
        return metric_families(self)

    @property
    def keys(self) -> list[str]:
        return [*super().keys, *(f1_key(f) for f in self.families)]  # type: ignore[misc]

    def mean_results(self) -> list[float]:
        return [*super().mean_results(), *(mean_f1(self, f) for f in self.families)]  # type: ignore[misc]

    def class_result(self, i: int) -> tuple[float, ...]:
        base = tuple(super().class_result(i))  # type: ignore[misc]
        return (*base, *(float(getattr(self, f.attr).f1[i]) for f in self.families))

    def process(self, *args: Any, **kwargs: Any) -> Any:
        stats = super().process(*args, **kwargs)  # type: ignore[misc]
        self.fresh = True
        return stats


@functools.cache
def f1_metrics_class(metrics_cls: type) -> type:
    """The subclass of a validator's metrics class with F1 columns (cached: one class per metrics class)."""
    return type(f"F1{metrics_cls.__name__}", (_F1Columns, metrics_cls), {"__module__": __name__})


F1DetMetrics = f1_metrics_class(DetMetrics)


@functools.cache
def _with_f1_header(validator_cls: Any, suffixes: tuple[str, ...]) -> Any:
    """Subclass a validator class so its progress header labels the extra F1 columns."""
    labels = ["F1"] if len(suffixes) == 1 else [f"F1({s})" for s in suffixes]

    def get_desc(self: Any) -> str:
        return validator_cls.get_desc(self) + "".join(f"{label:>11}" for label in labels)

    return type(validator_cls.__name__, (validator_cls,), {"get_desc": get_desc, "__module__": __name__})


class F1LoggingMixin(TrainerBase):
    """F1 logging.

    Hooks:
        ``get_validator``: swaps the task validator's metrics object (``DetMetrics``, ``SegmentMetrics``,
            ``PoseMetrics``, ``OBBMetrics``) for its F1 subclass before the trainer reads its keys.
        ``save_metrics``: rank 0, once per epoch, after Ultralytics wrote the results.csv row; with ``per_class`` it
            logs a per-class table and appends a row to ``f1_per_class.csv`` when a validation ran that epoch (one
            column per class, or per class and family, ``name(B)``/``name(M)``, when the task reports several).
    """

    def get_validator(self) -> Any:
        validator = super().get_validator()
        metrics_cls: Any = type(validator.metrics)
        metrics = f1_metrics_class(metrics_cls)(names=validator.metrics.names)
        suffixes = tuple(f.suffix for f in metric_families(metrics))
        validator.__class__ = _with_f1_header(validator.__class__, suffixes)
        validator.metrics = metrics
        return validator

    def save_metrics(self, metrics: dict[str, Any]) -> None:
        super().save_metrics(metrics)
        det = self.validator.metrics
        if not (self.yc_recipe.features.f1_logging.per_class and det.fresh):
            return
        det.fresh = False
        names: dict[int, str] = self.data["names"]
        families = metric_families(det)
        per_class = {
            f: {int(c): float(v) for c, v in zip(det.ap_class_index, getattr(det, f.attr).f1)} for f in families
        }
        path = Path(self.save_dir) / PER_CLASS_FILE
        new = not path.exists()
        with open(path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            multi = len(families) > 1
            if new:
                writer.writerow(
                    ["epoch", *(f"{n}({f.suffix})" if multi else n for n in names.values() for f in families)]
                )
            row = ["" if i not in per_class[f] else f"{per_class[f][i]:.5f}" for i in names for f in families]
            writer.writerow([self.epoch + 1, *row])
        header = f"{'class':>20} {'instances':>10}" + "".join(
            f" {'P' + s:>8} {'R' + s:>8} {'F1' + s:>8}" for s in (f"({f.suffix})" if multi else "" for f in families)
        )
        lines = [header]
        for i, c in enumerate(det.ap_class_index):
            cells = "".join(
                f" {float(getattr(det, f.attr).p[i]):8.3f} {float(getattr(det, f.attr).r[i]):8.3f} "
                f"{per_class[f][int(c)]:8.3f}"
                for f in families
            )
            lines.append(f"{names[int(c)]:>20} {int(det.nt_per_class[c]):>10}{cells}")
        means = ", ".join(f"F1({f.suffix}) {mean_f1(det, f):.3f}" for f in families)
        LOGGER.info(f"Per-class F1 (epoch {self.epoch + 1}, mean {means}):\n" + "\n".join(lines))
