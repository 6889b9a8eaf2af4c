"""Pre-flight, once: everything ``train`` resolves before any compute, as one plain-data ``RunPlan``.

The model file (downloaded if needed), its task, the dataset (downloaded if needed, labels checked and counted), the
run folder (named once, so every rank and every restart uses the same one, never a ``name-2``), whether to resume and
from which ``last.pt``, and the world layout. The factory, ``--dry-run``, every rank and resume read the plan and never
resolve again. Under a launcher, local rank 0 of each node runs the pre-flight (so downloads happen once per node)
while the node's other ranks wait, and global rank 0's plan is the one every rank uses.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolocustom.errors import UserError
from yolocustom.launcher import World
from yolocustom.recipe import Recipe
from yolocustom.resolve import ensure_dataset, resolve_model

if TYPE_CHECKING:
    from yolocustom.datasets import DatasetSpec

STAGES = ("fresh", "resume", "validate", "complete")


@dataclass(frozen=True)
class RunPlan:
    """What ``train`` will do, decided before any compute; plain data, picklable (rank 0 sends it to the others).

    Attributes:
        recipe (Recipe): The validated recipe (the checkpoint's, when resuming).
        task (str): The model's task (a key of ``tasks.TASKS``).
        model (str): What ``YOLO()`` loads: the model YAML, the local ``.pt`` (downloaded if needed), or the
            ``last.pt`` being resumed.
        save_dir (Path): The run folder, final (no further ``name-2`` increment by Ultralytics).
        stage (str): ``fresh``, ``resume`` (epochs left in ``resume_from``), ``validate`` (every epoch trained, the
            closing validation missing) or ``complete`` (nothing to do).
        resume_from (Path | None): The ``last.pt`` to resume.
        dataset (DatasetSpec | None): The dataset as resolved by pre-flight (None when resuming: the checkpoint's).
        train_counts (tuple[int, ...]): Train instances per class id counted by pre-flight (empty when resuming).
        world (World): This process's place in its launcher's group.
        device (str | None): Ultralytics' ``device`` for this rank (``cpu``, a CUDA index, or the recipe's).
        backend (str): ``gloo``/``nccl`` in a group, ``""`` for one process.
        note (str): Why the plan resumes or reuses a folder (printed by ``train`` and ``--dry-run``).
    """

    recipe: Recipe
    task: str
    model: str
    save_dir: Path
    stage: str = "fresh"
    resume_from: Path | None = None
    dataset: DatasetSpec | None = None
    train_counts: tuple[int, ...] = ()
    world: World = dataclasses.field(default_factory=World)
    device: str | None = None
    backend: str = ""
    note: str = ""

    @property
    def digest(self) -> str:
        """The recipe's SHA-256 (what a resumable ``last.pt`` must match)."""
        return self.recipe.digest()

    @property
    def global_batch(self) -> int:
        """``train.batch`` (Ultralytics default 16 if absent): the batch of one optimizer step, all ranks together."""
        from yolocustom.ultralytics_cfg import load_ultralytics_cfg

        return int(self.recipe.train.get("batch", load_ultralytics_cfg().defaults["batch"]))

    @property
    def rank_batch(self) -> int:
        """Images per step on this rank (the global batch split evenly, as Ultralytics' DDP does)."""
        return self.global_batch // max(self.world.size, 1)

    def for_rank(self, world: World, device: str | None, backend: str) -> RunPlan:
        """This plan (rank 0's) with this process's own place in the group."""
        return dataclasses.replace(self, world=world, device=device, backend=backend)


def preflight(recipe: Recipe, task: str = "detect") -> tuple[DatasetSpec, tuple[int, ...]]:
    """Check the dataset before any compute: it resolves (downloaded first if missing and the YAML says how), both
    splits have images, labels are readable and in the task's format (``label_counts.check_task_labels``).

    Corrupt label files are reported (Ultralytics would drop them with a warning during epoch setup); a train split
    with no usable label at all is an error.

    Returns:
        (tuple[DatasetSpec, tuple[int, ...]]): The dataset and its train instances per class id.
    """
    from yolocustom.datasets import split_image_files
    from yolocustom.label_counts import check_task_labels

    spec = ensure_dataset(recipe.data)
    train_counts: tuple[int, ...] = ()
    for split in ("train", "val"):
        images = split_image_files(spec, split)
        if not images:
            raise UserError(f"data: the '{split}' split of {recipe.data} has no images")
        counts = check_task_labels(spec, images, task)
        if split == "train":
            for file, reason in counts.rejected:
                print(f"warning: label file excluded, as Ultralytics will: {file}: {reason}")
            if counts.instances == 0:
                raise UserError(
                    f"data: no usable labels in the train split of {recipe.data} "
                    f"({counts.images} images, {len(counts.rejected)} label files rejected)"
                )
            train_counts = tuple(int(c) for c in counts.counts)
    return spec, train_counts


def run_folder(recipe: Recipe, task: str = "detect", increment: bool = False) -> Path:
    """The folder Ultralytics trains this recipe into, resolved its way.

    A relative ``train.project`` is not relative to the working directory: Ultralytics 8.4 puts it under its
    ``runs_dir`` setting and the task (``<runs_dir>/<task>/<project>/<name>``), and an absent one means
    ``<runs_dir>/<task>/train``.

    Args:
        recipe (Recipe): The recipe.
        task (str): Its task.
        increment (bool): Apply Ultralytics' ``name-2``, ``name-3``... increment when the folder exists and the recipe
            does not say ``exist_ok``: the folder a fresh run will really use. Else the un-incremented folder.
    """
    from types import SimpleNamespace

    from ultralytics.cfg import get_save_dir

    args = SimpleNamespace(
        project=recipe.train.get("project"),
        name=recipe.train.get("name"),
        task=task,
        mode="train",
        exist_ok=not increment or bool(recipe.train.get("exist_ok", False)),
        save_dir=None,
    )
    return Path(get_save_dir(args)).absolute()


def check_output_folder(folder: Path, what: str = "train.project") -> None:
    """Refuse, before any compute and before anything is written, a run folder that cannot be created or written.

    Walks up to the nearest existing ancestor of ``folder``: it must be a directory the process can write into (a
    regular file in the path, a read-only folder or a read-only file system are reported with the path at fault).

    Raises:
        UserError: Naming ``folder``, the path at fault and why.
    """
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what}: cannot create the run folder {folder}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what}: cannot create or write the run folder {folder}: {probe} is not writable")
    weights = folder / "weights"
    if weights.exists() and not (weights.is_dir() and os.access(weights, os.W_OK | os.X_OK)):
        raise UserError(f"{what}: cannot write checkpoints into {weights}: not a writable folder")


def check_batch(recipe: Recipe, world: World) -> None:
    """Refuse a global batch that a group cannot split evenly (Ultralytics' DDP gives each rank ``batch // world``).

    Raises:
        UserError: With the batch, the world size and the nearest batches that divide.
    """
    if not world.distributed:
        return
    from yolocustom.ultralytics_cfg import load_ultralytics_cfg

    batch = recipe.train.get("batch", load_ultralytics_cfg().defaults["batch"])
    if not isinstance(batch, int) or batch < 1:
        raise UserError(
            f"train.batch: expected a whole global batch for the {world.size} ranks of the group, found {batch!r} "
            "(AutoBatch, a negative or fractional batch, sizes one GPU only)"
        )
    if batch % world.size:
        lower, upper = batch // world.size * world.size, (batch // world.size + 1) * world.size
        hint = f"{lower} or {upper}" if lower else str(upper)
        raise UserError(
            f"train.batch: expected a multiple of the world size {world.size} (the global batch is split evenly across "
            f"ranks), found {batch}; use {hint}"
        )


def recorded_digest(folder: Path) -> str | None:
    """The recipe digest written in a run folder's ``recipe.yaml`` header (``# resolved by ...; sha256 D``)."""
    from yolocustom.features.recipe_record import RECIPE_FILE

    try:
        with open(folder / RECIPE_FILE, encoding="utf-8") as f:
            head = f.readline()
    except OSError:
        return None
    return head.rsplit("sha256 ", 1)[-1].strip() if "sha256 " in head else None


def checkpoint_digest(last: Path) -> str | None:
    """The recipe digest in a ``last.pt``'s yolocustom record (None for an unreadable or foreign file)."""
    from ultralytics.utils.patches import torch_load

    from yolocustom.features.recipe_record import CHECKPOINT_ATTR
    from yolocustom.training import checkpoint_is_complete

    if not (last.is_file() and checkpoint_is_complete(last)):
        return None
    try:
        ckpt = torch_load(last, map_location="cpu")
    except Exception:  # noqa: BLE001 - a foreign or damaged file is simply not this recipe's
        return None
    record = getattr(ckpt.get("ema") or ckpt.get("model"), CHECKPOINT_ATTR, None)
    return None if record is None else str(record.get("digest"))


def latest_run(recipe: Recipe, base: Path) -> Path | None:
    """This recipe's newest run folder: the last of ``base``, ``base-2``, ``base-3``... (Ultralytics' increments,
    ``increment_path``) when its ``recipe.yaml`` has the recipe's digest, else None."""
    from itertools import count

    newest = None
    for i in count(1):
        folder = base if i == 1 else base.with_name(f"{base.name}-{i}")
        if folder.exists():
            newest = folder
        elif i > 1:
            break  # increments are contiguous
    return newest if newest is not None and recorded_digest(newest) == recipe.digest() else None


def _resume_plan(recipe: Recipe, last: Path, world: World, note: str) -> RunPlan:
    from yolocustom.tasks import checkpoint_task
    from yolocustom.training import resume_state

    state = resume_state(last)
    stage = {"resume": "resume", "validate": "validate", "complete": "complete"}[state.stage]
    save_dir = last.resolve().parent.parent
    if stage != "complete":
        check_output_folder(save_dir, "--resume")
    return RunPlan(recipe, checkpoint_task(last), str(last), save_dir, stage, last, world=world, note=note)


def make_plan(
    recipe: Recipe, resume_from: Path | None = None, auto: bool = False, world: World | None = None
) -> RunPlan:
    """Resolve everything once (see the module docstring); the single-process form, or one rank's part of it.

    Args:
        recipe (Recipe): The validated recipe (the checkpoint's for ``--resume LAST``).
        resume_from (Path, optional): An explicit ``last.pt`` (``--resume``).
        auto (bool): ``--resume auto``: resume this recipe's latest run when its ``last.pt`` has the recipe's digest,
            else start fresh. Also what a torchrun restart does (``TORCHELASTIC_RESTART_COUNT`` > 0).
        world (World, optional): This process's group (one process by default).

    Raises:
        UserError: Anything pre-flight refuses (model, task, dataset, labels, run folder, batch split).
    """
    from yolocustom.tasks import resolve_task

    world = world or World()
    check_batch(recipe, world)
    if resume_from is not None:
        return _resume_plan(recipe, Path(resume_from), world, "")
    weights = resolve_model(recipe.model)  # a .pt is fetched first: its checkpoint says the task
    task = resolve_task(recipe, weights)
    base = run_folder(recipe, task)
    note = ""
    if auto or world.restart > 0:
        why = "--resume auto" if auto else f"torchrun restart {world.restart}"
        folder = latest_run(recipe, base)
        if folder is not None:
            last = folder / "weights" / "last.pt"
            if checkpoint_digest(last) == recipe.digest():
                plan = _resume_plan(recipe, last, world, f"{why}: resuming {last} (same recipe sha256)")
                if auto or plan.stage != "complete":
                    return plan
                # a restart never follows a finished attempt: a finished last.pt is an older run's (exist_ok reuse)
            if world.restart > 0:  # the first attempt died before its first checkpoint: start again in its folder
                spec, counts = preflight(recipe, task)
                check_output_folder(folder)
                note = f"{why}: no checkpoint yet in {folder}; starting again there"
                return RunPlan(recipe, task, weights, folder, dataset=spec, train_counts=counts, world=world, note=note)
        note = f"{why}: no last.pt of this recipe in {folder or base}; starting fresh"
    spec, counts = preflight(recipe, task)
    save_dir = run_folder(recipe, task, increment=True)
    check_output_folder(save_dir)
    return RunPlan(recipe, task, weights, save_dir, dataset=spec, train_counts=counts, world=world, note=note)


def make_group_plan(recipe: Recipe, resume_from: Path | None, auto: bool, world: World) -> RunPlan:
    """``make_plan`` for one rank of a launcher's group: join the group, let local rank 0 of each node run the
    pre-flight (downloads once per node) while its other ranks wait, then take global rank 0's plan.

    A failure on any rank stops every rank with that rank's message (``launcher.agree``).
    """
    import ultralytics  # noqa: F401 - before the group exists: importing it runs a barrier (its settings) when one does

    from yolocustom import launcher

    backend = launcher.join(world, recipe.ultralytics_device())
    device = "cpu" if backend == "gloo" else str(launcher.device_index(world))

    def step() -> RunPlan | None:
        return make_plan(recipe, resume_from, auto, world) if world.local_rank == 0 else None

    mine = launcher.agree(step, "pre-flight")
    plan = launcher.broadcast(mine)
    assert plan is not None  # global rank 0 is local rank 0 of its node
    return plan.for_rank(world, device, backend)


def train_overrides(plan: RunPlan) -> dict[str, Any]:
    """Ultralytics ``train()`` keyword arguments for a fresh run of the plan: the recipe's ``train`` block, its data
    and device, and the run folder the plan named (as an absolute project and name, so Ultralytics increments
    nothing and every rank agrees)."""
    from yolocustom.factory import train_overrides as recipe_overrides

    overrides = recipe_overrides(plan.recipe)
    if plan.device is not None:
        overrides["device"] = plan.device
    overrides.update(project=str(plan.save_dir.parent), name=plan.save_dir.name, exist_ok=True)
    return overrides
