"""Per-class confidence thresholds for deployment: chosen from a validation, stored as plain data, shown as a table,
and applied to Ultralytics' predictor through its callbacks.

One layout everywhere (``thresholds.yaml`` in the run folder, best.pt's yolocustom record, an export's metadata)::

    family: B                 # the metric family the thresholds were chosen on (B boxes, M masks, P keypoints)
    global_conf: 0.312        # Ultralytics' global F1-optimal confidence (smoothed mean F1 curve)
    classes:
      crack: {id: 3, threshold: 0.061, precision: 0.52, recall: 0.91, f1: 0.66, rule: min_recall 0.9, met: true,
              note: '', instances: 45, false_positives: 38, misses: 4}

Counts come from the validator's matched predictions (``tp`` at IoU 0.5, ``conf``, ``pred_cls``, ``target_cls``):
a prediction is kept when ``conf >= threshold``, exactly as :func:`attach` filters at predict time. The validation runs
as predict runs (:func:`predict_like_validator`: one label per box, square letterbox), so the table's recall is the
recall ``yolocustom predict`` gets on the same (square) images. Thresholds are points of the validator's
1000-point confidence grid (``Metric.px``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolocustom.errors import UserError
from yolocustom.tasks import BOX, FAMILIES, TASKS, Family, parse_metric

if TYPE_CHECKING:
    from yolocustom.recipe import ClassThresholdRule, Recipe

THRESHOLDS_FILE = "thresholds.yaml"
RECORD_KEY = "thresholds"  # key in best.pt's yolocustom record (features/recipe_record.py)
METADATA_KEY = "yolocustom_thresholds"  # key in an exported model's metadata (JSON text)
SMOOTH = 0.1  # box-filter fraction Ultralytics smooths its F1 curve with (ap_per_class)
PREDICT_CONF = 0.25  # Ultralytics' predict default (Model.predict), for a model with no true positive on val at all


# ------------------------------------------------------------------------------------------------------------ choosing


def threshold_family(recipe: Recipe) -> Family:
    """The family thresholds are chosen on: the fitness metric's (the largest blend weight's), else boxes."""
    fitness = recipe.features.fitness
    if fitness is None or not fitness.enabled:
        return BOX
    weights = {fitness.metric: 1.0} if fitness.metric is not None else dict(fitness.weights or {})
    name = max(weights, key=lambda k: weights[k])
    return BOX if name == "default" else parse_metric(name)[1]


def resolve_rules(
    rules: Mapping[int | str, ClassThresholdRule] | None, names: Mapping[int, str]
) -> dict[int, ClassThresholdRule]:
    """The recipe's per-class rules keyed by dataset class id.

    Raises:
        ValueError: For an unknown name (with a "did you mean"), an id out of range, or a class given twice.
    """
    from yolocustom.features.class_weights import class_id

    out: dict[int, ClassThresholdRule] = {}
    for key, rule in (rules or {}).items():
        i = class_id(key, names)
        if i in out:
            raise ValueError(f"class '{names[i]}' ({i}) has two rules (by id and by name); keep one")
        out[i] = rule
    return out


def rule_text(rule: ClassThresholdRule | None) -> str:
    """``f1``, ``min_recall 0.9`` or ``min_precision 0.95``."""
    if rule is None:
        return "f1"
    return f"min_recall {rule.min_recall:g}" if rule.min_recall is not None else f"min_precision {rule.min_precision:g}"


def _grid_counts(
    stats: Mapping[str, np.ndarray], tp_key: str, cls: int, px: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """True and false positives of class ``cls`` kept at each threshold of ``px`` (``conf >= t``), and its labels."""
    mask = stats["pred_cls"] == cls
    conf = stats["conf"][mask]
    order = np.argsort(-conf, kind="stable")
    conf, hits = conf[order], stats[tp_key][mask][order, 0].astype(float)  # column 0: IoU 0.5
    kept = np.searchsorted(-conf, -px, side="right")  # predictions with conf >= t
    cum = np.concatenate(([0.0], np.cumsum(hits)))
    tp = cum[kept]
    return tp, kept - tp, float(np.sum(stats["target_cls"] == cls))


def counts_at(stats: Mapping[str, np.ndarray], tp_key: str, cls: int, threshold: float) -> dict[str, float]:
    """Precision, recall, F1, true/false positives and misses of one class at one threshold (``conf >= t``)."""
    tp, fp, n = _grid_counts(stats, tp_key, cls, np.array([threshold]))
    return _scores(float(tp[0]), float(fp[0]), n)


def _scores(tp: float, fp: float, n: float) -> dict[str, float]:
    # precision 1 where nothing is kept, as Ultralytics' precision curve (ap_per_class: interp left=1)
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / n if n else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f1, "tp": tp, "fp": fp, "instances": n}


def choose_thresholds(
    metric: Any,
    stats: Mapping[str, np.ndarray],
    names: Mapping[int, str],
    family: Family,
    rules: Mapping[int, ClassThresholdRule] | None = None,
) -> dict[str, Any]:
    """Choose one confidence threshold per class from a validation.

    Args:
        metric: The family's ``Metric`` (``metrics.box``/``seg``/``pose``) after ``process``: ``px``, ``f1_curve`` and
            ``ap_class_index`` (curve rows).
        stats: The validator's matched stats, concatenated (``conf``, ``pred_cls``, ``target_cls``, ``family.tp_key``).
        names: The dataset's class names.
        family: The family of ``metric``.
        rules: Per-class rules by class id; other classes get their F1 optimum.

    Returns:
        (dict): The plain-data layout of the module docstring.
    """
    rules = rules or {}
    px = np.asarray(metric.px)
    curves = np.asarray(metric.f1_curve)
    rows = {int(c): i for i, c in enumerate(metric.ap_class_index)}
    global_conf = float(px[_argmax(_smooth(curves.mean(0)), px)]) if len(rows) and curves.max() > 0 else PREDICT_CONF
    classes: dict[str, dict[str, Any]] = {}
    for cls, name in names.items():
        rule = rules.get(cls)
        if cls not in rows:
            note = "no instances in val: the global threshold"
            met = None
            if rule is not None:
                note, met = f"no instances in val, so {rule_text(rule)} cannot be checked: the global threshold", False
            scores = counts_at(stats, family.tp_key, cls, global_conf)  # its false positives still count
            classes[name] = _entry(cls, global_conf, scores, "global", met, note)
            continue
        threshold, note, met = float(px[_argmax(_smooth(curves[rows[cls]]), px)]), "", None
        if curves[rows[cls]].max() <= 0:
            threshold, note = global_conf, "no true positive on val: the global threshold"
        if rule is not None:
            index, reason = _apply_rule(rule, px, *_grid_counts(stats, family.tp_key, cls, px))
            met = index is not None
            if index is not None:
                threshold = float(px[index])
            else:
                note = f"{reason}: {note or 'the F1 optimum'}"
        scores = counts_at(stats, family.tp_key, cls, threshold)
        classes[name] = _entry(cls, threshold, scores, rule_text(rule), met, note)
    return {"family": family.suffix, "global_conf": global_conf, "classes": classes}


def _entry(
    cls: int, threshold: float, scores: Mapping[str, float], rule: str, met: bool | None, note: str
) -> dict[str, Any]:
    """One class of the layout (``met`` only for a min_recall/min_precision rule)."""
    entry: dict[str, Any] = {"id": int(cls), "threshold": threshold}
    entry.update({k: round(float(scores[k]), 6) for k in ("precision", "recall", "f1")})
    entry["rule"] = rule
    if met is not None:
        entry["met"] = met
    n = int(scores["instances"])
    entry.update(note=note, instances=n, false_positives=int(scores["fp"]), misses=n - int(scores["tp"]))
    return entry


def _apply_rule(
    rule: ClassThresholdRule, px: np.ndarray, tp: np.ndarray, fp: np.ndarray, n: float
) -> tuple[int | None, str]:
    """Index in ``px`` of the threshold a rule picks, or None and why no threshold meets its target."""
    usable = px > 0  # conf 0 would keep every candidate box
    recall = tp / max(n, 1.0)
    if rule.min_recall is not None:
        ok = np.flatnonzero(usable & (recall >= rule.min_recall - 1e-12))
        if len(ok):
            return int(ok[-1]), ""  # recall only falls as the threshold rises: the last one is the highest
        return None, f"recall never reaches {rule.min_recall:g} on val (at most {recall[usable].max():.3f})"
    target = float(rule.min_precision or 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
    ok = np.flatnonzero(usable & (tp > 0) & (precision >= target - 1e-12))
    if len(ok):
        most = tp[ok].max()
        return int(ok[tp[ok] == most][-1]), ""  # the most recall; of those, the highest threshold
    return None, f"precision never reaches {target:g} on val with a true positive kept"


def _argmax(y: np.ndarray, px: np.ndarray) -> int:
    """Index of the maximum of a curve over ``px``, confidence 0 excluded (it would keep every candidate box)."""
    return int(np.argmax(np.where(px > 0, y, -np.inf)))


def _smooth(y: np.ndarray) -> np.ndarray:
    from ultralytics.utils.metrics import smooth

    return smooth(y, SMOOTH)


# ----------------------------------------------------------------------------------------------------- stats capture


@functools.cache
def stats_validator(validator_cls: type) -> type:
    """Subclass a task validator so each validation keeps its matched stats, as arrays, in ``metrics.yc_stats`` (the
    metrics object is what ``YOLO.val()`` returns and the trainer's validator holds).

    Hook: ``get_stats``, the one place the gathered (DDP: merged on rank 0) stats exist: the base computes the metrics
    from them and then clears them.
    """

    def get_stats(self: Any) -> Any:
        self.metrics.yc_stats = {k: np.concatenate(v, 0) for k, v in self.metrics.stats.items() if len(v)}
        return validator_cls.get_stats(self)  # type: ignore[attr-defined]

    return type(validator_cls.__name__, (validator_cls,), {"get_stats": get_stats, "__module__": __name__})


@functools.cache
def predict_like_validator(validator_cls: type) -> type:
    """A task validator that keeps its stats and matches predictions as ``predict`` makes them: one class per box.

    Hook: ``postprocess``. Ultralytics' validators run NMS with ``multi_label=True`` (a box enters once per class
    scoring above ``conf``), its predictor with one label per box, so a box predict calls "dent" can also be a "crack"
    in validation; thresholds counted on those would promise a recall predict never delivers. The validator's own
    ``postprocess`` runs (masks, keypoints, obb handled by the task), with ``multi_label`` forced off in its NMS call.
    Use it with ``rect=False`` (square letterbox, as predict feeds square images and static-shape exports).
    """
    from ultralytics.utils import nms

    base = stats_validator(validator_cls)

    def postprocess(self: Any, preds: Any) -> Any:
        original = nms.non_max_suppression

        def single_label(*args: Any, **kwargs: Any) -> Any:
            return original(*args, **{**kwargs, "multi_label": False})

        nms.non_max_suppression = single_label  # looked up on the module at call time by every task validator
        try:
            return base.postprocess(self, preds)  # type: ignore[attr-defined]
        finally:
            nms.non_max_suppression = original

    return type(validator_cls.__name__, (base,), {"postprocess": postprocess, "__module__": __name__})


def keep_stats(validator: Any) -> Any:
    """Make an existing validator keep its stats (see :func:`stats_validator`); returns it."""
    validator.__class__ = stats_validator(validator.__class__)
    return validator


# ------------------------------------------------------------------------------------------------ reading and writing


def to_yaml(data: Mapping[str, Any]) -> str:
    """The ``thresholds.yaml`` text."""
    import yaml

    head = "# per-class confidence thresholds chosen by yolocustom on best.pt's validation (see `yolocustom predict`)\n"
    return head + yaml.safe_dump(dict(data), sort_keys=False, width=120)


def check_thresholds(data: Any, source: str) -> dict[str, Any]:
    """Check the layout of thresholds data read from ``source``.

    Raises:
        UserError: ``source: expected ..., found ...``.
    """
    if not isinstance(data, dict) or not isinstance(data.get("classes"), dict):
        found = repr(data)[:200]
        raise UserError(f"{source}: expected a thresholds mapping with 'classes' (a thresholds.yaml), found {found}")
    for name, entry in data["classes"].items():
        t = entry.get("threshold") if isinstance(entry, dict) else None
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 1:
            raise UserError(f"{source}: classes.{name}.threshold: expected a number in [0, 1], found {t!r}")
        if not isinstance(entry.get("id"), int):
            raise UserError(f"{source}: classes.{name}.id: expected a class id, found {entry.get('id')!r}")
    g = data.get("global_conf", 0.25)
    if isinstance(g, bool) or not isinstance(g, int | float) or not 0 <= g <= 1:
        raise UserError(f"{source}: global_conf: expected a number in [0, 1], found {g!r}")
    return data


def load_thresholds(path: str | Path) -> dict[str, Any]:
    """Read a ``thresholds.yaml`` (safe load).

    Raises:
        UserError: For a missing, unreadable or malformed file.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--thresholds: {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UserError(f"--thresholds: {path} cannot be read ({type(e).__name__}: {e})") from None
    return check_thresholds(data, str(path))


def model_thresholds(model: Any) -> dict[str, Any] | None:
    """The thresholds stored with a YOLO model: best.pt's yolocustom record, or an export's metadata; else None."""
    from yolocustom.features.recipe_record import CHECKPOINT_ATTR

    record = getattr(model.model, CHECKPOINT_ATTR, None) if not isinstance(model.model, str | Path) else None
    if isinstance(record, dict) and record.get(RECORD_KEY):
        return check_thresholds(record[RECORD_KEY], f"{model.ckpt_path} (yolocustom record)")
    if isinstance(model.model, str | Path):
        from ultralytics.nn.backends.base import BaseBackend

        raw = BaseBackend.read_metadata(model.model).get(METADATA_KEY)
        if raw:
            return check_thresholds(json.loads(raw) if isinstance(raw, str) else raw, f"{model.model} (metadata)")
    return None


def export_callback(data: Mapping[str, Any]) -> Any:
    """An ``on_export_start`` callback writing the thresholds into the exporter's metadata (as JSON text), which
    Ultralytics embeds in every format (ONNX ``metadata_props``, TorchScript extra files, ``metadata.yaml``...)."""
    text = json.dumps(dict(data), sort_keys=False)

    def on_export_start(exporter: Any) -> None:
        exporter.metadata[METADATA_KEY] = text

    return on_export_start


# ------------------------------------------------------------------------------------------------------------- tables


def format_table(data: Mapping[str, Any], title: str = "Per-class thresholds") -> str:
    """Plain aligned text, like the per-class F1 table: one row per class, notes after the rule."""
    family = FAMILIES.get(str(data.get("family", "B")), BOX)
    lines = [
        f"{title} ({family.what} metrics ({family.suffix}); global F1-optimal conf {float(data['global_conf']):.3f}):",
        f"{'class':>20} {'instances':>10} {'threshold':>10} {'P':>7} {'R':>7} {'F1':>7} {'FP':>6} {'misses':>7}  rule",
    ]
    for name, e in data["classes"].items():
        met = {True: " (met)", False: " (NOT met)"}.get(e.get("met"), "")
        note = f": {e['note']}" if e.get("note") else ""
        lines.append(
            f"{name:>20} {int(e.get('instances', 0)):>10} {float(e['threshold']):>10.3f} {float(e['precision']):>7.3f} "
            f"{float(e['recall']):>7.3f} {float(e['f1']):>7.3f} {int(e.get('false_positives', 0)):>6} "
            f"{int(e.get('misses', 0)):>7}  {e['rule']}{met}{note}"
        )
    return "\n".join(lines)


def run_summary(save_dir: Path) -> str:
    """The end of ``yolocustom train``'s summary: the run's thresholds table (when it chose some) and the command that
    writes its report."""
    lines = []
    if (Path(save_dir) / THRESHOLDS_FILE).is_file():
        lines += [format_table(load_thresholds(Path(save_dir) / THRESHOLDS_FILE)), ""]
    lines.append(f"Report (HTML + Markdown): yolocustom report {save_dir}")
    return "\n".join(lines)


def describe_rules(recipe: Recipe, names: Mapping[int, str]) -> list[str]:
    """The ``--dry-run`` lines: the family, then which rule applies to which class."""
    feature = recipe.features.thresholds
    family = threshold_family(recipe)
    rules = resolve_rules(feature.classes if feature is not None else None, names)
    lines = [
        f"chosen when training ends on best.pt's validation, {family.what} metrics ({family.suffix}); written to "
        f"{THRESHOLDS_FILE} and best.pt"
    ]
    for cls, name in names.items():
        rule = rules.get(cls)
        if rule is None:
            how = "F1 optimum (its F1-confidence curve smoothed as Ultralytics smooths it)"
        elif rule.min_recall is not None:
            how = f"min_recall {rule.min_recall:g}: the highest threshold keeping that recall, else the F1 optimum"
        else:
            how = f"min_precision {rule.min_precision:g}: the most recall at that precision, else the F1 optimum"
        lines.append(f"{name} ({cls}): {how}")
    lines.append("a class without val instances: the global F1-optimal threshold (with a warning)")
    return lines


def deployed_table(data: Mapping[str, Any], stats: Mapping[str, np.ndarray], names: Mapping[int, str]) -> str:
    """``yolocustom val``: each class's P, R, F1, false positives and misses at its deployed threshold."""
    family = FAMILIES.get(str(data.get("family", "B")), BOX)
    if stats and family.tp_key not in stats:
        raise UserError(
            f"thresholds: chosen on {family.what} metrics ({family.suffix}), which this model's validation does not "
            "report; use the thresholds of a model of the same task"
        )
    table = thresholds_by_id(data, names)
    present = {int(c) for c in np.unique(stats.get("target_cls", np.zeros(0)))}
    classes: dict[str, dict[str, Any]] = {}
    for cls, name in names.items():
        t = table.get(cls, float(data["global_conf"]))
        s = counts_at(stats, family.tp_key, cls, t) if "conf" in stats else _scores(0, 0, 0)
        note = "" if cls in present else "no instances in this split"
        classes[name] = _entry(cls, t, s, "deployed", None, note)
    return format_table({**data, "classes": classes}, "At the deployed thresholds")


# ------------------------------------------------------------------------------------------------------------ predict


def thresholds_by_id(data: Mapping[str, Any], names: Mapping[int, str]) -> dict[int, float]:
    """``{class id: threshold}`` for the model's classes, checked against its names.

    Raises:
        UserError: If a class of the thresholds is not the model's class of that id.
    """
    out: dict[int, float] = {}
    for name, entry in data["classes"].items():
        cls = int(entry["id"])
        if names.get(cls) != name:
            raise UserError(
                f"thresholds: class '{name}' (id {cls}) is not the model's class {cls} "
                f"({names.get(cls, 'none')!r}); these thresholds belong to another model"
            )
        out[cls] = float(entry["threshold"])
    return out


class ThresholdFilter:
    """Ultralytics predict callbacks that apply per-class thresholds; attached by :func:`attach`.

    Hooks:
        ``on_predict_start``: sets the predictor's ``conf`` (NMS and the end-to-end head's cut) to the lowest threshold,
            so every box a class threshold would keep reaches the filter.
        ``on_predict_postprocess_end``: runs after ``postprocess`` built the batch's ``Results`` and before
            ``write_results`` saves them (``engine/predictor.py``: images, ``save_txt``/``save_conf``, crops) and before
            they are yielded, so saved files and streamed results hold only kept detections. Boxes, masks, keypoints
            and obb rows are indexed together (``Results.__getitem__``).
    """

    def __init__(self, data: Mapping[str, Any], names: Mapping[int, str], task: str):
        self.data = dict(data)
        self.by_id = thresholds_by_id(data, names)
        default = float(data["global_conf"])
        self.lookup = np.array([self.by_id.get(i, default) for i in range(max(names) + 1)], dtype=np.float64)
        self.lowest = float(self.lookup.min())
        self.attr = TASKS[task].results_attr

    def on_predict_start(self, predictor: Any) -> None:
        predictor.args.conf = self.lowest

    def on_predict_postprocess_end(self, predictor: Any) -> None:
        for i, result in enumerate(predictor.results):
            rows = getattr(result, self.attr, None)
            if rows is None or not len(rows):
                continue
            cls = rows.cls.cpu().numpy().astype(int)
            keep = rows.conf.cpu().numpy() >= self.lookup[cls]
            if keep.all():
                continue
            kept = result[keep]
            if getattr(result, "feats", None) is not None and len(result.feats):  # embed=... object features
                kept.feats = result.feats[keep]
            predictor.results[i] = kept


def attach(model: Any, thresholds: Mapping[str, Any] | str | Path | None = None) -> ThresholdFilter | None:
    """Make ``model.predict``/``model(...)`` apply per-class thresholds, through Ultralytics' predict callbacks.

    Args:
        model: A ``YOLO`` model (``.pt`` or an export).
        thresholds: Thresholds data or a ``thresholds.yaml``; by default the model's own (best.pt's yolocustom record,
            an export's metadata).

    Returns:
        (ThresholdFilter | None): The attached filter; None for a model without thresholds, which then predicts as
            plain Ultralytics (said once, here). Attaching again replaces the previous filter.
    """
    from ultralytics.utils import LOGGER

    if isinstance(thresholds, str | Path):
        thresholds = load_thresholds(thresholds)
    data = dict(thresholds) if thresholds is not None else model_thresholds(model)
    previous = getattr(model, "yc_threshold_filter", None)
    if previous is not None:
        for event in ("on_predict_start", "on_predict_postprocess_end"):
            model.callbacks[event] = [f for f in model.callbacks[event] if getattr(f, "__self__", None) is not previous]
        model.yc_threshold_filter = None
    if data is None:
        LOGGER.warning(
            f"{model.ckpt_path or model.model_name} has no yolocustom per-class thresholds: predicting as plain "
            "Ultralytics (one conf for every class)"
        )
        return None
    if model.task not in TASKS:
        raise UserError(f"thresholds: a {model.task} model has no per-class detections to filter")
    flt = ThresholdFilter(data, model.names, model.task)
    model.add_callback("on_predict_start", flt.on_predict_start)
    model.add_callback("on_predict_postprocess_end", flt.on_predict_postprocess_end)
    model.yc_threshold_filter = flt
    return flt
