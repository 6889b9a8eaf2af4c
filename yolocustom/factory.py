"""``build_trainer(recipe)``: a ``DetectionTrainer`` subclass composed from one mixin per enabled feature.

Composition order (MRO, outermost first) is fixed::

    F1LoggingMixin -> FitnessMixin -> ClassWeightsMixin -> LayerLRMixin -> FreezeMixin -> RecipeRecordMixin
    -> DetectionTrainer

Every mixin calls ``super()`` in its hook, so overrides of the same hook chain (``set_model_attributes`` runs
RecipeRecord first, then Freeze). F1 logging sits outside Fitness so the recipe's fitness can read the F1 that the
F1 metrics put in the validator's dict. Features that are off contribute no class at all; with none on, only
``RecipeRecordMixin`` is added, which records the recipe and never touches the optimisation.
"""

from __future__ import annotations

from typing import Any

from ultralytics.models.yolo.detect import DetectionTrainer

from yolocustom.features.class_weights import ClassWeightsMixin
from yolocustom.features.f1_logging import F1LoggingMixin
from yolocustom.features.fitness import FitnessMixin
from yolocustom.features.freeze import FreezeMixin
from yolocustom.features.layer_lr import LayerLRMixin
from yolocustom.features.recipe_record import RecipeRecordMixin
from yolocustom.features.repeat_factor import RepeatFactorSamplingMixin
from yolocustom.recipe import Recipe, validate_recipe

FEATURE_ORDER: tuple[tuple[str, type], ...] = (
    ("f1_logging", F1LoggingMixin),
    ("fitness", FitnessMixin),
    ("class_weights", ClassWeightsMixin),
    ("layer_lr", LayerLRMixin),
    ("freeze", FreezeMixin),
    ("repeat_factor_sampling", RepeatFactorSamplingMixin),
)


def build_trainer(recipe: Recipe | dict[str, Any]) -> type[DetectionTrainer]:
    """Build a trainer class with exactly the recipe's enabled features.

    The class carries the resolved recipe as plain data (``yc_recipe_data``), so it survives Ultralytics' DDP launcher
    (which cloudpickles the class into a fresh interpreter) and can be rebuilt from a checkpoint alone.

    Args:
        recipe (Recipe | dict): A validated recipe, or recipe data to validate.

    Returns:
        (type[DetectionTrainer]): Use it as ``YOLO(recipe.model).train(data=..., trainer=cls)``.
    """
    if not isinstance(recipe, Recipe):
        recipe = validate_recipe(recipe)
    enabled = recipe.features.enabled()
    mixins = [mixin for name, mixin in FEATURE_ORDER if name in enabled]
    suffix = "".join(name.title().replace("_", "") for name, _ in FEATURE_ORDER if name in enabled)
    namespace = {
        "yc_recipe_data": recipe.resolved_dict(),
        "yc_features": tuple(name for name, _ in FEATURE_ORDER if name in enabled),
        "__module__": __name__,
        "__doc__": f"DetectionTrainer with yolocustom features: {', '.join(enabled) or 'none'}.",
    }
    return type(f"YoloCustomTrainer{suffix}", (*mixins, RecipeRecordMixin, DetectionTrainer), namespace)


def train_overrides(recipe: Recipe) -> dict[str, Any]:
    """Ultralytics ``train()`` keyword arguments for the recipe (``train`` + data + device)."""
    overrides = dict(recipe.train)
    overrides["data"] = recipe.data
    device = recipe.ultralytics_device()
    if device is not None:
        overrides["device"] = device
    return overrides
