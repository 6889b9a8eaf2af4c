"""``yolocustom predict MODEL SOURCE [key=value ...]``: ``yolo predict`` with the model's per-class thresholds."""

from __future__ import annotations

from pathlib import Path

import typer

from yolocustom.commands._common import user_errors_exit_1
from yolocustom.errors import UserError


def register(app: typer.Typer) -> None:
    """Add the ``predict`` command to ``app``."""

    @app.command("predict", no_args_is_help=True)
    @user_errors_exit_1
    def predict(
        model: str = typer.Argument(..., help="A best.pt trained by yolocustom, or its export (e.g. best.onnx)."),
        source: str = typer.Argument(..., help="Images, a folder, a video, a glob or a URL, as for yolo predict."),
        args: list[str] = typer.Argument(
            None, help="yolo predict's key=value arguments, e.g. save_txt=True save_conf=True project=out name=p."
        ),
        thresholds: Path | None = typer.Option(
            None, "--thresholds", help="A thresholds.yaml to use instead of the model's own."
        ),
        conf: float | None = typer.Option(
            None, "--conf", min=0.0, max=1.0, help="One threshold for every class, as Ultralytics (no per-class)."
        ),
    ) -> None:
        """Predict as `yolo predict` does (same outputs, saving and streaming), each class at its own threshold.

        NMS runs at the lowest class threshold; then each class keeps the boxes (with their masks, keypoints or obb)
        at or above its threshold, before anything is saved.
        """
        from ultralytics import YOLO

        from yolocustom.commands._yolo_args import parse_yolo_args
        from yolocustom.thresholds import attach

        overrides = parse_yolo_args(args or [])
        if conf is not None:
            overrides["conf"] = conf
        yolo = YOLO(model)
        if "conf" in overrides:
            if thresholds is not None:
                raise UserError("--conf and --thresholds disagree: give one")
            print(f"One threshold for every class: conf={overrides['conf']} (per-class thresholds not applied)")
        else:
            flt = attach(yolo, thresholds)
            if flt is not None:
                shown = ", ".join(f"{n} {float(e['threshold']):.3f}" for n, e in flt.data["classes"].items())
                print(f"Per-class thresholds ({thresholds or 'stored with the model'}): {shown}")
        overrides.setdefault("save", True)  # as the yolo command (is_cli): annotated images are saved by default
        for _ in yolo.predict(source=source, stream=True, **overrides):  # streamed, as yolo's predict_cli
            pass
