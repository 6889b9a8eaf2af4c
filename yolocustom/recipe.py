"""The recipe schema (pydantic v2) and ``load_recipe``: YAML file + ``--set`` overrides -> validated ``Recipe``.

Every model forbids unknown keys. Problems are reported as ``file:line:col: field.path: expected ..., found ...``,
all of them at once, through one ``RecipeError``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from yolocustom.errors import Problem, RecipeError
from yolocustom.resolve import is_pretrained
from yolocustom.tasks import check_task_name, task_problems
from yolocustom.ultralytics_cfg import check_train_value, load_ultralytics_cfg
from yolocustom.yaml_source import PathKey, Position, YamlSourceError, parse_document, parse_scalar, read_text

# A bare name means boxes (B); a suffix picks the family: (M) masks for segment, (P) keypoints for pose (see tasks.py)
FitnessMetric = Literal[
    "precision", "recall", "mAP50", "mAP50-95", "f1",
    "precision(B)", "recall(B)", "mAP50(B)", "mAP50-95(B)", "f1(B)",
    "precision(M)", "recall(M)", "mAP50(M)", "mAP50-95(M)", "f1(M)",
    "precision(P)", "recall(P)", "mAP50(P)", "mAP50-95(P)", "f1(P)",
    "default",
]  # fmt: skip
FITNESS_METRICS: tuple[str, ...] = get_args(FitnessMetric)
TaskName = Literal["detect", "segment", "pose", "obb"]
WeightScheme = Literal["inverse", "sqrt_inverse", "effective_number"]
LayerSpec = Literal["backbone"] | Annotated[int, Field(ge=1)] | list[Annotated[int, Field(ge=0)]]

# Keys of ``train`` that yolocustom owns, with where they belong instead.
OWNED_TRAIN_KEYS = {
    "model": "set the top-level 'model' key instead",
    "data": "set the top-level 'data' key instead",
    "device": "set the top-level 'device' key instead",
    "trainer": "yolocustom builds the trainer from 'features'",
    "resume": "use 'yolocustom train --resume [LAST_PT]' instead",
    "mode": "yolocustom always trains",
    "cfg": "put the arguments in 'train' directly; recipes don't load other config files",
    "task": "set the top-level 'task' key instead, or leave it out: the model decides",
}


class _Strict(BaseModel):
    # strict: `epochs: true`, `epochs: "2"` or `per_class: "yes"` in a recipe is a mistake to report, not to coerce
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Feature(_Strict):
    """A feature block: present means on, unless ``enabled: false``. ``key:`` alone (null) or ``true`` mean on."""

    # Stand-ins for required values, used only when the block is switched off (`freeze: false`, `enabled: false`)
    off_placeholders: ClassVar[dict[str, Any]] = {}

    enabled: bool = Field(True, description="Set false to keep the block in the file but switch the feature off.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value is None or value is True:
            return {}
        if value is False:
            value = {"enabled": False}
        if isinstance(value, dict) and value.get("enabled") is False:
            return {**cls.off_placeholders, **value}  # a switched-off block need not be complete
        return value


def _check_layers(value: Any) -> Any:
    """Validate the three layer forms with one precise message instead of a pydantic union error per member."""
    if value == "backbone":
        return value
    if isinstance(value, bool) or not isinstance(value, int | list | str):
        raise ValueError(f"expected 'backbone', an int N (first N layers) or a list of layer indices, found {value!r}")
    if isinstance(value, str):
        hint = difflib.get_close_matches(value, ["backbone"], n=1)
        raise ValueError(
            f"expected 'backbone', an int N or a list of indices, found {value!r}"
            + (f"; did you mean '{hint[0]}'?" if hint else "")
        )
    if isinstance(value, int) and value < 1:
        raise ValueError(f"expected N >= 1 (freeze the first N layers), found {value}")
    if isinstance(value, list):
        if not value:
            raise ValueError("expected a non-empty list of layer indices, found []")
        bad = [x for x in value if isinstance(x, bool) or not isinstance(x, int) or x < 0]
        if bad:
            raise ValueError(f"expected layer indices as integers >= 0, found {bad[0]!r}")
        if len(set(value)) != len(value):
            raise ValueError(f"expected unique layer indices, found duplicates in {value}")
    return value


class F1Logging(_Feature):
    """Log ``metrics/F1(B)`` (mean F1 over every class in the val set, zeros included) in results.csv and loggers."""

    per_class: bool = Field(True, description="Also print a per-class F1 table each epoch and write f1_per_class.csv.")


def _class_keys(value: Any, entry: str) -> Any:
    """Check a mapping keyed by class ids or names (``class_weights.weights``, ``thresholds.classes``)."""
    if isinstance(value, dict):
        if not value:
            raise ValueError(f"expected at least one '{entry}' entry, found {{}}")
        for key in value:
            if isinstance(key, bool) or not isinstance(key, int | str):
                raise ValueError(f"expected class ids (integers >= 0) or class names as keys, found {key!r}")
            if isinstance(key, int) and key < 0:
                raise ValueError(f"expected class ids >= 0, found {key}")
    return value


class ClassWeightsFeature(_Feature):
    """Scale each class's classification loss: its positive BCE terms (``pos_weight``) or its whole BCE term."""

    weights: dict[int | str, Annotated[float, Field(gt=0)]] | None = Field(
        None, description="Explicit weights by class id or class name; classes not listed get 1.0."
    )
    auto: WeightScheme | None = Field(
        None, description="Derive weights from the training labels: inverse, sqrt_inverse or effective_number."
    )
    beta: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        None, description="effective_number only: beta in (0, 1), default 0.999 (Cui et al., CVPR 2019)."
    )
    normalize: Literal["mean", "none"] | None = Field(
        None, description="'mean' rescales so the average weight is 1. Default: mean for auto, none for weights."
    )
    max_weight: Annotated[float, Field(gt=0)] | None = Field(None, description="Cap applied after normalisation.")
    apply_to: Literal["positives", "all"] = Field(
        "positives",
        description=(
            "Which part of a class's classification BCE the weight scales. 'positives' (default): only the positive "
            "term, exactly torch's BCEWithLogitsLoss(pos_weight=w) on Ultralytics' IoU-aware soft targets, a recall "
            "knob for that class. 'all': the whole term, negatives included (Ultralytics' cls_pw / model.class_weights "
            "semantics); in a dense detector almost every term is a negative, so this mostly pushes the class's "
            "scores down. Default chosen on measurement (synthetic set, weights {0: 2, 1: 3}, fine-tuned, 3 seeds, "
            "400 held-out images): mAP50 plain 0.881, pos_weight 0.896, whole-term 0.777 (one seed fell to 0.006); "
            "recall of the weight-3 class 0.823 / 0.891 / 0.766. Fine-tuning a COCO-pretrained yolo11n on real "
            "imbalanced data (Aquarium, 3 seeds, docs/BENCHMARKS.md), both raised test mAP50 over no weights in every "
            "seed, 'positives' by +0.057 and 'all' by +0.050 (within the seed spread of each other)."
        ),
    )

    @field_validator("weights", mode="before")
    @classmethod
    def _weight_keys(cls, value: Any) -> Any:
        return _class_keys(value, "class: weight")

    @model_validator(mode="after")
    def _one_source(self) -> ClassWeightsFeature:
        if self.enabled and (self.weights is None) == (self.auto is None):
            raise ValueError(
                "expected exactly one of 'weights' (explicit mapping) or 'auto' (a scheme), found "
                + ("both" if self.weights is not None else "neither")
            )
        if self.beta is not None and self.auto != "effective_number":  # a silently ignored beta hides a typo
            raise ValueError(f"'beta' only applies to auto: effective_number, found auto: {self.auto}")
        return self


class FitnessFeature(_Feature):
    """Pick best.pt, early stopping and ``best_fitness`` by another metric or a weighted blend."""

    metric: FitnessMetric | None = Field(
        None,
        description="One metric; 'default' is whatever the installed Ultralytics uses (mAP50-95 in 8.4). A bare name "
        "is the box metric; add (M) for masks (segment) or (P) for keypoints (pose), e.g. 'mAP50-95(M)', 'f1(P)'.",
    )
    weights: dict[FitnessMetric, Annotated[float, Field(ge=0)]] | None = Field(
        None, description="A blend: metric name -> non-negative weight; divided by the weights' sum."
    )
    classes: list[int | str] | None = Field(
        None,
        description=(
            "Per-class fitness: class ids or names; each metric (of 'metric' or of every blend term) becomes its "
            "mean over these classes, e.g. {metric: recall, classes: [crack]}. Names are checked against the "
            "dataset before training; every class must have val instances. Not with 'default'."
        ),
    )

    @field_validator("classes", mode="before")
    @classmethod
    def _classes(cls, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, list) or not value:
            raise ValueError(f"expected a non-empty list of class ids or names, found {value!r}")
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int | str) or (isinstance(item, int) and item < 0):
                raise ValueError(f"expected class ids (integers >= 0) or class names, found {item!r}")
        if len(set(value)) != len(value):
            raise ValueError(f"expected distinct classes, found duplicates in {value}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> FitnessFeature:
        if self.enabled and (self.metric is None) == (self.weights is None):
            raise ValueError(
                "expected exactly one of 'metric' or 'weights', found " + ("both" if self.metric else "neither")
            )
        if self.weights is not None and sum(self.weights.values()) <= 0:
            raise ValueError(f"expected weights with a positive sum, found {dict(self.weights)}")
        if self.classes is not None and (self.metric == "default" or (self.weights or {}).get("default", 0) > 0):
            raise ValueError(
                "'classes' makes each metric per-class, but 'default' is Ultralytics' global fitness; use precision, "
                "recall, f1, mAP50 or mAP50-95 with 'classes'"
            )
        return self


class FreezeStage(_Strict):
    """One stage of a gradual unfreeze: these layers are frozen from the start and unfreeze at epoch ``epoch``."""

    epoch: Annotated[int, Field(ge=1)] = Field(..., description="Unfreeze at the start of this epoch (0-based).")
    layers: LayerSpec = Field(..., description="Same forms as freeze.layers.")

    @field_validator("layers", mode="before")
    @classmethod
    def _layers(cls, value: Any) -> Any:
        return _check_layers(value)


class FreezeRamp(_Strict):
    """After a stage unfreezes, its layers' LR rises linearly per iteration from ``start`` x to 1 x its LR."""

    epochs: Annotated[float, Field(gt=0)] = Field(..., description="Length of the ramp, in epochs (k).")
    start: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.1, description="The ramp starts at this fraction of the layers' LR (s, in [0, 1))."
    )

    @field_validator("epochs", mode="before")
    @classmethod
    def _int_is_float(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class FreezeFeature(_Feature):
    """Train with layers frozen for the first ``epochs`` epochs, then unfreeze them; or unfreeze in stages.

    Not a default for fine-tuning: in the fine-tuning study (COCO-pretrained yolo11n on Aquarium, 10 epochs, 3 seeds,
    docs/BENCHMARKS.md) freezing the backbone for 2 epochs changed test mAP50 by -0.022 ± 0.025 and staged unfreezing
    with a ramp by -0.017 ± 0.017. Measure it on your data before keeping it.
    """

    off_placeholders: ClassVar[dict[str, Any]] = {"epochs": 1}

    layers: LayerSpec = Field(
        "backbone", description="'backbone' (from the model YAML), N (first N layers) or a list of layer indices."
    )
    epochs: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="Frozen epochs; the layers unfreeze at the start of epoch `epochs` (0-based). Or use 'schedule'.",
    )
    schedule: list[FreezeStage] | None = Field(
        None,
        description=(
            "Gradual unfreezing: [{epoch: E, layers: ...}, ...] in increasing E, no layer in two stages. Every layer "
            "of every stage is frozen from the start; each stage unfreezes at the start of its epoch E (0-based). "
            "{layers: L, epochs: N} is the one-stage form [{epoch: N, layers: L}]."
        ),
    )
    ramp: FreezeRamp | None = Field(
        None,
        description=(
            "LR warm-up of each stage after it unfreezes: its layers' LR rises linearly, per iteration, from start x "
            "to 1 x their LR over `epochs` epochs; with layer_lr, 1 x is the backbone LR (head LR x ratio)."
        ),
    )

    @field_validator("layers", mode="before")
    @classmethod
    def _layers(cls, value: Any) -> Any:
        return _check_layers(value)

    @model_validator(mode="after")
    def _one_form(self) -> FreezeFeature:
        if not self.enabled:
            return self
        if self.epochs is not None and self.schedule is not None:
            raise ValueError("expected one of 'epochs' (with 'layers') or 'schedule' (a list of stages), found both")
        if self.schedule is not None:  # neither: reported by recipe_problems, at the field path of 'epochs'
            if self.layers != "backbone":  # the default stays in resolved recipes, so only another value is an error
                raise ValueError("'layers' belongs inside each schedule stage when 'schedule' is given; remove it")
            if not self.schedule:
                raise ValueError("expected at least one stage in 'schedule', found []")
            epochs = [stage.epoch for stage in self.schedule]
            if any(b <= a for a, b in zip(epochs, epochs[1:])):
                raise ValueError(f"expected stages in strictly increasing 'epoch' order, found epochs {epochs}")
            seen: dict[int, int] = {}
            for n, stage in enumerate(self.schedule):
                if isinstance(stage.layers, str):
                    continue  # 'backbone' is resolved from the model; the overlap check repeats at training start
                indices = range(stage.layers) if isinstance(stage.layers, int) else stage.layers
                for i in indices:
                    if i in seen:
                        raise ValueError(
                            f"expected each layer in one stage only, found layer {i} in stages {seen[i]} and {n} "
                            f"(epochs {epochs[seen[i]]} and {epochs[n]})"
                        )
                    seen[i] = n
        return self

    def stages(self) -> list[tuple[int, str | int | list[int]]]:
        """``(unfreeze epoch, layer spec)`` per stage, in order; the one-stage form is a single stage."""
        if self.schedule is not None:
            return [(stage.epoch, stage.layers) for stage in self.schedule]
        return [(self.epochs or 1, self.layers)]


class LayerLRFeature(_Feature):
    """Give the backbone a learning rate of head LR x ``backbone_ratio``, keeping Ultralytics' optimizer groups.

    Not a default for fine-tuning: in the fine-tuning study (docs/BENCHMARKS.md) ``backbone_ratio: 0.1`` lowered test
    mAP50 by 0.063 ± 0.005 in every seed, and the rare classes' AP50 by up to 0.13.
    """

    off_placeholders: ClassVar[dict[str, Any]] = {"backbone_ratio": 1.0}

    backbone_ratio: Annotated[float, Field(gt=0)] = Field(..., description="Backbone LR = head LR x this ratio.")
    backbone_layers: LayerSpec = Field("backbone", description="Same forms as freeze.layers.")

    @field_validator("backbone_layers", mode="before")
    @classmethod
    def _layers(cls, value: Any) -> Any:
        return _check_layers(value)


class RepeatFactorSamplingFeature(_Feature):
    """Repeat-factor sampling (LVIS): each epoch, images holding rare classes appear more often."""

    off_placeholders: ClassVar[dict[str, Any]] = {"threshold": 0.1}

    threshold: Annotated[float, Field(gt=0, le=1)] = Field(
        0.3,
        description=(
            "t in (0, 1]: with f_c the fraction of train images containing class c, r_c = max(1, sqrt(t / f_c)); an "
            "image's factor is the largest r_c of its classes, and each epoch it appears floor(r) times plus once "
            "more with probability frac(r), seeded by train.seed and the epoch. LVIS uses 0.001 on 100k images; on a "
            "small set pick t above the rare classes' f_c (see --dry-run). Default 0.3: in the fine-tuning study "
            "(Aquarium, 448 train images, 3 seeds, docs/BENCHMARKS.md) it raised test mAP50 by +0.091 over plain "
            "training, +0.131 with class weights on positives; its epochs hold 1.34x the images there."
        ),
    )


class ClassThresholdRule(_Strict):
    """How one class's confidence threshold is chosen instead of its F1 optimum: give exactly one target."""

    min_recall: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None,
        description="Recall to keep on val, in (0, 1]: the HIGHEST threshold whose recall (IoU 0.5, counted from the "
        "validator's matched predictions) is at least this, i.e. the fewest false positives that keep it.",
    )
    min_precision: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None,
        description="Precision to reach on val, in (0, 1]: among thresholds whose precision is at least this (with "
        "at least one true positive), the one keeping the most recall (the highest of those on a tie). The "
        "highest threshold alone would keep a single confident box.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> ClassThresholdRule:
        if (self.min_recall is None) == (self.min_precision is None):
            raise ValueError(
                "expected exactly one of 'min_recall' or 'min_precision', found "
                + ("both" if self.min_recall is not None else "neither")
            )
        return self


class ThresholdsFeature(_Feature):
    """Per-class confidence thresholds chosen when training ends, on best.pt's validation, for deployment.

    Written to ``thresholds.yaml`` in the run folder and into best.pt; ``yolocustom predict``/``val``/``export`` use
    them.
    """

    classes: dict[int | str, ClassThresholdRule] | None = Field(
        None,
        description=(
            "Per-class rules by class id or name, e.g. {crack: {min_recall: 0.9}, scratch: {min_precision: 0.95}}. "
            "Every other class gets its F1 optimum (argmax of its F1-confidence curve smoothed as Ultralytics "
            "smooths its F1 curve). A target no threshold meets falls back to the F1 optimum and the summary says "
            "so; a class absent from val gets the global F1-optimal threshold and a warning. The metric family is "
            "the fitness metric's (masks for 'mAP50(M)'), else boxes. Names are checked against the dataset "
            "before training."
        ),
    )

    @field_validator("classes", mode="before")
    @classmethod
    def _rule_keys(cls, value: Any) -> Any:
        return _class_keys(value, "class: {min_recall: x}")


class Features(_Strict):
    """Optional features; each present block switches its feature on."""

    f1_logging: F1Logging | None = None
    class_weights: ClassWeightsFeature | None = None
    fitness: FitnessFeature | None = None
    freeze: FreezeFeature | None = None
    layer_lr: LayerLRFeature | None = None
    repeat_factor_sampling: RepeatFactorSamplingFeature | None = None
    thresholds: ThresholdsFeature | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_blocks_are_on(cls, value: Any) -> Any:
        # `f1_logging:` with nothing after it parses as null; in a recipe it reads as "on, with defaults".
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    def enabled(self) -> dict[str, _Feature]:
        """Return the enabled feature blocks by name, in declaration order."""
        blocks = {name: getattr(self, name) for name in type(self).model_fields}
        return {name: block for name, block in blocks.items() if block is not None and block.enabled}


DeviceSpec = Literal["cpu", "mps", "auto"] | Annotated[int, Field(ge=0)] | list[Annotated[int, Field(ge=0)]] | str


class Recipe(_Strict):
    """A yolocustom training recipe."""

    version: Literal[1] = Field(1, description="Recipe format version; only 1 exists.")
    model: str = Field(..., min_length=1, description="Model YAML (e.g. yolo26n.yaml, trains from scratch) or .pt.")
    task: TaskName | None = Field(
        None,
        description="detect, segment, pose or obb. Optional: the model decides (its YAML head or checkpoint); if "
        "given, it must agree with the model.",
    )
    data: str = Field(..., min_length=1, description="Dataset YAML path or an Ultralytics dataset name.")
    device: DeviceSpec = Field(
        "auto", description="'cpu', 'mps', a GPU index, a list of GPU indices (DDP), '0,1', or 'auto'."
    )
    train: dict[str, Any] = Field(
        default_factory=dict, description="Arguments for Ultralytics train(), checked against its default.yaml."
    )
    features: Features = Field(default_factory=Features)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, bool):  # True == 1 would slip through Literal[1]
            raise ValueError(f"expected 1, found {value!r}")
        return value

    @field_validator("task", mode="before")
    @classmethod
    def _task(cls, value: Any) -> Any:
        return check_task_name(value)

    @field_validator("train", "features", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        # `features:` with every block commented out parses as null: no features, not an error
        return {} if value is None else value

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> Any:
        # one precise message per mistake instead of one pydantic error per member of the DeviceSpec union
        if isinstance(value, bool) or not isinstance(value, int | str | list):
            raise ValueError(f"expected 'cpu', 'mps', 'auto', a GPU index or a list of indices, found {value!r}")
        if isinstance(value, int) and value < 0:
            raise ValueError(f"expected a GPU index >= 0, found {value}")
        if isinstance(value, list):
            bad = [x for x in value if isinstance(x, bool) or not isinstance(x, int) or x < 0]
            if bad:
                raise ValueError(f"expected GPU indices as integers >= 0, found {bad[0]!r}")
        if (
            isinstance(value, str)
            and value not in {"cpu", "mps", "auto"}
            and not re.fullmatch(r"\d+(,\d+)*", value.replace(" ", ""))
        ):
            hint = difflib.get_close_matches(value, ["cpu", "mps", "auto"], n=1)
            raise ValueError(
                f"expected 'cpu', 'mps', 'auto', a GPU index or '0,1', found {value!r}"
                + (f"; did you mean '{hint[0]}'?" if hint else "")
            )
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError(f"expected a non-empty list of distinct GPU indices, found {value!r}")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Recipe:
        problems = recipe_problems(self)
        if problems:
            raise _Problems(problems)
        return self

    # -- derived views ------------------------------------------------------------------------------------------------
    def ultralytics_device(self) -> str | None:
        """The recipe's device as Ultralytics' ``device`` argument (``None`` lets Ultralytics pick)."""
        if self.device == "auto":
            return None
        if isinstance(self.device, list):
            return ",".join(str(i) for i in self.device)
        return str(self.device).replace(" ", "")

    def train_epochs(self) -> int:
        """Epochs the run will train for (``train.epochs`` or Ultralytics' default)."""
        return int(self.train.get("epochs", load_ultralytics_cfg().defaults["epochs"]))

    def resolved_dict(self) -> dict[str, Any]:
        """The recipe as plain Python data (YAML-safe, picklable), defaults filled in; class-id keys stay ints.

        Absent feature blocks are left out rather than written as null, which a recipe reads as "on".
        """
        data = self.model_dump()
        data["features"] = {k: v for k, v in data["features"].items() if v is not None}
        return data

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the resolved recipe."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class _Problems(Exception):  # noqa: N818 - internal carrier, deliberately not a ValueError so pydantic re-raises it
    """Cross-field problems with their field paths; not a ValueError, so pydantic passes it through unwrapped."""

    def __init__(self, problems: list[tuple[PathKey, str]]):
        super().__init__("; ".join(f"{'.'.join(map(str, p))}: {m}" for p, m in problems))
        self.problems = problems


def suggest(word: str, options: list[str]) -> str:
    """A "did you mean" clause for the closest of ``options`` to ``word``, or an empty string."""
    hint = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean '{hint[0]}'?" if hint else ""


def recipe_problems(recipe: Recipe) -> list[tuple[PathKey, str]]:
    """Checks that span fields or need Ultralytics' catalogue; returns ``(field path, message)`` pairs."""
    cfg = load_ultralytics_cfg()
    feats = recipe.features.enabled()
    problems = train_problems(recipe.train, set(feats))
    problems += task_problems(recipe)
    epochs = recipe.train.get("epochs", cfg.defaults["epochs"])
    freeze = feats.get("freeze")
    if isinstance(freeze, FreezeFeature) and freeze.epochs is None and freeze.schedule is None:
        problems.append(
            (
                ("features", "freeze", "epochs"),
                "required key 'epochs' is missing (or give 'schedule', a list of stages)",
            )
        )
    elif isinstance(freeze, FreezeFeature) and isinstance(epochs, int):
        for n, (stage_epoch, _) in enumerate(freeze.stages()):
            if stage_epoch < epochs:
                continue
            where: PathKey = ("features", "freeze", "epochs")
            if freeze.schedule is not None:
                where = ("features", "freeze", "schedule", n, "epoch")
            problems.append(
                (
                    where,
                    f"expected fewer than train.epochs ({epochs}), found {stage_epoch}: layers unfreeze at the start "
                    f"of epoch {stage_epoch} (0-based), which a {epochs}-epoch run never reaches, so they would stay "
                    f"frozen; drop the {'stage' if freeze.schedule else 'freeze feature'} or lower its epoch",
                )
            )
    return problems


def train_problems(train: dict[Any, Any], features: set[str]) -> list[tuple[PathKey, str]]:
    """Check ``train`` keys and values against Ultralytics' catalogue and yolocustom's ownership rules.

    Args:
        train (dict): The recipe's ``train`` mapping.
        features (set[str]): Names of the enabled features (some make Ultralytics keys conflict).
    """
    cfg = load_ultralytics_cfg()
    problems: list[tuple[PathKey, str]] = []
    for key, value in train.items():
        path: PathKey = ("train", key)
        if not isinstance(key, str):
            problems.append((path, f"expected string keys, found {key!r}"))
        elif key in OWNED_TRAIN_KEYS:
            problems.append((path, f"'{key}' is owned by yolocustom: {OWNED_TRAIN_KEYS[key]}"))
        elif key == "freeze" and "freeze" in features:
            problems.append((path, "'train.freeze' conflicts with features.freeze; set the layers there"))
        elif key == "cls_pw" and "class_weights" in features and value:
            problems.append(
                (
                    path,
                    "'train.cls_pw' and features.class_weights would both set model.class_weights and fight; "
                    "remove cls_pw",
                )
            )
        elif key == "rect" and value is True and "repeat_factor_sampling" in features:
            problems.append(
                (path, "'train.rect' orders batches by aspect ratio and cannot shuffle, so it cannot resample either")
            )
        elif key == "pretrained" and isinstance(value, str) and not is_pretrained(value):
            problems.append(
                (
                    path,
                    f"expected true, false or a .pt checkpoint whose matching tensors load into the model (a path, a "
                    f"name such as yolo11n-pose.pt, or an http(s) URL), found {value!r}",
                )
            )
        elif key not in cfg.defaults:
            problems.append((path, f"unknown Ultralytics train argument '{key}'{suggest(key, list(cfg.defaults))}"))
        elif (message := check_train_value(key, value)) is not None:
            problems.append((path, message))
    return problems


def find_position(positions: dict[PathKey, Position], path: PathKey) -> Position | None:
    """Return the position of the longest prefix of ``path`` that the source recorded."""
    for end in range(len(path), -1, -1):  # down to () = the document root, e.g. for a missing top-level key
        if path[:end] in positions:
            return positions[path[:end]]
    return None


def _format_pydantic_error(err: dict[str, Any]) -> tuple[PathKey, str]:
    """Turn one pydantic error into (clean field path, 'expected ..., found ...' message)."""
    loc: PathKey = tuple(
        p
        for p in err["loc"]
        if not (
            isinstance(p, str)
            and (p.startswith(("literal[", "list[", "function-")) or p in {"int", "str", "float", "[key]"})
        )
    )
    kind, found = err["type"], err.get("input")
    if kind == "extra_forbidden":
        parent_model = _model_at(loc[:-1])
        options = list(parent_model.model_fields) if parent_model else []
        key = str(loc[-1])
        return loc, f"unknown key '{key}'{suggest(key, options)} (expected one of: {', '.join(options)})"
    if kind == "missing":
        return loc, f"required key '{loc[-1]}' is missing"
    message = err["msg"]
    if message.startswith("Value error, "):  # our own validators already say what was expected and found
        return loc, message.removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    message = message.replace("input should be greater", "expected a value greater")
    message = message.replace("input should be less", "expected a value less")
    message = message.replace("input should be", "expected").replace("input should", "expected")
    message = re.sub(r"a valid dictionary( or instance of \w+)?", "a mapping", message)
    hint = ""
    if kind == "literal_error" and isinstance(found, str):
        hint = suggest(found, re.findall(r"'([^']+)'", message))
    return loc, f"{message}, found {found!r}{hint}"


def _model_at(path: PathKey) -> type[BaseModel] | None:
    """The pydantic model class that validates the mapping at ``path`` (for 'did you mean' on unknown keys)."""
    model: type[BaseModel] = Recipe
    for part in path:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        candidates = getattr(annotation, "__args__", (annotation,))
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def _set_override(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ValueError(f"'{'.'.join(parts[: i + 1])}' is not a mapping, so '{dotted}' cannot be set")
        node = child
    node[parts[-1]] = value


set_override = _set_override  # public name: `yolocustom tune` sets swept values exactly as `--set` does


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.startswith(".")


def _resolve_relative(value: str, base: Path) -> str:
    """Resolve a model/data reference against the recipe's folder when it names a file there or looks like a path.

    Bare names (``yolo26n.yaml``, ``coco8.yaml``) stay as they are for Ultralytics to resolve, unless a file of that
    name sits next to the recipe. URLs (``https://.../best.pt``) stay as they are too.
    """
    if "://" in value:
        return value
    candidate = Path(value).expanduser()
    if candidate.is_absolute():
        return str(candidate)
    local = base / candidate
    if local.exists() or _looks_like_path(value):
        return str(local.resolve())
    return value


def _yaml_kind(value: Any) -> str:
    """How YAML calls what a document holds ('null', 'a list'...), for messages."""
    kinds = {type(None): "null", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, validate and resolve a recipe file.

    Args:
        path (str | Path): The recipe YAML.
        overrides (list[str], optional): ``dotted.key=value`` strings, values parsed as YAML.

    Returns:
        (Recipe): The validated recipe with ``model``/``data``/``train.pretrained`` resolved against the recipe's
            folder.

    Raises:
        RecipeError: With every problem found, each with ``line:col`` (or the ``--set`` it came from) and field path.
    """
    path = Path(path)
    source = str(path)
    try:
        data, positions = parse_document(read_text(path))
    except YamlSourceError as e:
        pos = e.position
        problem = Problem.at(pos, "", _one_line(e.message))
        raise RecipeError(source, [problem]) from None
    if not isinstance(data, dict):
        top = positions.get((), Position(1, 1))
        message = f"expected a mapping at the top level (model: ..., data: ...), found {_yaml_kind(data)}"
        raise RecipeError(source, [Problem(message, line=top.line, col=top.col)])
    override_sources: dict[PathKey, str] = {}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problem = Problem("expected dotted.key=value, e.g. train.epochs=5", origin=f"--set {item!r}")
            raise RecipeError(source, [problem])
        try:
            _set_override(data, key, parse_scalar(raw))
        except (ValueError, YamlSourceError) as e:
            raise RecipeError(source, [Problem(_one_line(str(e)), origin=_one_line(f"--set {item}"))]) from None
        override_sources[tuple(key.split("."))] = _one_line(f"--set {item}")
    base = path.resolve().parent
    for key in ("model", "data"):
        if isinstance(data.get(key), str) and data[key]:
            data[key] = _resolve_relative(data[key], base)
    train = data.get("train")
    if isinstance(train, dict) and isinstance(train.get("pretrained"), str) and train["pretrained"]:
        train["pretrained"] = _resolve_relative(train["pretrained"], base)  # a checkpoint, found like model: is
    return validate_recipe(data, source, positions, override_sources)


def validate_recipe(
    data: dict[str, Any],
    source: str = "<recipe>",
    positions: dict[PathKey, Position] | None = None,
    override_sources: dict[PathKey, str] | None = None,
) -> Recipe:
    """Validate recipe data (already parsed) and raise one ``RecipeError`` listing every problem with its location."""
    positions = positions or {}
    override_sources = override_sources or {}
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        problems = [_format_pydantic_error(dict(err)) for err in e.errors(include_url=False)]
        train, feats = data.get("train"), data.get("features")
        if isinstance(train, dict) and not any(loc[:1] == ("train",) for loc, _ in problems):
            # pydantic stopped before the cross-field pass; still report the train keys in the same run
            on = {k for k, v in feats.items() if v is not False} if isinstance(feats, dict) else set()
            problems += train_problems(train, on)
    except _Problems as e:
        problems = e.problems
    records = []
    for loc, message in problems:
        field = _one_line(".".join(str(p) for p in loc) or "(top level)")
        origin = next((src for p, src in override_sources.items() if loc[: len(p)] == p), None)
        pos = None if origin else find_position(positions, loc)
        records.append(Problem.at(pos, field, _one_line(message), origin or ""))
    records.sort(key=lambda r: (r.line or 0, r.col or 0))  # file order, as linters print; overrides first
    raise RecipeError(source, records)


def _one_line(text: str) -> str:
    """Escape line breaks (a quoted key or a --set value may hold them) so an error stays one paragraph."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def recipe_json_schema() -> dict[str, Any]:
    """The JSON Schema of a recipe file, for editors (``yolocustom schema``)."""
    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "yolocustom recipe"
    # What the validators accept beyond the models' fields, so editors don't flag valid recipes:
    # `freeze: false` / `f1_logging: true` (block shorthands) and `train:` / `features:` left empty (null).
    for block in schema["$defs"]["Features"]["properties"].values():
        block["anyOf"].append({"type": "boolean"})
    for key in ("train", "features"):
        inner = schema["properties"][key]
        outer = {k: inner.pop(k) for k in ("title", "description") if k in inner}
        schema["properties"][key] = {**outer, "anyOf": [inner, {"type": "null"}]}
    return schema
