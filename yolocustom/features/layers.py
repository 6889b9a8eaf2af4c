"""Resolve a recipe's layer spec (``backbone`` | N | [indices]) against a concrete model."""

from __future__ import annotations

from typing import Any

from yolocustom.errors import UserError


def resolve_layers(spec: str | int | list[int], model: Any, field: str) -> list[int]:
    """Return sorted layer indices for ``spec`` on ``model`` (a ``DetectionModel`` or one of its task subclasses).

    ``backbone`` is read from the model's own YAML (``len(model.yaml["backbone"])``): 11 layers for yolo26n and
    yolo11n, 10 for yolov8n. Hard-coding 10 is a classic bug.

    Args:
        spec: ``"backbone"``, an int N (layers 0..N-1) or explicit indices.
        model: The unwrapped detection model (has ``.yaml`` and ``.model``).
        field (str): The recipe field, for error messages.

    Raises:
        UserError: If the spec names layers the model does not have, or would cover the detection head.
    """
    n_layers = len(model.model)
    if isinstance(spec, str):  # "backbone", the only string form the schema admits
        return list(range(len(model.yaml["backbone"])))
    indices = list(range(int(spec))) if isinstance(spec, int) else sorted(set(spec))
    head = n_layers - 1
    bad = [i for i in indices if i >= head]
    if bad:
        name = model.yaml.get("yaml_file", "the model")
        raise UserError(
            f"{field}: expected layer indices below {head} ({name} has {n_layers} layers, 0-{head}, and layer {head} "
            f"is the head, which must stay trainable), found {bad[0]}"
        )
    return indices


def layer_prefixes(indices: list[int]) -> list[str]:
    """Ultralytics' parameter-name prefixes for layer indices (``model.3.`` does not match ``model.30.``)."""
    return [f"model.{i}." for i in indices]


def in_layers(param_name: str, prefixes: list[str]) -> bool:
    """Whether a (possibly ``module.``-prefixed, DDP-wrapped) parameter name belongs to one of the layers."""
    return any(p in param_name for p in prefixes)
