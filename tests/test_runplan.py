"""The run plan: resolved once (model, task, dataset, label counts, run folder, resume decision, world layout), and
the group a launcher describes in the environment."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from conftest import write_recipe

from yolocustom.errors import UserError
from yolocustom.launcher import World
from yolocustom.recipe import load_recipe
from yolocustom.runplan import check_batch, make_plan


def test_world_from_torchrun_slurm_and_nothing() -> None:
    torchrun = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_WORLD_SIZE": "2"}
    world = World.from_env({**torchrun, "TORCHELASTIC_RESTART_COUNT": "1", "MASTER_ADDR": "a", "MASTER_PORT": "1"})
    assert (world.size, world.rank, world.local_rank, world.nnodes, world.restart) == (4, 3, 1, 2, 1)
    assert world.distributed and not world.writer and world.launcher == "torchrun"
    # PyTorchJob without torchrun: one process per pod, no LOCAL_RANK
    pod = World.from_env({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "m", "MASTER_PORT": "23456"})
    assert (pod.local_rank, pod.local_size, pod.nnodes) == (0, 1, 2)

    slurm = {"SLURM_PROCID": "2", "SLURM_LOCALID": "0", "SLURM_NODEID": "1", "SLURM_STEP_NUM_TASKS": "3"}
    slurm |= {"SLURM_STEP_NUM_NODES": "2", "SLURM_STEP_TASKS_PER_NODE": "2,1", "MASTER_ADDR": "n0", "MASTER_PORT": "1"}
    world = World.from_env(slurm)
    assert (world.size, world.rank, world.local_rank, world.local_size, world.nnodes) == (3, 2, 0, 1, 2)
    assert world.torch_env() == {"RANK": "2", "WORLD_SIZE": "3", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}

    assert World.from_env({}) == World()
    with pytest.raises(UserError, match="MASTER_ADDR is not set"):
        World.from_env({k: v for k, v in slurm.items() if k != "MASTER_ADDR"})
    with pytest.raises(UserError, match="found rank 4 of 4"):
        World.from_env({**torchrun, "RANK": "4"})


def test_global_batch_must_split_evenly(tmp_path: Path, coco8_yaml: Path) -> None:
    group = World(size=4, rank=0, local_size=4)
    check_batch(load_recipe(write_recipe(tmp_path, coco8_yaml, batch=8)), group)
    with pytest.raises(UserError, match=r"expected a multiple of the world size 4 .* found 10; use 8 or 12"):
        check_batch(load_recipe(write_recipe(tmp_path, coco8_yaml, batch=10)), group)
    with pytest.raises(UserError, match="found -1 .*AutoBatch"):
        check_batch(load_recipe(write_recipe(tmp_path, coco8_yaml, batch=-1)), group)
    check_batch(load_recipe(write_recipe(tmp_path, coco8_yaml, batch=-1)), World())  # one process: Ultralytics' call


def test_plan_resolves_everything_once(tmp_path: Path, coco8_yaml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from yolocustom import factory, resolve, tasks

    recipe = load_recipe(write_recipe(tmp_path, coco8_yaml, {"class_weights": {"auto": "inverse"}}, exist_ok=False))
    plan = make_plan(recipe)
    assert (plan.stage, plan.task, plan.model, plan.save_dir) == (
        "fresh",
        "detect",
        "yolo26n.yaml",
        tmp_path / "runs/run",
    )
    assert plan.dataset is not None and plan.dataset.nc == len(plan.train_counts) == 80
    assert sum(plan.train_counts) > 0 and plan.world == World()

    def resolved_again(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("resolved again after the plan")

    for module, name in ((factory, "resolve_model"), (factory, "resolve_task"), (resolve, "ensure_dataset")):
        monkeypatch.setattr(module, name, resolved_again)
    monkeypatch.setattr(tasks, "checkpoint_task", resolved_again)
    trainer_cls = factory.build_trainer(plan)
    assert trainer_cls.yc_task == "detect" and trainer_cls.yc_world == {"size": 1, "nnodes": 1, "backend": ""}


@functools.cache
def _model() -> Any:
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel("yolo26n.yaml", nc=80, verbose=False)


def _checkpoint(path: Path, digest: str, epoch: int, epochs: int = 3) -> None:
    """A last.pt as Ultralytics saves it (a real model, its EMA carrying yolocustom's record), without training."""
    import torch

    model = _model()
    model.yolocustom = {"digest": digest, "recipe": {}, "world_size": 2, "nnodes": 1}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": epoch, "ema": model, "model": None, "train_args": {"epochs": epochs, "task": "detect"}}, path)


def test_resume_auto_and_restart_decide_the_folder(tmp_path: Path, coco8_yaml: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path, coco8_yaml, exist_ok=False))
    runs = tmp_path / "runs"
    folder = runs / "run"
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(f"# resolved by yolocustom 0; sha256 {recipe.digest()}\nmodel: x\n")

    # a torchrun restart before the first checkpoint: the same folder again, never run-2
    restarted = make_plan(recipe, world=World(restart=1))
    assert (restarted.stage, restarted.save_dir) == ("fresh", folder) and "starting again there" in restarted.note
    # --resume auto without a checkpoint: a fresh run, named as Ultralytics names it
    fresh = make_plan(recipe, auto=True)
    assert (fresh.stage, fresh.save_dir) == ("fresh", runs / "run-2")

    last = folder / "weights" / "last.pt"
    _checkpoint(last, "another recipe", epoch=0)
    assert make_plan(recipe, auto=True).save_dir == runs / "run-2"  # not this recipe's checkpoint: not resumed

    _checkpoint(last, recipe.digest(), epoch=0)
    for plan in (make_plan(recipe, auto=True), make_plan(recipe, world=World(restart=1))):
        assert (plan.stage, plan.resume_from, plan.save_dir, plan.model) == ("resume", last, folder, str(last))
        assert "resuming" in plan.note

    _checkpoint(last, recipe.digest(), epoch=-1)  # stripped by the closing validation: the run is finished
    assert make_plan(recipe, auto=True).stage == "complete"
    # a torchrun restart follows a failed attempt, never a finished one: that last.pt is an older run's, start again
    assert make_plan(recipe, world=World(restart=1)).stage == "fresh"
