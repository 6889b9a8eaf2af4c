"""``yolocustom export MODEL format=... [key=value ...]``: ``yolo export`` with the per-class thresholds in the
exported model's metadata, where ``yolocustom predict``/``val`` read them back."""

from __future__ import annotations

from pathlib import Path

import typer

from yolocustom.commands._common import user_errors_exit_1


def register(app: typer.Typer) -> None:
    """Add the ``export`` command to ``app``."""

    @app.command("export", no_args_is_help=True)
    @user_errors_exit_1
    def export(
        model: str = typer.Argument(..., help="A best.pt trained by yolocustom."),
        args: list[str] = typer.Argument(None, help="yolo export's key=value arguments, e.g. format=onnx imgsz=320."),
        thresholds: Path | None = typer.Option(
            None, "--thresholds", help="A thresholds.yaml to embed instead of the model's own."
        ),
    ) -> None:
        """Export as `yolo export` does (format=onnx, torchscript, openvino...), thresholds included."""
        from ultralytics import YOLO

        from yolocustom.commands._yolo_args import parse_yolo_args
        from yolocustom.thresholds import METADATA_KEY, export_callback, load_thresholds, model_thresholds

        overrides = parse_yolo_args(args or [])
        yolo = YOLO(model)
        table = load_thresholds(thresholds) if thresholds is not None else model_thresholds(yolo)
        if table is not None:
            yolo.add_callback("on_export_start", export_callback(table))
        out = yolo.export(**overrides)
        if table is None:
            print(f"{model} has no yolocustom per-class thresholds: exported as plain Ultralytics")
        else:
            print(f"Per-class thresholds written into {out}'s metadata ({METADATA_KEY})")
