"""The launcher examples (``examples/``) start ``yolocustom train`` the way the code expects: the command, the
environment they set, and the group the code reads from the variables each launcher gives a process."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import yaml

from yolocustom.launcher import World

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _sbatch() -> tuple[dict[str, str], list[str], dict[str, str]]:
    """``#SBATCH`` options, the ``srun`` command and the exported variables of examples/slurm.sbatch."""
    text = (EXAMPLES / "slurm.sbatch").read_text()
    options = dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(\S+))?", text, re.M))
    exports = dict(re.findall(r"^export (\w+)=(.+)$", text, re.M))
    srun = next(shlex.split(line) for line in text.splitlines() if line.startswith("srun "))
    return options, srun, exports


def test_sbatch_starts_one_task_per_gpu_running_yolocustom_train() -> None:
    assert subprocess.run(["bash", "-n", str(EXAMPLES / "slurm.sbatch")]).returncode == 0
    options, srun, exports = _sbatch()
    assert options["nodes"] == "2" and options["ntasks-per-node"] == options["gpus-per-node"] == "4"
    assert "requeue" in options and options["signal"].startswith("TERM@")  # preemption: SIGTERM, then requeue
    assert srun[0] == "srun" and "--kill-on-bad-exit=1" in srun
    cmd = srun[srun.index("yolocustom") :]
    assert cmd[:2] == ["yolocustom", "train"] and cmd[-2:] == ["--resume", "auto"]
    assert (EXAMPLES.parent / cmd[2]).is_file()  # a recipe of the repository
    assert "scontrol show hostnames" in exports["MASTER_ADDR"] and exports["MASTER_PORT"].isdigit()

    # what srun gives task 5 of this allocation (node 1, its second GPU), read as the code reads it
    nodes, per_node = int(options["nodes"]), int(options["ntasks-per-node"])
    task = {
        "SLURM_PROCID": "5",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "1",
        "SLURM_STEP_NUM_TASKS": str(nodes * per_node),
        "SLURM_STEP_NUM_NODES": str(nodes),
        "SLURM_STEP_TASKS_PER_NODE": f"{per_node}(x{nodes})",
        "SLURM_NTASKS": str(nodes * per_node),
        "MASTER_ADDR": "node-a",
        "MASTER_PORT": exports["MASTER_PORT"],
    }
    world = World.from_env(task)
    assert (world.size, world.rank, world.local_rank, world.local_size, world.nnodes) == (8, 5, 1, 4, 2)
    assert world.launcher == "slurm" and not world.writer
    # the batch script itself (no srun step) is one process, not rank 0 of 8 waiting for 7 others
    assert not World.from_env({k: v for k, v in task.items() if not k.startswith("SLURM_STEP")}).distributed


def _containers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    specs = doc["spec"]["pytorchReplicaSpecs"]
    return {role: spec["template"]["spec"]["containers"][0] for role, spec in specs.items()}


def test_pytorchjob_runs_torchrun_with_the_operator_variables() -> None:
    doc = yaml.safe_load((EXAMPLES / "pytorchjob.yaml").read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    specs = doc["spec"]["pytorchReplicaSpecs"]
    nnodes = sum(int(s["replicas"]) for s in specs.values())
    per_node = int(doc["spec"]["nprocPerNode"])
    assert (nnodes, per_node) == (2, 4)
    for role, container in _containers(doc).items():
        cmd = container["command"]
        assert cmd[0] == "torchrun" and "--nnodes" not in cmd  # the operator's PET_* variables say it
        assert cmd[cmd.index("-m") : cmd.index("-m") + 3] == ["-m", "yolocustom", "train"], role
        assert cmd[-2:] == ["--resume", "auto"]  # a restarted pod resumes the run
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == per_node
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["YOLO_OFFLINE"] == "1"
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert any(cmd[cmd.index("train") + 1].startswith(m + "/") for m in mounts)  # the recipe is on the volume

    # what torchrun (reading PET_*) gives worker process 2 of the Worker pod (node rank 1)
    worker = {"RANK": "6", "WORLD_SIZE": "8", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4", "GROUP_WORLD_SIZE": "2"}
    world = World.from_env({**worker, "MASTER_ADDR": "yolocustom-train-master-0", "MASTER_PORT": "23456"})
    assert (world.size, world.rank, world.local_rank, world.nnodes, world.launcher) == (8, 6, 2, 2, "torchrun")


def test_torchrun_script_starts_two_nodes() -> None:
    script = EXAMPLES / "torchrun-2-nodes.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    cmd = shlex.split(text[text.index("exec torchrun") :].replace("\\\n", " "))[1:]
    value = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--")}
    assert value["--nnodes"] == "2" and value["--node-rank"] == "$NODE_RANK"
    assert value["--master-addr"] == "$MASTER_ADDR" and int(value["--max-restarts"]) >= 1
    assert cmd[cmd.index("-m") : cmd.index("-m") + 3] == ["-m", "yolocustom", "train"]
