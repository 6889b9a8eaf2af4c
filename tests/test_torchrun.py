"""``yolocustom train`` as ranks of a real launcher's group: torchrun (one node, two simulated nodes) and SLURM's
variables, on CPU with gloo over 127.0.0.1. Nothing of torch.distributed is mocked: each rank is the real CLI.

The probe in ``tests/ddp_probe`` (a ``sitecustomize`` on the ranks' ``PYTHONPATH``) records every rank's parameter
hash, class weights and sampler shard after each epoch; the product code has no test hook.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest
from conftest import read_csv, write_recipe
from torchrun_helpers import (
    ALL_FEATURES,
    TRAIN,
    env,
    free_port,
    probe_rows,
    run,
    torchrun_cmd,
    two_nodes,
)


def _record(last: Path) -> dict[str, Any]:
    from ultralytics.utils.patches import torch_load

    from yolocustom.features.recipe_record import CHECKPOINT_ATTR

    ckpt = torch_load(last, map_location="cpu")
    return dict(getattr(ckpt.get("ema") or ckpt["model"], CHECKPOINT_ATTR))


def check_group_run(runs: Path, probe: Path, nnodes: int) -> None:
    """The checks every multi-process run must pass (one folder, each epoch once, identical ranks, disjoint shards)."""
    assert [p.name for p in runs.iterdir()] == ["run"], "one run folder, no name-2 from a racing rank"
    folder = runs / "run"
    assert [int(float(r["epoch"])) for r in read_csv(folder / "results.csv")] == [1, 2, 3]
    for name in ("metrics_per_class.csv", "f1_per_class.csv", "recipe.yaml", "class_weights.json", "thresholds.yaml"):
        assert (folder / name).is_file(), name
    assert sorted({int(r["epoch"]) for r in read_csv(folder / "metrics_per_class.csv")}) == [1, 2, 3]
    record = _record(folder / "weights" / "last.pt")
    assert (record["world_size"], record["nnodes"]) == (2, nnodes)

    rows = probe_rows(probe)
    assert sorted(rows) == [0, 1]
    for r in (0, 1):
        assert [row["epoch"] for row in rows[r]] == [0, 1, 2], rows[r]
    for a, b in zip(rows[0], rows[1]):
        # the same parameters after every epoch: gradients all-reduced, re-wrapped after each unfreeze
        assert (a["model"], a["ema"]) == (b["model"], b["ema"]), f"ranks diverged after epoch {a['epoch'] + 1}"
        assert a["class_weights"] == b["class_weights"]
        assert a["save_dir"] == b["save_dir"] == str(folder)
        assert (a["world_size"], a["batch"], a["sampler"]) == (2, 2, "RepeatFactorSampler")  # global 4 = 2 per rank
        # one seeded draw, identical on both ranks; rank k takes positions k, k+2, ... (padded to a multiple of 2)
        assert a["draw"] == b["draw"]
        padded = (a["draw"] * 2)[: len(a["shard"]) * 2]
        assert a["shard"] == padded[0::2] and b["shard"] == padded[1::2]
        assert collections.Counter(a["shard"]) + collections.Counter(b["shard"]) == collections.Counter(padded)
    assert len({row["model"] for row in rows[0]}) == 3  # the weights moved every epoch: the check is not vacuous


def test_torchrun_one_node_two_ranks_every_feature(tmp_path: Path, coco8_yaml: Path) -> None:
    recipe = write_recipe(tmp_path, coco8_yaml, ALL_FEATURES, **TRAIN)
    probe = tmp_path / "probe"
    port = str(free_port())
    cmd = torchrun_cmd(
        "--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port, recipe=recipe
    )
    done = run(cmd, env(probe), tmp_path)
    assert done.returncode == 0, done.output[-4000:]
    assert done.output.count("Run folder:") == 1  # rank 0 reports; the other rank stays quiet
    assert "Traceback" not in done.output
    check_group_run(tmp_path / "runs", probe, nnodes=1)


@pytest.mark.drill
def test_torchrun_two_nodes_every_feature(tmp_path: Path, coco8_yaml: Path) -> None:
    """Two nodes simulated by two torchrun agents on 127.0.0.1 (static rendezvous), one worker each. A drill: the
    same training as the one-node test again (about 45 s here), with the node count as the only difference."""
    recipe = write_recipe(tmp_path, coco8_yaml, ALL_FEATURES, **TRAIN)
    probe = tmp_path / "probe"
    nodes = two_nodes(recipe, probe, tmp_path)
    for node in nodes:
        assert node.returncode == 0, node.output[-4000:]
    check_group_run(tmp_path / "runs", probe, nnodes=2)


def _rank_logs(log_dir: Path) -> dict[int, str]:
    """Each local rank's stderr+stdout as torchrun's ``--redirects 3 --log-dir`` wrote them."""
    logs: dict[int, str] = {}
    for err in log_dir.rglob("stderr.log"):
        rank = int(err.parent.name)
        logs[rank] = err.read_text() + (err.parent / "stdout.log").read_text()
    return logs


def test_bad_recipe_under_two_ranks_fails_fast_with_one_message(tmp_path: Path, coco8_yaml: Path) -> None:
    """torchrun stops the other workers as soon as one exits 1; every rank must still print its message (each waits,
    through the launcher's store, until all have spoken), so no rank log is empty."""
    recipe = write_recipe(tmp_path, coco8_yaml, epocs=3)
    launch = ("--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1")
    base = run(
        [*torchrun_cmd(*launch, "--master-port", str(free_port()), recipe=recipe)[:-2], "--help"], env(), tmp_path
    )
    assert base.returncode == 0, base.output[-2000:]

    logs = tmp_path / "logs"
    args = (*launch, "--master-port", str(free_port()), "--redirects", "3", "--log-dir", str(logs))
    bad = run(torchrun_cmd(*args, recipe=recipe), env(), tmp_path)
    assert bad.returncode == 1, bad.output[-3000:]
    ranks = _rank_logs(logs)
    assert sorted(ranks) == [0, 1]
    for text in ranks.values():
        assert "train.epocs" in text and "did you mean 'epochs'" in text, text[-2000:]
        assert "Traceback" not in text, text[-3000:]
    assert bad.wall_s <= 3 * base.wall_s, (bad.wall_s, base.wall_s)  # the launcher's own start-up, nothing hangs


@pytest.mark.drill
@pytest.mark.parametrize(
    ("broken", "own", "quoted"),
    [
        ({"data": "nowhere"}, ("error: dataset", "nowhere"), "error: rank 1 stopped the run (pre-flight): dataset"),
        ({"epocs": 3}, ("train.epocs", "did you mean 'epochs'"), "error: rank 1 stopped the run (reading the recipe):"),
    ],
    ids=["dataset-after-the-group-forms", "recipe-before-the-group-forms"],
)
def test_a_rank_whose_preflight_fails_stops_every_rank(
    tmp_path: Path, coco8_yaml: Path, broken: dict[str, Any], own: tuple[str, str], quoted: str
) -> None:
    """Node 1's copy of the recipe is broken (a missing dataset YAML, found by the pre-flight once the group exists; or
    a misspelt key, found while reading the recipe, before it does). Node 0, whose recipe is fine, stops too, quoting
    rank 1's message, instead of waiting in the first collective. A drill to keep CI within budget (two more torchrun
    agents, about 15 s on a quiet machine)."""
    import subprocess
    import time

    good = write_recipe(tmp_path / "node0", coco8_yaml, **TRAIN)
    data = tmp_path / "nowhere" / "data.yaml" if "data" in broken else coco8_yaml
    bad = write_recipe(tmp_path / "node1", data, **{k: v for k, v in broken.items() if k != "data"}, **TRAIN)
    base = run([*torchrun_cmd("--nproc-per-node", "1", recipe=good)[:-2], "--help"], env(), tmp_path)
    port = str(free_port())
    start = time.perf_counter()
    running = []
    for node, recipe in enumerate((good, bad)):
        args = ("--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1")
        args += ("--master-addr", "127.0.0.1", "--master-port", port)
        args += ("--redirects", "3", "--log-dir", str(tmp_path / f"logs{node}"))
        cmd = torchrun_cmd(*args, recipe=recipe)
        running.append(subprocess.Popen(cmd, cwd=recipe.parent, env=env(), stdout=subprocess.PIPE, text=True))
    for p in running:
        p.communicate(timeout=600)
    wall = time.perf_counter() - start
    assert [p.returncode for p in running] == [1, 1]
    node0, node1 = (_rank_logs(tmp_path / f"logs{node}")[0] for node in (0, 1))
    assert all(text in node1 for text in own), node1[-3000:]
    assert quoted in node0 and own[1] in node0, node0[-3000:]
    for text in (node0, node1):
        assert "Traceback" not in text, text[-3000:]
    assert wall <= 6 * base.wall_s, (wall, base.wall_s)  # ranks import torch and join; nothing waits for a timeout


def test_srun_variables_dry_run_and_batch_split(tmp_path: Path, coco8_yaml: Path) -> None:
    """Two processes started the way ``srun`` starts them (SLURM_* only, no torchrun variables): a batch the group
    cannot split is refused on both ranks; ``--dry-run`` says the world size, each rank, the per-rank batch, the
    backend and who writes."""
    import subprocess
    import sys

    recipe = write_recipe(tmp_path, coco8_yaml, ALL_FEATURES, **TRAIN)

    def srun(*extra: str) -> list[tuple[int, str]]:
        port = str(free_port())
        procs = []
        for rank in (0, 1):
            slurm = {
                "SLURM_PROCID": str(rank),
                "SLURM_LOCALID": str(rank),
                "SLURM_STEP_NUM_TASKS": "2",
                "SLURM_STEP_NUM_NODES": "1",
                "SLURM_STEP_TASKS_PER_NODE": "2",
                "SLURM_NODEID": "0",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
            }
            environ = {k: v for k, v in env(**slurm).items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK"}}
            cmd = [sys.executable, "-m", "yolocustom", "train", str(recipe), *extra]
            procs.append(
                subprocess.Popen(
                    cmd, cwd=tmp_path, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
            )
        outs = [p.communicate(timeout=600)[0] for p in procs]  # read while they run: a full pipe would block them
        return [(p.returncode, out) for p, out in zip(procs, outs)]

    for code, out in srun("--set", "train.batch=5"):
        assert code == 1, out[-3000:]
        assert "train.batch: expected a multiple of the world size 2" in out and "found 5; use 4 or 6" in out, out
        assert "Traceback" not in out

    (code0, out0), (code1, out1) = srun("--dry-run")
    assert (code0, code1) == (0, 0), out0[-3000:] + out1[-3000:]
    for out, rank in ((out0, 0), (out1, 1)):
        assert "world size: 2 processes on 1 node (launcher: slurm)" in out, out
        assert f"this rank: {rank} (local rank {rank} of 2 on this node)" in out
        assert "batch: 4 global = 2 per rank x 2 ranks" in out
        assert "backend: gloo (device cpu)" in out
    assert "writes the run folder: rank 0 only (this rank)" in out0 and "(this rank)" not in out1
    assert "Optimizer groups" in out0 and "Optimizer groups" not in out1  # the full plan once, from rank 0
    assert not (tmp_path / "runs").exists()  # a dry run writes no run folder
