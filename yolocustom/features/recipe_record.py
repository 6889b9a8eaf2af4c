"""Always-on mixin: records the resolved recipe in the run folder and in every checkpoint, and keeps CSVs honest
across resume."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from yolocustom import __version__
from yolocustom.features._base import TrainerBase
from yolocustom.fsutil import atomic_write_text
from yolocustom.recipe import Recipe, validate_recipe

CHECKPOINT_ATTR = "yolocustom"  # attribute on the checkpointed model; travels inside last.pt / best.pt via the EMA
RECIPE_FILE = "recipe.yaml"


def trim_csv_after_epoch(path: Path, last_epoch: int) -> int:
    """Drop rows whose first column (1-based epoch) is > ``last_epoch``; return how many rows were dropped."""
    if not path.exists():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if not lines:
        return 0
    kept = [lines[0]]
    for line in lines[1:]:
        head = line.split(",", 1)[0].strip()
        try:
            keep = float(head) <= last_epoch
        except ValueError:
            keep = True
        if keep:
            kept.append(line)
    dropped = len(lines) - len(kept)
    if dropped:
        atomic_write_text(path, "".join(kept))
    return dropped


def strip_checkpoint(path: Path, updates: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ultralytics' ``strip_optimizer`` on ``path``, written to a temporary file that then replaces ``path``
    (``os.replace``): a kill or SIGTERM mid-write leaves the whole unstripped checkpoint, never half of one.

    Returns:
        (dict): The stripped checkpoint (empty when ``path`` is no Ultralytics checkpoint, which stays untouched).
    """
    from ultralytics.utils.torch_utils import strip_optimizer

    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        ckpt = strip_optimizer(path, s=str(tmp), updates=updates)
        if tmp.exists():
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ckpt


class RecipeRecordMixin(TrainerBase):
    """Record the recipe; changes nothing about the optimisation itself.

    Hooks:
        ``set_model_attributes``: the first point where the built model exists on every rank, and inside training, so
            under DDP it runs after Ultralytics' launcher has wiped the save dir. Attaches ``{recipe, digest}`` to the
            model (the EMA copy carries it into last.pt/best.pt, with the world size and node count of the run) and
            writes ``recipe.yaml`` on rank 0; removes a staged checkpoint a SIGKILL left mid-write (see ``save_model``).
        ``resume_training``: Ultralytics appends to results.csv after the epoch's row may already be there (a kill
            between ``save_metrics`` and ``save_model``); rows past the checkpoint's epoch are dropped so a resumed run
            has no duplicate epochs.
        ``save_model``: Ultralytics writes last.pt/best.pt in place, so a kill or a full disk mid-write leaves a
            truncated file and the previous checkpoint is already gone. The base method writes to temp names here, and
            each finished file replaces its target atomically (``os.replace``).
        ``final_eval``: Ultralytics strips last.pt and best.pt in place before the closing validation, so SIGTERM
            (preemption, eviction) mid-write would truncate both; the same steps, with each strip replacing its file
            atomically (``strip_checkpoint``), then Ultralytics' validation of best.pt unchanged.
    """

    yc_recipe_data: ClassVar[dict[str, Any]] = {}
    CSV_FILES: ClassVar[tuple[str, ...]] = ("results.csv", "f1_per_class.csv")  # per-epoch logs, results.csv first
    last: Path
    best: Path

    @property
    def yc_recipe(self) -> Recipe:
        """The validated recipe this trainer class was built from."""
        cached = self.__dict__.get("_yc_recipe")
        if cached is None:
            cached = self.__dict__["_yc_recipe"] = validate_recipe(dict(type(self).yc_recipe_data))
        return cached

    def set_model_attributes(self) -> None:
        super().set_model_attributes()
        from ultralytics.utils import RANK

        recipe = self.yc_recipe
        world = getattr(type(self), "yc_world", None) or {}
        record = {
            "recipe": recipe.resolved_dict(),
            "digest": recipe.digest(),
            "yolocustom": __version__,
            "world_size": int(world.get("size", 1)),  # processes that trained it (an audit of how the run was made)
            "nnodes": int(world.get("nnodes", 1)),
        }
        setattr(self.model, CHECKPOINT_ATTR, record)
        if RANK in {-1, 0}:
            import yaml

            for partial in Path(self.wdir).glob(".*.pt.partial"):  # a checkpoint write cut short by SIGKILL
                partial.unlink(missing_ok=True)
            if not self.resume:  # a fresh run into an existing folder (exist_ok): drop the old run's per-epoch rows
                for name in self.CSV_FILES[1:]:  # results.csv is Ultralytics' own, which it clears itself
                    (Path(self.save_dir) / name).unlink(missing_ok=True)

            text = f"# resolved by yolocustom {__version__}; sha256 {record['digest']}\n" + yaml.safe_dump(
                record["recipe"], sort_keys=False
            )
            atomic_write_text(Path(self.save_dir) / RECIPE_FILE, text)

    def resume_training(self, ckpt: Any) -> None:
        super().resume_training(ckpt)
        from ultralytics.utils import RANK

        if ckpt is not None and getattr(self, "resume", False) and RANK in {-1, 0}:
            for name in self.CSV_FILES:
                trim_csv_after_epoch(Path(self.save_dir) / name, self.start_epoch)

    def save_model(self) -> bool:
        last, best = Path(self.last), Path(self.best)
        staged = {last: last.with_name(f".{last.name}.partial"), best: best.with_name(f".{best.name}.partial")}
        self.last, self.best = staged[last], staged[best]
        try:
            saved = super().save_model()
        except BaseException:
            for tmp in staged.values():  # a failed write (disk full) leaves the previous checkpoints as they were
                tmp.unlink(missing_ok=True)
            raise
        finally:
            self.last, self.best = last, best
        for final, tmp in staged.items():
            if tmp.exists():
                os.replace(tmp, final)
        return saved

    def final_eval(self) -> None:
        from ultralytics.utils import LOCAL_RANK, LOGGER, RANK
        from ultralytics.utils.torch_utils import torch_distributed_zero_first

        model = self.best if self.best.exists() else None
        with torch_distributed_zero_first(LOCAL_RANK):  # strip only on rank 0 (Ultralytics' DDP); the others wait
            if RANK in {-1, 0}:
                ckpt = strip_checkpoint(self.last) if self.last.exists() else {}
                if model:
                    strip_checkpoint(self.best, updates={"train_results": ckpt.get("train_results")})
        if model:
            LOGGER.info(f"\nValidating {model}...")
            self.validator.args.plots = self.args.plots
            self.validator.args.compile = False  # as Ultralytics: compiling for one pass costs more than it saves
            self.metrics = self.validator(model=model)
            self.metrics.pop("fitness", None)
            self.epoch += 1  # log best metrics at step epochs+1, not overwriting the last epoch
            self.run_callbacks("on_fit_epoch_end")
            self.epoch -= 1
