"""The mixins' static base: ``DetectionTrainer`` for type checkers, ``object`` at run time (the factory adds the real
``DetectionTrainer`` last in the MRO, so each mixin's ``super()`` reaches the next mixin or Ultralytics itself)."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ultralytics.models.yolo.detect import DetectionTrainer as TrainerBase
else:
    TrainerBase = object

__all__ = ["TrainerBase"]
