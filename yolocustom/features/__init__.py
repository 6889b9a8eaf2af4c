"""One mixin per feature. Each overrides the Ultralytics ``DetectionTrainer`` hook(s) named in its docstring.

The factory composes them in ``FEATURE_ORDER`` (outermost first); see ``yolocustom.factory``.
"""
