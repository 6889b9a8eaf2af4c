"""What differs per Ultralytics task, in one table; every feature asks here instead of testing ``task == ...``.

yolocustom supports the tasks whose Ultralytics trainer is a ``DetectionTrainer``: detect, segment, pose and obb. For
each, :data:`TASKS` holds the trainer class, the metric families its validator reports (``(B)`` boxes, ``(M)`` masks,
``(P)`` keypoints), the attribute of the validator's metrics object that holds each family, and the label format its
dataset class reads.

The task comes from the model, the way Ultralytics decides it (``ultralytics.nn.tasks.guess_model_task``): for a model
YAML, from its head module (``Segment``, ``Pose26``, ``OBB``, ``Detect``...), found like ``yaml_model_load`` finds it
(``yolo26n-seg.yaml`` is ``cfg/models/26/yolo26-seg.yaml`` at scale ``n``), or from the file name (``-seg``,
``-pose``, ``-obb``, ``-cls``) when no YAML can be read. That needs no torch, so ``validate-config`` knows it. For a
``.pt`` on disk the checkpoint decides, at ``train``/``--dry-run`` time (:func:`checkpoint_task`). An optional
top-level ``task:`` in the recipe must agree.

Only the standard library and PyYAML are imported here (``validate-config`` must not import torch).
"""

from __future__ import annotations

import difflib
import functools
import glob
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolocustom.errors import UserError
from yolocustom.resolve import is_pretrained

if TYPE_CHECKING:
    from yolocustom.recipe import Recipe


@dataclass(frozen=True)
class Family:
    """One metric family a validator reports.

    Attributes:
        suffix (str): The key suffix Ultralytics uses, ``B``, ``M`` or ``P`` (``metrics/mAP50(M)``).
        attr (str): The attribute of the validator's metrics object holding its ``Metric`` (``box``, ``seg``, ``pose``).
        what (str): What it measures, for messages.
        tp_key (str): Its key in the metrics object's matched stats (``tp``, ``tp_m``, ``tp_p``: true positives per
            prediction at IoU 0.50:0.95, the columns ``ap_per_class`` reads).
    """

    suffix: str
    attr: str
    what: str
    tp_key: str = "tp"


BOX = Family("B", "box", "box")
MASK = Family("M", "seg", "mask", "tp_m")
POSE = Family("P", "pose", "keypoint", "tp_p")
FAMILIES: dict[str, Family] = {f.suffix: f for f in (BOX, MASK, POSE)}


@dataclass(frozen=True)
class TaskSpec:
    """Everything yolocustom needs to know about one task.

    Attributes:
        name (str): Ultralytics' task name, also the run-folder level (``runs/segment/...``).
        trainer (str): Import path of its Ultralytics trainer (a ``DetectionTrainer`` subclass).
        families (tuple[Family, ...]): Metric families its validator reports, in its column order.
        label_format (str): One label row, as its dataset class reads it (for messages).
        segments (bool): Whether its dataset requires a polygon for every instance (Ultralytics' ``verify_labels``).
        keypoints (bool): Whether its dataset reads keypoint rows (``use_keypoints``: needs ``kpt_shape``).
        demo_folder (str): ``yolocustom demo-data --task`` default output folder (its label writer is
            ``demo_data.LABEL_WRITERS[name]``).
        results_attr (str): The attribute of a predict ``Results`` holding its detections, with ``cls``/``conf`` and
            the masks/keypoints of the same rows (``boxes``; ``obb`` for obb).
    """

    name: str
    trainer: str
    families: tuple[Family, ...]
    label_format: str
    segments: bool = False
    keypoints: bool = False
    demo_folder: str = "datasets/shapes"
    results_attr: str = "boxes"

    @property
    def trainer_name(self) -> str:
        """The trainer's class name (``SegmentationTrainer``)."""
        return self.trainer.rpartition(".")[2]

    def trainer_class(self) -> type:
        """Import and return the Ultralytics trainer class (imports torch)."""
        module, _, name = self.trainer.rpartition(".")
        return getattr(importlib.import_module(module), name)

    def suffixes(self) -> str:
        """``(B)`` or ``(B), (M)``: the families, for messages."""
        return ", ".join(f"({f.suffix})" for f in self.families)


TASKS: dict[str, TaskSpec] = {
    "detect": TaskSpec(
        "detect",
        "ultralytics.models.yolo.detect.DetectionTrainer",
        (BOX,),
        "'class cx cy w h' (5 values; polygons are turned into boxes)",
    ),
    "segment": TaskSpec(
        "segment",
        "ultralytics.models.yolo.segment.SegmentationTrainer",
        (BOX, MASK),
        "'class x1 y1 x2 y2 x3 y3 ...' (a polygon per instance, more than 6 values)",
        segments=True,
        demo_folder="datasets/shapes-seg",
    ),
    "pose": TaskSpec(
        "pose",
        "ultralytics.models.yolo.pose.PoseTrainer",
        (BOX, POSE),
        "'class cx cy w h' + kpt_shape[0] x kpt_shape[1] keypoint values",
        keypoints=True,
        demo_folder="datasets/shapes-pose",
    ),
    "obb": TaskSpec(
        "obb",
        "ultralytics.models.yolo.obb.OBBTrainer",
        (BOX,),
        "'class x1 y1 x2 y2 x3 y3 x4 y4' (the 4 corners of an oriented box, 9 values)",
        segments=True,
        demo_folder="datasets/shapes-obb",
        results_attr="obb",
    ),
}
"""The supported tasks: those whose Ultralytics trainer is a ``DetectionTrainer``."""

UNSUPPORTED: dict[str, str] = {
    "classify": "ClassificationTrainer",
    "semantic": "SemanticSegmentationTrainer",
    "depth": "DepthTrainer",
}
"""Ultralytics tasks yolocustom refuses, with their trainer (not a ``DetectionTrainer``)."""

BASE_METRICS: dict[str, str] = {
    "precision": "precision",
    "recall": "recall",
    "mAP50": "mAP50",
    "mAP50-95": "mAP50-95",
    "f1": "F1",
}
"""Fitness metric names -> the validator's key stem (``metrics/<stem>(<suffix>)``)."""

_METRIC_RE = re.compile(r"^(?P<base>[^()]+?)(?:\((?P<suffix>[A-Z])\))?$")


def fitness_metric_names() -> list[str]:
    """Every fitness metric name a recipe may use: ``default``, each base metric bare (boxes) and with each suffix."""
    names = [*BASE_METRICS]
    names += [f"{m}({f})" for f in FAMILIES for m in BASE_METRICS]
    return [*names, "default"]


def parse_metric(name: str) -> tuple[str, Family]:
    """Split a fitness metric name into its base metric and family (a bare name means boxes, ``(B)``).

    Raises:
        ValueError: For a name outside :func:`fitness_metric_names` (``default`` included: it has no family).
    """
    m = _METRIC_RE.match(name)
    if not m or m["base"] not in BASE_METRICS or (m["suffix"] is not None and m["suffix"] not in FAMILIES):
        raise ValueError(f"unknown fitness metric {name!r}")
    return m["base"], FAMILIES[m["suffix"] or "B"]


def metric_key(name: str) -> str:
    """The validator's metrics-dict key of a fitness metric: ``mAP50-95(M)`` -> ``metrics/mAP50-95(M)``,
    ``f1`` -> ``metrics/F1(B)``."""
    base, family = parse_metric(name)
    return f"metrics/{BASE_METRICS[base]}({family.suffix})"


def f1_key(family: Family) -> str:
    """The F1 column of a family (``metrics/F1(M)``)."""
    return f"metrics/F1({family.suffix})"


def article(word: str) -> str:
    """The indefinite article for ``word`` ("an obb model", "a pose model")."""
    return "an" if word[0] in "aeiou" else "a"


def family_problem(name: str, task: str) -> str | None:
    """Why fitness metric ``name`` cannot be used with ``task`` (its family is not reported), or None."""
    if name == "default":
        return None
    _, family = parse_metric(name)
    spec = TASKS[task]
    if family in spec.families:
        return None
    return (
        f"'{name}' needs {family.what} metrics ({family.suffix}), which {article(task)} {task} model does not produce "
        f"(its validator reports {spec.suffixes()})"
    )


# ---------------------------------------------------------------------------------------------------- task from model


def guess_task_from_name(model: str) -> str:
    """Ultralytics' file-name rules (``guess_model_task`` for a path): ``-seg``, ``-pose``, ``-obb``, ``-cls``..."""
    path = Path(model)
    stem, parts = path.stem, path.parts
    for marker, folder, task in (
        ("-sem", "semantic", "semantic"),
        ("-seg", "segment", "segment"),
        ("-cls", "classify", "classify"),
        ("-pose", "pose", "pose"),
        ("-obb", "obb", "obb"),
        ("-depth", "depth", "depth"),
    ):
        if marker in stem or folder in parts:
            return task
    return "detect"


def _head_task(cfg: Any) -> str | None:
    """Ultralytics' ``cfg2task``: the task from a model YAML's last head module name, or None if unreadable."""
    try:
        m = str(cfg["head"][-1][-2]).lower()
    except (KeyError, IndexError, TypeError):
        return None
    if m in {"classify", "classifier", "cls", "fc"}:
        return "classify"
    for key, task in (
        ("detect", "detect"),
        ("semanticsegment", "semantic"),
        ("segment", "segment"),
        ("pose", "pose"),
        ("obb", "obb"),
        ("depth", "depth"),
    ):
        if key in m:
            return task
    return None


def find_model_yaml(model: str) -> Path | None:
    """Find a model YAML as ``yaml_model_load`` does: the path itself, else its name, then its scale-less name
    (``yolo26n-seg.yaml`` -> ``yolo26-seg.yaml``) searched under the installed Ultralytics package."""
    from yolocustom.datasets import ultralytics_root

    path = Path(model)
    if path.stem in (f"yolov{d}{x}6" for x in "nsmlx" for d in (5, 8)):
        path = path.with_name(re.sub(r"(\d+)([nslmx])6(.+)?$", r"\1\2-p6\3", path.stem) + path.suffix)
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", str(path))
    root = ultralytics_root()
    for candidate in (str(path), unified):
        if Path(candidate).is_file():
            return Path(candidate)
        if root is not None and not Path(candidate).is_absolute():
            found = glob.glob(str(root / "**" / candidate), recursive=True) or glob.glob(str(root.parent / candidate))
            if found:
                return Path(found[0])
    return None


@functools.lru_cache(maxsize=64)
def yaml_task(model: str) -> str:
    """The task of a model YAML, without torch: its head module, else its file name (as Ultralytics falls back)."""
    import yaml

    file = find_model_yaml(model)
    if file is not None:
        try:
            cfg = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            cfg = None
        task = _head_task(cfg)
        if task is not None:
            return task
    return guess_task_from_name(model)


def model_task(model: str) -> str | None:
    """The task of ``model`` when it can be known without torch: a YAML's. None for a ``.pt`` (a path, a name in
    ``weights_dir``, an asset or a URL): its checkpoint decides, once found or downloaded, as in Ultralytics; a file
    name such as ``best.pt`` says nothing about it."""
    if model.endswith((".yaml", ".yml")):
        return yaml_task(model)
    if is_pretrained(model):
        return None
    return guess_task_from_name(model)


def checkpoint_task(path: str | Path) -> str:
    """The task of a checkpoint, read as Ultralytics reads it (``guess_model_task`` on its model; imports torch).

    Raises:
        UserError: If the file is not a readable checkpoint.
    """
    from ultralytics.nn.tasks import guess_model_task
    from ultralytics.utils.patches import torch_load

    try:
        ckpt = torch_load(str(path), map_location="cpu")
    except Exception as e:  # a truncated or foreign file: say so instead of a pickle traceback
        raise UserError(f"model: {path} is not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict):  # a bare pickled model, as Ultralytics also accepts
        return str(getattr(ckpt, "task", None) or guess_model_task(ckpt))
    model = ckpt.get("ema") or ckpt.get("model")
    if model is None:
        return str((ckpt.get("train_args") or {}).get("task") or guess_task_from_name(str(path)))
    return str(getattr(model, "task", None) or guess_model_task(model))


def unsupported_message(task: str, model: str) -> str:
    """The refusal for a task whose trainer is not a ``DetectionTrainer`` (``-cls`` models...)."""
    return (
        f"{model} is a {task} model: not supported: its trainer ({UNSUPPORTED.get(task, task)}) is not a "
        f"DetectionTrainer (yolocustom trains {', '.join(TASKS)} models)"
    )


def task_problems(recipe: Recipe, known: str | None = None) -> list[tuple[tuple[str, ...], str]]:
    """Recipe checks that need the task: the model's task is supported and agrees with ``task:``, and every fitness
    metric's family is one the task reports. Without torch a ``.pt``'s task is unknown (``model_task``), so then only
    ``task:`` is checked against the fitness; ``resolve_task`` checks again with the checkpoint's task.

    Args:
        recipe (Recipe): The recipe.
        known (str, optional): The model's task when already read (from the checkpoint); else ``model_task``'s.

    Returns:
        (list[tuple[tuple[str, ...], str]]): ``(field path, message)`` pairs.
    """
    problems: list[tuple[tuple[str, ...], str]] = []
    known = known or model_task(recipe.model)
    if known is not None and known not in TASKS:
        return [(("model",), unsupported_message(known, recipe.model))]
    if known is not None and recipe.task is not None and recipe.task != known:
        problems.append(
            (
                ("task",),
                f"expected '{known}' (the task of {recipe.model}), found '{recipe.task}'; remove 'task' or use a "
                f"{recipe.task} model",
            )
        )
        return problems
    task = known or recipe.task
    if task is not None:
        problems += fitness_problems(recipe, task)
    return problems


def fitness_problems(recipe: Recipe, task: str) -> list[tuple[tuple[str, ...], str]]:
    """Fitness metrics whose family ``task`` does not report, as ``(field path, message)`` pairs."""
    fitness = recipe.features.fitness
    if fitness is None or not fitness.enabled:
        return []
    named: dict[tuple[str, ...], str]
    if fitness.metric is not None:
        named = {("features", "fitness", "metric"): fitness.metric}
    else:
        named = {("features", "fitness", "weights", m): m for m in fitness.weights or {}}
    out: list[tuple[tuple[str, ...], str]] = []
    for path, name in named.items():
        problem = family_problem(name, task)
        if problem is not None:
            out.append((path, problem))
    return out


def resolve_task(recipe: Recipe, weights: str | None = None) -> str:
    """The task training will run: the model's (from the checkpoint for a ``.pt``), checked against the recipe.

    Args:
        recipe (Recipe): The validated recipe.
        weights (str, optional): Where ``resolve.resolve_model`` put the recipe's ``.pt`` (downloaded or found), when
            that differs from ``recipe.model`` (an asset name, a URL, a name in ``weights_dir``).

    Raises:
        UserError: For an unsupported task, a ``task:`` that disagrees, or a fitness family the task lacks.
    """
    task = model_task(recipe.model) or checkpoint_task(weights or recipe.model)
    problems = task_problems(recipe, task)
    if problems:
        raise UserError("; ".join(f"{'.'.join(p)}: {m}" for p, m in problems))
    return task


def check_task_name(value: Any) -> Any:
    """Validate a recipe's ``task:`` value with one precise message (a pydantic ``before`` validator)."""
    if value is None or value in TASKS:
        return value
    if isinstance(value, str) and value in UNSUPPORTED:
        raise ValueError(
            f"expected one of {', '.join(TASKS)}, found {value!r}: not supported: its trainer "
            f"({UNSUPPORTED[value]}) is not a DetectionTrainer"
        )
    hint = difflib.get_close_matches(str(value), list(TASKS), n=1)
    raise ValueError(
        f"expected one of {', '.join(TASKS)}, found {value!r}" + (f"; did you mean '{hint[0]}'?" if hint else "")
    )
