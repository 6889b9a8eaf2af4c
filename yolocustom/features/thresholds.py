"""Per-class confidence thresholds, chosen when training ends on best.pt's validation (``yolocustom/thresholds.py``
chooses, stores and applies them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yolocustom.features._base import TrainerBase
from yolocustom.fsutil import atomic_write_text, replace_atomically
from yolocustom.thresholds import (
    RECORD_KEY,
    THRESHOLDS_FILE,
    choose_thresholds,
    keep_stats,
    predict_like_validator,
    resolve_rules,
    threshold_family,
    to_yaml,
)


def store_in_checkpoint(path: Path, data: dict[str, Any]) -> None:
    """Add the thresholds to a checkpoint's yolocustom record (plain data: plain ``YOLO(path)`` still loads it),
    replacing the file atomically."""
    import torch
    from ultralytics.utils.patches import torch_load

    from yolocustom.features.recipe_record import CHECKPOINT_ATTR

    ckpt = torch_load(path, map_location="cpu")
    record = getattr(ckpt.get("model"), CHECKPOINT_ATTR, None)
    if not isinstance(record, dict):
        return  # not trained by yolocustom (a foreign best.pt): thresholds.yaml alone carries them
    record[RECORD_KEY] = data
    replace_atomically(path, lambda f: torch.save(ckpt, f))


class ThresholdsMixin(TrainerBase):
    """Per-class thresholds.

    Hooks:
        ``get_validator``: the validator keeps its matched stats (``thresholds.keep_stats``): the counts that make a
            ``min_recall`` exact at the threshold (the 1000-point curves interpolate between predictions, and would
            overstate the recall ``predict`` then gets).
        ``final_eval``: the one point where best.pt has just been validated (Ultralytics re-validates it after the last
            epoch, on rank 0, with the run's validator): its curves and stats are best.pt's, not the last epoch's.
            ``on_train_end`` comes later but a callback is not part of the recipe's trainer class (the DDP launcher
            rebuilds the trainer from the class alone), so the override is the reliable place. Validates best.pt once
            more, letterboxed as predict does (``rect=False``; the training validator's rect batches carry an extra
            half-stride pad that shifts the scores), chooses the thresholds on that validation's curves and stats,
            writes ``thresholds.yaml`` and stores them in best.pt's yolocustom record.
    """

    yc_thresholds: dict[str, Any] | None = None
    yc_threshold_metrics: Any = None  # the metrics of the validation the thresholds were chosen on

    def get_validator(self) -> Any:
        validator = keep_stats(super().get_validator())
        feature = self.yc_recipe.features.thresholds
        if feature is not None and feature.classes:
            from yolocustom.errors import UserError

            try:
                resolve_rules(feature.classes, self.data["names"])
            except ValueError as e:  # a typo fails before the first epoch (and in --dry-run)
                raise UserError(f"features.thresholds.classes: {e}") from None
        return validator

    def final_eval(self) -> None:
        super().final_eval()
        self.yc_choose_thresholds(self.validator)

    def yc_choose_thresholds(self, validator: Any) -> dict[str, Any] | None:
        """Choose the thresholds from ``validator``'s last validation (best.pt's), write ``thresholds.yaml`` and store
        them in best.pt; rank 0 only. Also called by ``training.final_validation`` (a resumed run whose closing
        validation was killed)."""
        from ultralytics.utils import LOGGER, RANK

        if RANK not in {-1, 0} or not Path(self.best).exists():
            return None
        from copy import copy

        # Ultralytics' training validation differs from predict: rect batches with an extra half-stride pad (other
        # scores) and multi-label NMS (more boxes per class). best.pt is validated again as predict predicts: square
        # letterbox (rect=False, what predict feeds square images and static-shape exports), one label per box
        args = copy(validator.args)
        args.rect, args.plots, args.save_json = False, False, False
        validator_cls: type = type(validator)
        same_as_predict = predict_like_validator(validator_cls)(save_dir=Path(validator.save_dir), args=args)
        from yolocustom.launcher import alone

        with alone():  # under a launcher only rank 0 gets here: it validates the whole val set by itself
            same_as_predict(model=str(self.best))
        validator = same_as_predict
        self.yc_threshold_metrics = validator.metrics
        stats = getattr(validator.metrics, "yc_stats", None)
        if stats is None:
            return None
        recipe = self.yc_recipe
        family = threshold_family(recipe)
        names: dict[int, str] = self.data["names"]
        feature = recipe.features.thresholds
        rules = resolve_rules(feature.classes if feature is not None else None, names)
        data = choose_thresholds(getattr(validator.metrics, family.attr), stats, names, family, rules)
        atomic_write_text(Path(self.save_dir) / THRESHOLDS_FILE, to_yaml(data))
        store_in_checkpoint(Path(self.best), data)
        self.yc_thresholds = data
        for name, entry in data["classes"].items():
            if entry.get("met") is False or entry["rule"] == "global":
                LOGGER.warning(f"thresholds: {name}: {entry['note']}")
        LOGGER.info(f"Per-class thresholds written to {Path(self.save_dir) / THRESHOLDS_FILE} and {self.best}")
        return data
