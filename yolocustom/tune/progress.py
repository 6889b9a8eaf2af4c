"""One line per trial event on the driver, instead of Ray Tune's full result tables (kept in the sweep folder)."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback


class TrialLines(Callback):
    """Print trial start, each epoch's metric, completion and errors as single lines.

    Args:
        metric (str): The sweep's metric, shown with each epoch.
        epochs (int): Epochs per trial.
    """

    def __init__(self, metric: str, epochs: int):
        self.metric = metric
        self.epochs = epochs

    def _say(self, trial: Any, text: str) -> None:
        values = ", ".join(f"{k}={v!r}" for k, v in trial.config.items())
        print(f"[trial {trial.trial_id} {values}] {text}", flush=True)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._say(trial, "started")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric)
        shown = f"{value:.4f}" if isinstance(value, float) else value
        self._say(trial, f"epoch {result.get('epoch')}/{self.epochs} {self.metric}={shown}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._say(trial, "finished")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._say(trial, f"FAILED (error recorded in {trial.path}/error.txt)")
