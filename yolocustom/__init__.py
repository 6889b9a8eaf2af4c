"""yolocustom: declarative recipes for Ultralytics YOLO detection training.

Import-light on purpose: ``yolocustom --help`` and ``validate-config`` must not pay for torch or ultralytics.
Use ``from yolocustom.factory import build_trainer`` for the trainer factory.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
