"""``yolocustom val MODEL --data D [key=value ...]``: Ultralytics' validation plus a per-class table at the model's
deployed thresholds."""

from __future__ import annotations

from pathlib import Path

import typer

from yolocustom.commands._common import user_errors_exit_1


def register(app: typer.Typer) -> None:
    """Add the ``val`` command to ``app``."""

    @app.command("val", no_args_is_help=True)
    @user_errors_exit_1
    def val(
        model: str = typer.Argument(..., help="A best.pt trained by yolocustom, or its export (e.g. best.onnx)."),
        args: list[str] = typer.Argument(None, help="yolo val's key=value arguments, e.g. split=test imgsz=320."),
        data: str | None = typer.Option(None, "--data", help="Dataset YAML (default: the one the model trained on)."),
        thresholds: Path | None = typer.Option(
            None, "--thresholds", help="A thresholds.yaml to use instead of the model's own."
        ),
    ) -> None:
        """Validate as `yolo val` does, but as predict predicts (square letterbox, one label per box), then show each
        class's P, R, F1, false positives and misses at its deployed threshold: what the model does in production."""
        from ultralytics import YOLO

        from yolocustom.commands._yolo_args import parse_yolo_args
        from yolocustom.thresholds import deployed_table, load_thresholds, model_thresholds, predict_like_validator

        overrides = parse_yolo_args(args or [], {"data": "use --data"})
        if data is not None:
            overrides["data"] = data
        # validated as predict predicts (and as the thresholds were chosen): square letterbox, one label per box; yolo
        # val's rect batches add a half-stride pad and its NMS is multi-label
        overrides.setdefault("rect", False)
        yolo = YOLO(model)
        table = load_thresholds(thresholds) if thresholds is not None else model_thresholds(yolo)
        validator_cls = predict_like_validator(yolo.task_map[yolo.task]["validator"])
        metrics = yolo.val(validator=validator_cls, **overrides)
        if table is None:
            print(f"\n{model} has no yolocustom per-class thresholds: Ultralytics' table above is the whole story")
            return
        print("\n" + deployed_table(table, getattr(metrics, "yc_stats", {}), yolo.names))
