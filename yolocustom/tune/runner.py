"""Running a sweep on Ray Tune: one normal yolocustom run per trial, scheduled by the resources it asks for.

Each trial applies its sampled values to the recipe (the ``--set`` setter), trains it through ``training.train`` (the
factory's trainer, ``YOLO(...).train(trainer=...)``) into ``<sweep>/trials/<trial_id>/`` and reports every epoch to
Ray Tune from an ``on_fit_epoch_end`` callback, with ``last.pt`` as the trial's checkpoint. So ASHA can stop a poor
trial after any epoch, and a restored sweep resumes an interrupted trial from its last epoch instead of rerunning it.

Imports Ray (and, in trials, torch/Ultralytics) only in functions: ``yolocustom.commands.tune`` checks for Ray first.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from yolocustom.errors import UserError
from yolocustom.fsutil import atomic_write_text
from yolocustom.tasks import fitness_metric_names, metric_key
from yolocustom.tune.space import apply_config

SWEEP_FILE = "sweep.yaml"  # what --resume needs: base recipe, space, settings (YAML keeps int class-id keys)
TRIALS_DIR = "trials"  # the trials' run folders (recipe.yaml, weights/, results.csv)
TRIALS_CSV = "trials.csv"
BEST_RECIPE = "best.yaml"
PLOT = "metric_per_epoch.png"
METRIC_NAMES = ("fitness", *dict.fromkeys(metric_key(m) for m in fitness_metric_names() if m != "default"))
METRIC_PATTERN = re.compile(r"(train|val)/\w+_loss|lr/pg\d+")
UNFINISHED = ("PENDING", "RUNNING", "PAUSED")


@dataclass
class Sweep:
    """Everything a sweep needs, stored as ``sweep.yaml`` so ``--resume`` rebuilds it without the original files.

    Attributes:
        name (str): Sweep name (folder under ``project``).
        folder (str): Absolute sweep folder, ``<project>/<name>``.
        recipe_file (str): The recipe it started from.
        space_file (str): The space file.
        base (dict): The resolved base recipe (plain data).
        space (dict): The space as written (dotted path -> {domain: args}).
        metric (str): Reported metric to optimise.
        mode (str): 'max' or 'min'.
        scheduler (str): 'asha' or 'fifo'.
        samples (int): Ray Tune ``num_samples`` (each sample runs the whole grid).
        epochs (int): Epochs per trial (ASHA's ``max_t``).
        grace_period (int): ASHA: epochs before a trial can be stopped.
        reduction_factor (float): ASHA: keep the top 1/factor at each rung.
        cpus_per_trial (float): Ray resources per trial.
        gpus_per_trial (float): Ray resources per trial.
    """

    name: str
    folder: str
    recipe_file: str
    space_file: str
    base: dict[str, Any]
    space: dict[str, Any]
    metric: str = "fitness"
    mode: str = "max"
    scheduler: str = "asha"
    samples: int = 1
    epochs: int = 1
    grace_period: int = 1
    reduction_factor: float = 3
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    params: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        """The sweep folder."""
        return Path(self.folder)

    def save(self) -> None:
        """Write ``sweep.yaml`` into the sweep folder."""
        import yaml

        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / SWEEP_FILE, yaml.safe_dump(asdict(self), sort_keys=False))

    @classmethod
    def load(cls, folder: Path) -> Sweep:
        """Read the ``sweep.yaml`` of an earlier sweep (for ``--resume``)."""
        import yaml

        file = folder / SWEEP_FILE
        if not file.is_file():
            raise UserError(f"--resume: {folder} holds no {SWEEP_FILE}; is it a yolocustom tune folder?")
        return cls(**yaml.safe_load(file.read_text(encoding="utf-8")))


def check_metric(metric: str, mode: str | None) -> str:
    """Check a ``--metric`` name against what trials report; return the mode (losses minimise, the rest maximise)."""
    if metric not in METRIC_NAMES and not METRIC_PATTERN.fullmatch(metric):
        from yolocustom.recipe import suggest

        raise UserError(
            f"--metric: unknown metric '{metric}'{suggest(metric, list(METRIC_NAMES))} (expected one of "
            f"{', '.join(METRIC_NAMES)}, or a reported loss/LR such as val/box_loss, train/cls_loss, lr/pg0)"
        )
    return mode or ("min" if metric.endswith("_loss") else "max")


# -- inside a trial (a Ray worker process) --------------------------------------------------------------------------


def run_trial(config: dict[str, Any], sweep: dict[str, Any]) -> None:
    """Ray Tune function trainable: train the base recipe with ``config`` applied, as a normal yolocustom run.

    Args:
        config (dict): Dotted recipe path -> sampled value.
        sweep (dict): ``Sweep`` fields (plain data, shipped through Ray's object store).
    """
    from ray import tune

    from yolocustom import training
    from yolocustom.recipe import validate_recipe

    trial_id = tune.get_context().get_trial_id()
    run_dir = Path(sweep["folder"]) / TRIALS_DIR / trial_id
    data = apply_config(sweep["base"], config)
    data.setdefault("train", {}).update(project=str(run_dir.parent), name=run_dir.name, exist_ok=True)
    gpus = sweep["gpus_per_trial"]
    if gpus > 0:  # Ray shows the trial only its own GPUs, numbered from 0
        data["device"] = ",".join(str(i) for i in range(max(1, math.floor(gpus))))
    recipe = validate_recipe(data, source=f"trial {trial_id}")
    resume_from = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # a restored sweep: continue from the last epoch Ray recorded, in the same folder
        if checkpoint.get_metadata().get("epoch", 0) >= recipe.train_epochs():
            return  # stopped after its last report, before Ray recorded the end: nothing left to train
        checkpoint.to_directory(str(run_dir / "weights"))
        resume_from = run_dir / "weights" / "last.pt"
    training.train(
        recipe,
        resume_from,
        callbacks={"on_fit_epoch_end": report_epoch},  # training.train drops Ultralytics' own Ray Tune reports
    )


def report_epoch(trainer: Any) -> None:
    """``on_fit_epoch_end``: report the epoch's losses, metrics, LRs and the recipe's fitness to Ray Tune, with
    ``last.pt`` (already saved this epoch) as the checkpoint. Each report is one Ray iteration, i.e. one epoch."""
    from ray import tune

    if trainer.epoch >= trainer.epochs:  # final_eval's extra call (best.pt's metrics at epoch N+1): not an epoch
        return
    values = {**trainer.label_loss_items(trainer.tloss, prefix="train"), **trainer.metrics, **trainer.lr}
    metrics: dict[str, Any] = {k: float(v) for k, v in values.items()}
    metrics["fitness"] = float(trainer.fitness) if trainer.fitness is not None else math.nan
    metrics["epoch"] = trainer.epoch + 1
    metrics["run_dir"] = str(trainer.save_dir)
    last = Path(trainer.last)
    if not last.is_file():
        tune.report(metrics)
        return
    staging = Path(trainer.save_dir) / ".tune-checkpoint"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        try:
            os.link(last, staging / last.name)  # same file system: no copy; Ray copies it into the sweep folder
        except OSError:
            shutil.copy2(last, staging / last.name)
        checkpoint = tune.Checkpoint.from_directory(str(staging))
        checkpoint.set_metadata({"epoch": metrics["epoch"]})
        tune.report(metrics, checkpoint=checkpoint)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# -- the driver -------------------------------------------------------------------------------------------------------


def _ray_trial_dirname(trial: Any) -> str:
    return f"ray-{trial.trial_id}"


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[None]:
    """Use Ray: a running session as it is, a cluster at ``address``, or a local instance shut down afterwards."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"--address {address}: cannot connect to a Ray cluster: {e}") from None
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _check_resources(sweep: Sweep) -> None:
    """Refuse, before any trial, a trial size no node of the cluster can hold (Ray would wait forever)."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for kind, need in (("CPU", sweep.cpus_per_trial), ("GPU", sweep.gpus_per_trial)):
        most = max((n.get(kind, 0) for n in nodes), default=0)
        if need > most:
            flag = f"--{kind.lower()}s-per-trial"
            raise UserError(f"{flag} {need:g}: no node of the Ray cluster has that many {kind}s (largest: {most:g})")


def tune_sweep(sweep: Sweep, space_data: Any, resume: bool, address: str | None) -> list[dict[str, Any]]:
    """Run (or resume) the sweep on Ray Tune and write its results.

    Args:
        sweep (Sweep): The settings (saved as ``sweep.json`` on a fresh start).
        space_data (Any): The Ray ``param_space`` (ignored when resuming: Ray restores its own).
        resume (bool): Continue an interrupted sweep with ``Tuner.restore``.
        address (str, optional): Ray cluster address; local instance when None.

    Returns:
        (list[dict]): One row per trial, ranked best first (see :func:`collect`).
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from yolocustom.tune.progress import TrialLines

    # Ray warns on every frequent state snapshot; per-epoch checkpoints of short trials make them frequent by design
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    with ray_session(address):
        _check_resources(sweep)
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, sweep=asdict(sweep)),
            {"cpu": sweep.cpus_per_trial, "gpu": sweep.gpus_per_trial},
        )
        if resume:
            if not tune.Tuner.can_restore(str(sweep.path)):
                raise UserError(f"--resume: {sweep.path} holds no Ray Tune state to restore (stopped before it ran)")
            tuner = tune.Tuner.restore(str(sweep.path), trainable=trainable, resume_unfinished=True)
        else:
            sweep.save()
            scheduler = (
                ASHAScheduler(
                    time_attr="training_iteration",
                    max_t=sweep.epochs,
                    grace_period=min(sweep.grace_period, sweep.epochs),
                    reduction_factor=sweep.reduction_factor,
                    # a trial reporting its last epoch runs on into Ultralytics' final_eval (best.pt validated and
                    # stripped, thresholds chosen); stopping it there would cut that off inside on_fit_epoch_end
                    stop_last_trials=False,
                )
                if sweep.scheduler == "asha"
                else FIFOScheduler()
            )
            tuner = tune.Tuner(
                trainable,
                param_space=space_data,
                tune_config=tune.TuneConfig(
                    metric=sweep.metric,
                    mode=sweep.mode,
                    scheduler=scheduler,
                    num_samples=sweep.samples,
                    trial_dirname_creator=_ray_trial_dirname,
                ),
                run_config=tune.RunConfig(
                    name=sweep.name,
                    storage_path=str(sweep.path.parent),
                    failure_config=tune.FailureConfig(max_failures=0),  # a crashing trial is recorded, not retried
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                    callbacks=[TrialLines(sweep.metric, sweep.epochs)],
                    verbose=0,
                ),
            )
        tuner.fit()
        return collect(sweep)  # inside the session: Ray reads errored trials' records through it


def collect(sweep: Sweep) -> list[dict[str, Any]]:
    """Read every trial back from Ray's experiment record; write ``trials.csv``, ``best.yaml`` and the plot.

    Returns:
        (list[dict]): Rows ranked best first: trial, status, best metric, epochs, run folder, error, config values.
    """
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(sweep.path))
    frames = analysis.trial_dataframes
    rows = []
    curves: dict[str, tuple[list[int], list[float]]] = {}
    for trial in analysis.trials:
        frame = frames.get(trial.trial_id)
        values: list[float] = []
        epochs: list[int] = []
        if frame is not None and sweep.metric in frame:
            values = [float(v) for v in frame[sweep.metric]]
            epochs = [int(e) for e in frame["epoch"]] if "epoch" in frame else list(range(1, len(values) + 1))
        curves[trial.trial_id] = (epochs, values)
        finite = [v for v in values if not math.isnan(v)]
        best = (max if sweep.mode == "max" else min)(finite) if finite else None
        status = _status(trial.status, len(values), sweep.epochs)
        rows.append(
            {
                "trial": trial.trial_id,
                "status": status,
                f"best {sweep.metric}": best,
                "epochs": len(values),
                "run_folder": str(sweep.path / TRIALS_DIR / trial.trial_id),
                "error": _error_text(trial) if trial.status == "ERROR" else "",
                **{p: trial.config.get(p) for p in sweep.params},
            }
        )
    key = f"best {sweep.metric}"
    sign = -1 if sweep.mode == "max" else 1
    rows.sort(key=lambda r: (r[key] is None, sign * (r[key] or 0.0), r["trial"]))
    _write_csv(sweep.path / TRIALS_CSV, rows)
    labels = {
        r["trial"]: f"{r['trial']} " + ", ".join(f"{p.split('.')[-1]}={r[p]!r}" for p in sweep.params) for r in rows
    }
    _plot(sweep, {labels[t]: c for t, c in sorted(curves.items())}, sweep.path / PLOT)
    best_row = next((r for r in rows if r[key] is not None), None)
    if best_row is not None:
        write_best_recipe(sweep, best_row)
    return rows


def _status(ray_status: str, epochs: int, planned: int) -> str:
    """completed, stopped early (by the scheduler, or by Ultralytics' own ``patience``), error or unfinished."""
    if ray_status == "ERROR":
        return "error"
    if ray_status in UNFINISHED:
        return "unfinished"
    return "completed" if epochs >= planned else "stopped early"


def _error_text(trial: Any) -> str:
    """The last line of the trial's error (Ray keeps the whole traceback in the trial folder's error.txt)."""
    try:
        text = Path(trial.error_file).read_text(encoding="utf-8") if trial.error_file else ""
    except OSError:
        text = ""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "failed (no error text recorded)"


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def _plot(sweep: Sweep, curves: dict[str, tuple[list[int], list[float]]], path: Path) -> None:
    """The metric per epoch for every trial, one line each (log scale when the values span decades)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for label, (epochs, values) in curves.items():
        if values:
            ax.plot(epochs, values, marker="o", label=label)
    finite = [v for _, values in curves.values() for v in values if not math.isnan(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 20:
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel=sweep.metric, title=f"{sweep.name}: {sweep.metric} per epoch ({sweep.mode})")
    if curves:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def best_recipe_data(sweep: Sweep, config: dict[str, Any]) -> dict[str, Any]:
    """The complete recipe a trial ran, without its per-trial placement (``train.project/name`` of the base)."""
    from yolocustom.recipe import validate_recipe

    return validate_recipe(apply_config(sweep.base, config), source=BEST_RECIPE).resolved_dict()


def write_best_recipe(sweep: Sweep, row: dict[str, Any]) -> Path:
    """Write ``best.yaml``: the winning trial's complete recipe, which validates and trains as it is."""
    import yaml

    data = best_recipe_data(sweep, {p: row[p] for p in sweep.params})
    header = (
        f"# best of yolocustom tune sweep '{sweep.name}': trial {row['trial']}, "
        f"{sweep.metric} = {row[f'best {sweep.metric}']:.6g} ({sweep.mode}); run folder {row['run_folder']}\n"
    )
    path = sweep.path / BEST_RECIPE
    atomic_write_text(path, header + yaml.safe_dump(data, sort_keys=False))
    return path


def unfinished(rows: list[dict[str, Any]]) -> int:
    """How many trials an interruption left unfinished."""
    return sum(r["status"] == "unfinished" for r in rows)
