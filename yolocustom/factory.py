"""``build_trainer(recipe)``: the task's Ultralytics trainer subclassed with one mixin per enabled feature.

The base is the trainer of the model's task (``tasks.TASKS``): ``DetectionTrainer``, ``SegmentationTrainer``,
``PoseTrainer`` or ``OBBTrainer``, all ``DetectionTrainer`` subclasses, so the same mixins apply. Composition order
(MRO, outermost first) is fixed::

    F1LoggingMixin -> FitnessMixin -> ClassWeightsMixin -> LayerLRMixin -> FreezeMixin -> RepeatFactorSamplingMixin
    -> ThresholdsMixin -> [DistributedMixin] -> RecipeRecordMixin -> <task trainer>

Every mixin calls ``super()`` in its hook, so overrides of the same hook chain (``set_model_attributes`` runs
RecipeRecord first, then Freeze). F1 logging sits outside Fitness so the recipe's fitness can read the F1 that the
F1 metrics put in the validator's dict. Features that are off contribute no class at all; with none on, only
``RecipeRecordMixin`` is added, which records the recipe and never touches the optimisation. ``DistributedMixin``
is added for one rank of a launcher's group (a ``RunPlan`` whose world has several processes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ultralytics.models.yolo.detect import DetectionTrainer

from yolocustom.features.class_weights import ClassWeightsMixin
from yolocustom.features.distributed import DistributedMixin
from yolocustom.features.f1_logging import F1LoggingMixin
from yolocustom.features.fitness import FitnessMixin
from yolocustom.features.freeze import FreezeMixin
from yolocustom.features.layer_lr import LayerLRMixin
from yolocustom.features.recipe_record import RecipeRecordMixin
from yolocustom.features.repeat_factor import RepeatFactorSamplingMixin
from yolocustom.features.thresholds import ThresholdsMixin
from yolocustom.recipe import Recipe, validate_recipe
from yolocustom.resolve import resolve_model, resolve_pretrained
from yolocustom.tasks import TASKS, resolve_task

if TYPE_CHECKING:
    from yolocustom.runplan import RunPlan

FEATURE_ORDER: tuple[tuple[str, type], ...] = (
    ("f1_logging", F1LoggingMixin),
    ("fitness", FitnessMixin),
    ("class_weights", ClassWeightsMixin),
    ("layer_lr", LayerLRMixin),
    ("freeze", FreezeMixin),
    ("repeat_factor_sampling", RepeatFactorSamplingMixin),
    ("thresholds", ThresholdsMixin),
)


def build_trainer(recipe: Recipe | dict[str, Any] | RunPlan, task: str | None = None) -> type[DetectionTrainer]:
    """Build a trainer class over the task's Ultralytics trainer with exactly the recipe's enabled features.

    The class carries the resolved recipe as plain data (``yc_recipe_data``), so it survives Ultralytics' DDP launcher
    (which cloudpickles the class into a fresh interpreter) and can be rebuilt from a checkpoint alone.

    Args:
        recipe (Recipe | dict | RunPlan): A validated recipe, recipe data to validate, or a run's ``RunPlan`` (its
            recipe, task and world: nothing is resolved again).
        task (str, optional): The task, when already known (e.g. read from the checkpoint being resumed); by default
            the model's (a ``.pt`` is found or downloaded first, as ``YOLO(recipe.model)`` would), checked against the
            recipe (``tasks.resolve_task``).

    Returns:
        (type[DetectionTrainer]): Use it as ``YOLO(recipe.model).train(data=..., trainer=cls)``.
    """
    from yolocustom.runplan import RunPlan

    world: dict[str, Any] = {"size": 1, "nnodes": 1}
    if isinstance(recipe, RunPlan):
        plan = recipe
        recipe, task = plan.recipe, plan.task
        world = {"size": plan.world.size, "nnodes": plan.world.nnodes, "backend": plan.backend}
    elif not isinstance(recipe, Recipe):
        recipe = validate_recipe(recipe)
    spec = TASKS[task or resolve_task(recipe, resolve_model(recipe.model))]
    base = spec.trainer_class()
    enabled = recipe.features.enabled()
    mixins = [mixin for name, mixin in FEATURE_ORDER if name in enabled]
    if world["size"] > 1:
        mixins.append(DistributedMixin)
    suffix = "".join(name.title().replace("_", "") for name, _ in FEATURE_ORDER if name in enabled)
    namespace = {
        "yc_recipe_data": recipe.resolved_dict(),
        "yc_features": tuple(name for name, _ in FEATURE_ORDER if name in enabled),
        "yc_task": spec.name,
        "yc_world": world,
        "__module__": __name__,
        "__doc__": f"{spec.trainer_name} with yolocustom features: {', '.join(enabled) or 'none'}.",
    }
    return type(f"YoloCustomTrainer{suffix}", (*mixins, RecipeRecordMixin, base), namespace)


def train_overrides(recipe: Recipe) -> dict[str, Any]:
    """Ultralytics ``train()`` keyword arguments for the recipe (``train`` + data + device); a ``train.pretrained``
    checkpoint is found or downloaded first, as a ``.pt`` model is (a missing one is a clear error, not a traceback).
    """
    overrides = dict(recipe.train)
    pretrained = resolve_pretrained(recipe)
    if pretrained is not None:
        overrides["pretrained"] = pretrained
    overrides["data"] = recipe.data
    device = recipe.ultralytics_device()
    if device is not None:
        overrides["device"] = device
    return overrides
