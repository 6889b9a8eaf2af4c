"""Joining a launcher's process group: torchrun (and Kubeflow PyTorchJob, which sets the same variables) or SLURM's
``srun``.

A launcher starts one process per device and describes the group in the environment. ``World.from_env`` reads it,
``export_env`` gives SLURM's variables the torchrun names Ultralytics reads at import time (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``), ``join`` initialises the default process group (gloo for ``device: cpu``, NCCL on
``cuda:LOCAL_RANK``), and ``agree`` makes a step that may fail on one rank end every rank with that rank's message
instead of leaving the others blocked in the next collective; ``preflight`` does the same before the group exists,
through the launcher's key-value store.

Nothing here imports torch at module level: the CLI reads the environment before Ultralytics is imported.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

from yolocustom.errors import UserError

T = TypeVar("T")

# Collectives (and the wait for a node's downloads) give up after this long instead of Ultralytics' 3 hours, so a rank
# that died without its launcher noticing ends the group in minutes; YOLOCUSTOM_DIST_TIMEOUT (seconds) overrides it.
DEFAULT_TIMEOUT_S = 1800
TORCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """Where this process stands in its launcher's group (one process, world size 1, without a launcher).

    Attributes:
        size (int): Processes in the group (``WORLD_SIZE``).
        rank (int): This process's global rank (``RANK``); only rank 0 writes the run folder.
        local_rank (int): Its rank on this node (``LOCAL_RANK``): its device index, and 0 downloads for the node.
        local_size (int): Processes on this node (``LOCAL_WORLD_SIZE``).
        nnodes (int): Nodes in the group.
        launcher (str): ``"torchrun"`` (also PyTorchJob), ``"slurm"``, or ``""`` (none).
        restart (int): ``TORCHELASTIC_RESTART_COUNT``: how many times torchrun restarted the group (0 at first).
        master (str): ``MASTER_ADDR:MASTER_PORT`` of the rendezvous, for messages.
    """

    size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_size: int = 1
    nnodes: int = 1
    launcher: str = ""
    restart: int = 0
    master: str = ""

    @property
    def distributed(self) -> bool:
        """Whether this process is one rank of a group of several."""
        return self.size > 1

    @property
    def writer(self) -> bool:
        """Whether this process writes the run folder (global rank 0)."""
        return self.rank == 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> World:
        """Read the group from torchrun's variables, else from ``srun``'s (``SLURM_PROCID`` in a job step).

        ``sbatch``'s own batch script also has ``SLURM_NTASKS``, but it is one process: only a step started by ``srun``
        (which sets ``SLURM_STEP_NUM_TASKS``) counts as a group.

        Raises:
            UserError: For a group whose variables are inconsistent, or SLURM without ``MASTER_ADDR``.
        """
        env = os.environ if env is None else env
        try:
            if "RANK" in env and "WORLD_SIZE" in env:
                size, rank = int(env["WORLD_SIZE"]), int(env["RANK"])
                local_rank = int(env.get("LOCAL_RANK", "0"))  # PyTorchJob without torchrun: one process per pod
                local_size = int(env.get("LOCAL_WORLD_SIZE", "1"))
                nnodes = int(env.get("GROUP_WORLD_SIZE", "0")) or max(size // max(local_size, 1), 1)
                launcher = "torchrun"
            elif "SLURM_PROCID" in env and "SLURM_STEP_NUM_TASKS" in env:
                size, rank = int(env["SLURM_STEP_NUM_TASKS"]), int(env["SLURM_PROCID"])
                local_rank = int(env.get("SLURM_LOCALID", "0"))
                nnodes = int(env.get("SLURM_STEP_NUM_NODES", env.get("SLURM_NNODES", "1")))
                local_size = _slurm_tasks_on_node(env, nnodes, size)
                launcher = "slurm"
            else:
                return cls(restart=int(env.get("TORCHELASTIC_RESTART_COUNT", "0")))
            restart = int(env.get("TORCHELASTIC_RESTART_COUNT", "0"))
        except ValueError as e:
            raise UserError(f"launcher: a rank variable is not an integer ({e})") from None
        if not (0 <= rank < size and 0 <= local_rank < max(local_size, 1)):
            raise UserError(
                f"launcher: expected 0 <= rank < world size and 0 <= local rank < local world size, found rank {rank} "
                f"of {size}, local rank {local_rank} of {local_size}"
            )
        if size > 1 and launcher == "slurm" and not env.get("MASTER_ADDR"):
            raise UserError(
                "launcher: srun started this process as rank "
                f"{rank} of {size}, but MASTER_ADDR is not set; export it in the sbatch script (the first node, "
                "e.g. MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1)) and MASTER_PORT"
            )
        master = f"{env.get('MASTER_ADDR', '')}:{env.get('MASTER_PORT', '')}"
        return cls(size, rank, local_rank, local_size, nnodes, launcher, restart, master)

    def torch_env(self) -> dict[str, str]:
        """The torchrun-style variables for this process (what ``export_env`` sets)."""
        return {
            "RANK": str(self.rank),
            "WORLD_SIZE": str(self.size),
            "LOCAL_RANK": str(self.local_rank),
            "LOCAL_WORLD_SIZE": str(self.local_size),
        }

    def describe(self) -> str:
        """One line: world size, this rank, nodes and launcher."""
        return (
            f"rank {self.rank} of {self.size} (local rank {self.local_rank} of {self.local_size} on this node, "
            f"{self.nnodes} node{'s' if self.nnodes != 1 else ''}, launcher {self.launcher or 'none'})"
        )


def _slurm_tasks_on_node(env: Mapping[str, str], nnodes: int, size: int) -> int:
    """Tasks on this node from ``SLURM_STEP_TASKS_PER_NODE``/``SLURM_TASKS_PER_NODE`` (``"4(x2)"``, ``"3,2"``)."""
    text = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE") or ""
    counts: list[int] = []
    for part in filter(None, text.split(",")):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if m:
            counts += [int(m.group(1))] * int(m.group(2) or 1)
    node = int(env.get("SLURM_NODEID", "0"))
    if node < len(counts):
        return counts[node]
    return max(size // max(nnodes, 1), 1)


def export_env(world: World) -> None:
    """Give a SLURM group the torchrun variable names, before Ultralytics is imported (it reads ``RANK``,
    ``LOCAL_RANK`` and ``WORLD_SIZE`` once, at import time, to decide which rank logs and saves)."""
    if world.launcher == "slurm":
        os.environ.update(world.torch_env())


def timeout() -> timedelta:
    """The collectives' timeout (``YOLOCUSTOM_DIST_TIMEOUT`` seconds, default 30 minutes)."""
    return timedelta(seconds=float(os.environ.get("YOLOCUSTOM_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))


def backend_for(device: str | None) -> str:
    """``gloo`` for a CPU group, ``nccl`` for CUDA (``device: auto`` picks CUDA when there is a GPU)."""
    if device == "cpu":
        return "gloo"
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


def device_index(world: World) -> int:
    """This rank's CUDA device: ``LOCAL_RANK``, or 0 when the launcher already gave each process one GPU
    (``CUDA_VISIBLE_DEVICES`` per task, as SLURM's ``--gpus-per-task`` does)."""
    import torch

    count = torch.cuda.device_count()
    if world.local_rank < count:
        return world.local_rank
    if count == 1:
        return 0
    raise UserError(
        f"launcher: local rank {world.local_rank} needs a GPU of its own, but this process sees {count} GPU(s); "
        "start one process per GPU (torchrun --nproc-per-node, srun --ntasks-per-node)"
    )


@functools.cache
def store(world: World) -> Any:
    """The launcher's key-value store for this attempt (environment rendezvous at ``MASTER_ADDR:MASTER_PORT``), opened
    once per process: the pre-flight before the group (``preflight``) and the group itself (``join``) share it.

    Raises:
        UserError: When the rendezvous cannot be reached.
    """
    import torch.distributed as dist

    os.environ.update(world.torch_env())  # env:// rendezvous reads these (a SLURM group has only SLURM_* names)
    try:
        found, _, _ = next(dist.rendezvous("env://", rank=world.rank, world_size=world.size, timeout=timeout()))
    except (RuntimeError, ValueError, TimeoutError) as e:
        raise UserError(
            f"launcher: rank {world.rank} of {world.size} could not reach the rendezvous at {world.master} "
            f"({type(e).__name__}: {e})"
        ) from None
    # the launcher's store outlives a torchrun restart: without a per-attempt prefix, a restarted rank could read a
    # dead rank's address (or a pre-flight verdict) from the previous attempt's keys
    return dist.PrefixStore(f"yolocustom/attempt_{world.restart}", found)


def join(world: World, device: str | None) -> str:
    """Initialise the default process group for ``world`` on the launcher's store; return the backend.

    For NCCL the CUDA device is selected first, so each rank talks from its own GPU.
    """
    import torch
    import torch.distributed as dist

    backend = backend_for(device)
    if dist.is_initialized():
        return backend
    kwargs: dict[str, Any] = {}
    if backend == "nccl":
        index = device_index(world)
        torch.cuda.set_device(index)
        kwargs["device_id"] = torch.device("cuda", index)
    shared = store(world)
    try:
        dist.init_process_group(
            backend, store=shared, rank=world.rank, world_size=world.size, timeout=timeout(), **kwargs
        )
    except (RuntimeError, ValueError, TimeoutError) as e:
        raise UserError(
            f"launcher: rank {world.rank} of {world.size} could not join the group at {world.master} "
            f"({type(e).__name__}: {e})"
        ) from None
    return backend


def preflight(world: World, step: Callable[[], T], report: Callable[[str], Any], what: str = "") -> T:
    """``agree`` for what runs before the process group exists (reading the recipe, whose device picks the backend),
    through the launcher's store; the group is one process without a launcher.

    Every rank runs ``step`` and posts its verdict. When any rank failed, every rank ``report``s a message (its own,
    or the first failing rank's, quoted), waits until every rank has reported, and exits 1: a launcher stops the other
    workers as soon as one exits, so a rank that exited before the others had spoken would silence them.

    Args:
        world (World): This process's place in the group.
        step (Callable[[], T]): The work; a ``UserError`` is a user's mistake, anything else a bug (traceback kept).
        report (Callable[[str], Any]): Prints a message as the command's error.
        what (str): What the step does, for the other ranks' message.
    """
    if not world.distributed:
        return step()
    shared = store(world)
    result: Any = None
    message: str | None = None
    try:
        result = step()
    except UserError as e:
        message = str(e)
        report(message)
    except Exception as e:
        import traceback

        traceback.print_exc()
        message = _bug(e)
    if message is not None and shared.add("preflight/failures", 1) == 1:
        shared.set("preflight/first", f"{world.rank}\n{message}")
    _store_barrier(shared, "preflight/verdicts", world.size)
    if shared.add("preflight/failures", 0) == 0:
        return result
    if message is None:
        rank, _, text = shared.get("preflight/first").decode().partition("\n")
        report(_stopped_by(int(rank), text, what))
    _store_barrier(shared, "preflight/reported", world.size)
    flush_and_exit(1)


def _store_barrier(shared: Any, key: str, size: int) -> None:
    """Wait until ``size`` processes have arrived at ``key`` (the last to arrive opens it), within ``timeout()``."""
    if shared.add(f"{key}/arrived", 1) == size:
        shared.set(f"{key}/open", "1")
    shared.wait([f"{key}/open"], timeout())


def leave() -> None:
    """Destroy the default process group, if any (every rank, at the end of a run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _group() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def agree(step: Callable[[], T], what: str = "") -> T:
    """Run ``step`` on this rank, then make every rank learn whether any rank failed.

    Without a process group it just runs ``step``. In a group, the first rank (lowest) that failed decides: that rank
    raises its own error (a ``UserError`` prints as one line; a bug keeps its traceback), every other rank raises a
    ``UserError`` quoting it, so the whole group stops with one message and exit 1 instead of blocking in the next
    collective.

    Args:
        step (Callable[[], T]): The work (pre-flight checks, downloads, building the plan).
        what (str): What the step does, for the other ranks' message.
    """
    if not _group():
        return step()
    import torch.distributed as dist

    result: Any = None
    error: BaseException | None = None
    try:
        result = step()
    except (UserError, Exception) as e:
        error = e
    message = None if error is None else (str(error) if isinstance(error, UserError) else _bug(error))
    messages: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(messages, message)
    failed = [(r, m) for r, m in enumerate(messages) if m is not None]
    if error is not None:
        raise error
    if failed:
        raise UserError(_stopped_by(*failed[0], what))
    return result


def _stopped_by(rank: int, text: str | None, what: str) -> str:
    return f"rank {rank} stopped the run{f' ({what})' if what else ''}: {text}"


def _bug(error: BaseException) -> str:
    return f"{type(error).__name__}: {error} (traceback in that rank's output)"


def broadcast(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (as is, without a group)."""
    if not _group():
        return obj
    import torch.distributed as dist

    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_tensor(tensor: Any) -> Any:
    """Overwrite ``tensor`` in place with rank 0's values (no-op without a group); returns it."""
    if _group():
        import torch.distributed as dist

        dist.broadcast(tensor, src=0)
    return tensor


@contextmanager
def alone() -> Iterator[None]:
    """Run a standalone Ultralytics validation on this rank only, as a single process would.

    Ultralytics' validators read ``RANK``/``LOCAL_RANK`` once at import: a validation started outside training on rank
    0 of a group would wait at a barrier and gather stats from ranks that are not validating. Within this block both
    read -1 in the validator modules (restored after), so the validation neither waits for nor merges other ranks.
    """
    import importlib

    modules = [
        importlib.import_module(m) for m in ("ultralytics.engine.validator", "ultralytics.models.yolo.detect.val")
    ]
    saved = [(m, name, getattr(m, name)) for m in modules for name in ("RANK", "LOCAL_RANK")]
    for m, name, _ in saved:
        setattr(m, name, -1)
    try:
        yield
    finally:
        for m, name, value in saved:
            setattr(m, name, value)


def interrupted_by_peer(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because another rank left the group (it died or was killed)."""
    text = f"{type(error).__name__}: {error}"
    return "DistBackendError" in text or bool(
        re.search(r"Connection (closed|reset) by peer|[Gg]loo.*(closed|reset|timed out)|NCCL.*(abort|timeout)", text)
    )


def rank_prefix(world: World) -> str:
    """``"rank 1: "`` inside a group, ``""`` for a single process (messages name the rank that speaks)."""
    return f"rank {world.rank}: " if world.distributed else ""


def flush_and_exit(code: int) -> NoReturn:
    """Exit a rank without Python's interpreter teardown, after flushing output: gloo's background threads sometimes
    abort in C++ destructors at exit ("terminate called without an active exception") after the run has finished,
    turning a clean exit 0 into a crash the launcher reports."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
