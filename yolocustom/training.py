"""Running a recipe: pre-flight checks, training through Ultralytics' normal path, resume, and the dry-run plan.

Imports torch/ultralytics lazily: the CLI imports this module only for ``train``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolocustom.errors import UserError
from yolocustom.recipe import Recipe, load_recipe, validate_recipe
from yolocustom.resolve import check_model_reference, resolve_model, ultralytics_output_to_stderr
from yolocustom.runplan import RunPlan, check_output_folder, make_plan, preflight, run_folder

__all__ = ["check_output_folder", "preflight", "resolve_model", "run_folder"]  # re-exported: their home is runplan

# OSError numbers that mean "the disk or the folder is the problem" rather than a bug: reported without a traceback
DISK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EACCES", "EPERM", "ENOTDIR", "EIO")
    if hasattr(errno, name)
)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by ``train``'s handler: training unwinds as on Ctrl-C (atomic writes discard
    their temporary files, the command names the last.pt to resume), and the exit status is 143."""


@dataclass
class TrainOutcome:
    """What a finished run produced."""

    save_dir: Path
    best: Path
    last: Path
    metrics: dict[str, float]


def recipe_from_checkpoint(path: Path) -> Recipe:
    """Rebuild the recipe a checkpoint was trained with (embedded record, else the run folder's recipe.yaml)."""
    from ultralytics.utils.patches import torch_load

    from yolocustom.features.recipe_record import CHECKPOINT_ATTR, RECIPE_FILE

    if not path.is_file():
        raise UserError(f"--resume: checkpoint {path} not found")
    try:
        ckpt = torch_load(path, map_location="cpu")
    except Exception as e:  # a truncated or foreign file: say so instead of a pickle traceback
        raise UserError(f"--resume: {path} is not a readable checkpoint ({type(e).__name__}: {e})") from None
    model = ckpt.get("ema") or ckpt.get("model")
    record = getattr(model, CHECKPOINT_ATTR, None)
    if record is not None:
        return validate_recipe(dict(record["recipe"]), source=f"{path} (embedded recipe)")
    save_dir = Path((ckpt.get("train_args") or {}).get("save_dir", path.parent.parent))
    if (save_dir / RECIPE_FILE).is_file():
        return load_recipe(save_dir / RECIPE_FILE)
    raise UserError(f"--resume: {path} was not trained by yolocustom (no embedded recipe, no {save_dir / RECIPE_FILE})")


def latest_checkpoint(search_dir: Path | None = None) -> Path:
    """The most recent ``last.pt`` under ``search_dir`` (Ultralytics' runs folder by default)."""
    from ultralytics.utils.files import get_latest_run

    found = get_latest_run(str(search_dir)) if search_dir else get_latest_run()
    if not found:
        raise UserError(f"--resume: no last.pt found under {search_dir or 'the runs folder'}")
    return Path(found)


def train(
    recipe: Recipe, resume_from: Path | None = None, callbacks: dict[str, Callable[[Any], None]] | None = None
) -> TrainOutcome:
    """Train with the recipe's features on its device, in this process (``tune`` and tests; the CLI plans first).

    Args:
        recipe (Recipe): The validated recipe.
        resume_from (Path, optional): A ``last.pt`` to resume; the trainer is rebuilt from ``recipe``.
        callbacks (dict, optional): Ultralytics callbacks (event -> function) added to the model, e.g. by ``tune``.
    """
    return train_plan(make_plan(recipe, resume_from), callbacks)


def train_plan(plan: RunPlan, callbacks: dict[str, Callable[[Any], None]] | None = None) -> TrainOutcome:
    """Train what ``plan`` says: fresh, resumed, or the missed closing validation (DDP through Ultralytics' launcher
    for a ``device`` list; one rank of the launcher's group when the plan's world has several processes).

    Args:
        plan (RunPlan): From ``runplan.make_plan`` (or ``make_group_plan`` on each rank).
        callbacks (dict, optional): Ultralytics callbacks (event -> function) added to the model.

    Raises:
        KeyboardInterrupt: Re-raised after the caller has been given the trainer (see ``train_command``).
    """
    from ultralytics import YOLO

    from yolocustom.factory import build_trainer
    from yolocustom.runplan import train_overrides

    trainer_cls = build_trainer(plan)
    if plan.stage == "complete":
        return TrainOutcome(plan.save_dir, plan.save_dir / "weights" / "best.pt", Path(plan.model), {})
    if plan.stage == "validate":
        return final_validation(trainer_cls, Path(plan.model))
    model = YOLO(plan.model)
    _ACTIVE["model"] = model
    _add_callbacks(model, callbacks)
    if plan.stage == "resume":
        device = {"device": plan.device} if plan.world.distributed else {}  # this rank's device, not the saved one
        model.train(resume=plan.model, trainer=trainer_cls, **device)
    else:
        model.train(trainer=trainer_cls, **train_overrides(plan))
    trainer = model.trainer
    metrics = getattr(trainer, "metrics", None) or {}
    return TrainOutcome(Path(trainer.save_dir), Path(trainer.best), Path(trainer.last), dict(metrics))


def _add_callbacks(model: Any, callbacks: dict[str, Callable[[Any], None]] | None) -> None:
    model.add_callback("on_pretrain_routine_start", drop_ultralytics_raytune)
    for event, fn in (callbacks or {}).items():
        model.add_callback(event, fn)


def drop_ultralytics_raytune(trainer: Any) -> None:
    """``on_pretrain_routine_start`` (runs right after Ultralytics adds its integrations): remove Ultralytics' Ray Tune
    callback, which is on whenever ray is installed. Outside a Tune session it only warns each run; inside one it
    would report each epoch a second time, without the recipe's fitness or a checkpoint (``yolocustom tune`` reports
    itself, see ``yolocustom/tune/runner.py``)."""
    for event, fns in trainer.callbacks.items():
        trainer.callbacks[event] = [
            f for f in fns if getattr(f, "__module__", "") != "ultralytics.utils.callbacks.raytune"
        ]


_ACTIVE: dict[str, Any] = {}  # the YOLO model of the run in progress, so an interrupt can name its last.pt


@dataclass
class ResumeState:
    """Where a ``last.pt`` stands, decided as Ultralytics decides it (``resume_training``'s ``start_epoch``).

    Attributes:
        stage (str): ``"resume"`` (epochs left), ``"validate"`` (every epoch trained, the closing validation of best.pt
            never ran: killed in between) or ``"complete"`` (``final_eval`` stripped the checkpoint: ``epoch == -1``).
        epoch (int): Epochs trained (0-based index of the last saved epoch + 1), or -1 when stripped.
        epochs (int): Epochs the run was set to train.
        best (Path): The run's best.pt.
    """

    stage: str
    epoch: int
    epochs: int
    best: Path

    def complete_message(self, last: Path) -> str:
        """The one line for ``--resume`` of a finished run."""
        best = f"best.pt: {self.best}" if self.best.is_file() else f"no best.pt was saved in {self.best.parent}"
        return f"Nothing to resume: the run of {last} is complete (all {self.epochs} epochs trained); {best}"


def resume_state(last: Path) -> ResumeState:
    """Read a ``last.pt``'s epoch counters (``recipe_from_checkpoint`` has already checked it is readable).

    ``final_eval`` strips the optimizer from last.pt (``epoch`` becomes -1) before it validates best.pt, so a stripped
    last.pt means the run is finished; an unstripped one whose saved epoch is the last means the process died between
    the last epoch and the closing validation. Time-limited runs (``time:``) only ever resume or complete.
    """
    from ultralytics.utils.patches import torch_load

    ckpt = torch_load(last, map_location="cpu")
    args = ckpt.get("train_args") or {}
    epoch = int(ckpt.get("epoch", -1))
    epochs = int(args.get("epochs") or 0)
    best = Path(last).parent / "best.pt"
    if epoch < 0:
        return ResumeState("complete", -1, epochs, best)
    stage = "validate" if epoch + 1 >= epochs and not args.get("time") else "resume"
    return ResumeState(stage, epoch + 1, epochs, best)


def final_validation(trainer_cls: type, last: Path) -> TrainOutcome:
    """Run the closing step a killed run missed, as Ultralytics' ``final_eval`` does: strip last.pt and best.pt, then
    validate best.pt with the run's own arguments and validator (plots included when the run had them).

    Args:
        trainer_cls (type): The trainer class rebuilt from the checkpoint's recipe.
        last (Path): The run's last.pt (every epoch trained).
    """
    from yolocustom.features.recipe_record import strip_checkpoint

    trainer = trainer_cls(overrides={"model": str(last), "resume": str(last)})  # arguments come from the checkpoint
    print(f"Every epoch of {last} was trained; running the closing validation of best.pt that the run missed")
    ckpt = strip_checkpoint(trainer.last) if Path(trainer.last).exists() else {}
    metrics: dict[str, float] = {}
    if Path(trainer.best).exists():
        strip_checkpoint(trainer.best, updates={"train_results": ckpt.get("train_results")})
        trainer.test_loader = None  # the validator builds its own loader from the run's data and arguments
        validator = trainer.get_validator()
        validator.args.plots = trainer.args.plots
        validator.args.compile = False
        metrics = dict(validator(model=trainer.best))
        metrics.pop("fitness", None)
        if hasattr(trainer, "yc_choose_thresholds"):  # features.thresholds: chosen on this validation, as final_eval
            trainer.yc_choose_thresholds(validator)
    return TrainOutcome(Path(trainer.save_dir), Path(trainer.best), Path(trainer.last), metrics)


def checkpoint_is_complete(path: Path) -> bool:
    """Whether ``path`` is a whole checkpoint file, cheaply: ``torch.save`` writes a zip archive whose central
    directory is at the end, so a file cut short by a kill or a full disk mid-write fails to open as a zip."""
    import zipfile

    try:
        with zipfile.ZipFile(path):
            return True
    except (OSError, zipfile.BadZipFile):
        return False


def active_checkpoint() -> Path | None:
    """The ``last.pt`` path of the run in progress (or just stopped), whether or not it exists or is whole."""
    trainer = getattr(_ACTIVE.get("model"), "trainer", None)
    last = getattr(trainer, "last", None)
    return Path(last) if last is not None else None


def interrupted_checkpoint() -> Path | None:
    """The ``last.pt`` of the run that was interrupted, if it wrote one and the file is complete."""
    last = active_checkpoint()
    return last if last is not None and last.exists() and checkpoint_is_complete(last) else None


def stop_hint() -> str:
    """One sentence for a run that stopped early: how to resume it, or why it cannot be resumed."""
    last = active_checkpoint()
    if last is None or not last.exists():
        return "No checkpoint had been written yet, so there is no last.pt to resume from."
    if not checkpoint_is_complete(last):
        return (
            f"{last} is incomplete (it was being written when training stopped), so this run cannot be resumed; "
            "start it again."
        )
    return f"Resume with: yolocustom train --resume {last}"


def dry_run(recipe: Recipe, verbose: bool = False, plan: RunPlan | None = None) -> str:
    """Build the model and trainer exactly as ``train`` would (data loaders, optimizer, class weights) and describe
    the plan, without running an epoch. Runs single-process on CPU when the recipe asks for several GPUs; under a
    launcher each rank builds its part (its shard, its per-rank batch) and says where it stands in the group.

    Args:
        recipe (Recipe): The validated recipe.
        verbose (bool): Let Ultralytics' set-up output through to stdout (else INFO is dropped, the rest on stderr).
        plan (RunPlan, optional): The run's plan when already made (under a launcher: this rank's).

    Returns:
        (str): The plan (under a launcher, on ranks other than 0: only the group section).
    """
    check_model_reference(recipe.model)
    quiet = contextlib.nullcontext() if verbose else ultralytics_output_to_stderr(logging.WARNING)
    with quiet:  # the plan alone on stdout, not 170 lines of set-up logs
        return _plan(plan or make_plan(recipe))


def _plan(plan: RunPlan) -> str:
    from yolocustom.factory import build_trainer, train_overrides
    from yolocustom.plan import describe_plan, describe_world

    trainer_cls = build_trainer(plan)
    with tempfile.TemporaryDirectory(prefix="yolocustom-dry-run-") as tmp:
        overrides = train_overrides(plan.recipe)
        device = overrides.get("device")
        note = ""
        if plan.world.distributed:
            overrides["device"] = plan.device
        elif isinstance(device, str) and "," in device:
            note = f"(planned on CPU in one process; the real run trains on devices {device} with DDP)"
            overrides["device"] = "cpu"
        overrides.update(model=plan.model, project=tmp, name="plan", exist_ok=True, plots=False)
        trainer = trainer_cls(overrides=overrides)
        if plan.world.distributed:
            trainer._setup_ddp()  # this rank's device; the group was joined by pre-flight
        trainer._setup_train()
        world = describe_world(plan, trainer)
        if plan.world.rank > 0:
            return world
        return describe_plan(trainer, plan.recipe, note) + world
