"""F1 logging: ``metrics/F1(B)`` in every metrics dict Ultralytics produces, plus an optional per-class F1 log."""

from __future__ import annotations

import csv
import functools
from pathlib import Path
from typing import Any

from ultralytics.utils import LOGGER
from ultralytics.utils.metrics import DetMetrics

from yolocustom.features._base import TrainerBase

F1_KEY = "metrics/F1(B)"
PER_CLASS_FILE = "f1_per_class.csv"


def mean_f1(metrics: DetMetrics) -> float:
    """Mean F1 over every class present in the val set, zero-F1 classes included.

    Uses the validator's own per-class F1 (``box.f1``, at the confidence that maximises mean F1, aligned with
    ``ap_class_index``). Averaging only the non-zero F1s would hide the rare classes that never get detected.
    """
    f1 = metrics.box.f1
    return float(sum(float(x) for x in f1) / len(f1)) if len(f1) else 0.0


class F1DetMetrics(DetMetrics):
    """``DetMetrics`` whose keys, mean results and per-class results carry F1 as a fifth column.

    Extending ``keys``/``mean_results`` (rather than post-editing dicts) puts the column everywhere Ultralytics looks:
    the trainer's zero-initialised metrics (so results.csv has it from row 1, even with ``val=False``),
    ``results_dict``, results.png, the checkpoint's ``train_metrics`` and every logger integration. ``fitness`` is
    untouched: it is computed from ``box`` directly.
    """

    fresh = False  # set by process(): a validation ran since the per-class log last consumed it

    @property
    def keys(self) -> list[str]:
        return [*super().keys, F1_KEY]

    def mean_results(self) -> list[float]:
        return [*super().mean_results(), mean_f1(self)]

    def class_result(self, i: int) -> tuple[float, float, float, float]:
        return (*super().class_result(i), float(self.box.f1[i]))

    def process(self, *args: Any, **kwargs: Any) -> Any:
        stats = super().process(*args, **kwargs)
        self.fresh = True
        return stats


@functools.cache
def _with_f1_header(validator_cls: Any) -> Any:
    """Subclass a validator class so its progress header labels the extra F1 column."""

    def get_desc(self: Any) -> str:
        return validator_cls.get_desc(self) + f"{'F1':>11}"

    return type(validator_cls.__name__, (validator_cls,), {"get_desc": get_desc, "__module__": __name__})


class F1LoggingMixin(TrainerBase):
    """F1 logging.

    Hooks:
        ``get_validator``: swaps the validator's ``DetMetrics`` for ``F1DetMetrics`` before the trainer reads its keys.
        ``save_metrics``: rank 0, once per epoch, after Ultralytics wrote the results.csv row; with ``per_class`` it
            logs a per-class table and appends a row to ``f1_per_class.csv`` when a validation ran that epoch.
    """

    def get_validator(self) -> Any:
        validator = super().get_validator()
        validator.__class__ = _with_f1_header(validator.__class__)
        validator.metrics = F1DetMetrics(names=validator.metrics.names)
        return validator

    def save_metrics(self, metrics: dict[str, Any]) -> None:
        super().save_metrics(metrics)
        det = self.validator.metrics
        if not (self.yc_recipe.features.f1_logging.per_class and det.fresh):
            return
        det.fresh = False
        names: dict[int, str] = self.data["names"]
        per_class = {int(c): float(f) for c, f in zip(det.ap_class_index, det.box.f1)}
        path = Path(self.save_dir) / PER_CLASS_FILE
        new = not path.exists()
        with open(path, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["epoch", *names.values()])
            row = ["" if i not in per_class else f"{per_class[i]:.5f}" for i in names]
            writer.writerow([self.epoch + 1, *row])
        lines = [f"{'class':>20} {'instances':>10} {'P':>8} {'R':>8} {'F1':>8}"]
        for i, c in enumerate(det.ap_class_index):
            p, r = float(det.box.p[i]), float(det.box.r[i])
            lines.append(
                f"{names[int(c)]:>20} {int(det.nt_per_class[c]):>10} {p:8.3f} {r:8.3f} {per_class[int(c)]:8.3f}"
            )
        LOGGER.info(f"Per-class F1 (epoch {self.epoch + 1}, mean {mean_f1(det):.3f}):\n" + "\n".join(lines))
