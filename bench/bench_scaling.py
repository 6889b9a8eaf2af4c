"""Scaling: what a DDP step costs in communication, measured here (2 gloo processes against 1 at the same global
batch) and projected on paper for YOLO11 n/s/m across nodes.

Measured, on this machine's CPUs: the real model (``yolo11n.yaml``) trains steps of forward, backward and an SGD step
at a global batch of 8 images at 64 px, once in 1 process (batch 8) and once as 2 gloo ranks of a
``DistributedDataParallel`` model (batch 4 each, gradients all-reduced as in Ultralytics' DDP, one thread per process).
Separately, the 2 ranks time ``all_reduce`` of one flat fp32 tensor the size of all gradients: the communication a step
adds, without compute to hide it. Medians over the timed steps, after warm-up steps.

Projected: DDP all-reduces every gradient once per step. A ring all-reduce sends (and receives) ``2 (N - 1) / N`` times
the gradient bytes per rank, so the traffic per step is that per rank and ``N`` times that across the cluster; at link
speed ``B`` the all-reduce takes at least ``2 (N - 1) / N x bytes / B`` (bandwidth term only: no latency, no overlap
with the backward pass, which DDP's bucketing does hide in part). Parameter counts come from building the model YAMLs.

Usage::

    python bench/bench_scaling.py           # 20 timed steps per arm
    python bench/bench_scaling.py --quick   # 4 timed steps
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

NAME = "scaling"
MODEL = "yolo11n.yaml"
GLOBAL_BATCH = 8
IMGSZ = 64
PROJECTED = ("yolo11n.yaml", "yolo11s.yaml", "yolo11m.yaml")
WORLDS = (2, 8, 32)
LINKS_GBPS = (10, 100)
ROOT = Path(__file__).resolve().parents[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--steps``: timed steps per arm."""
    parser.add_argument("--steps", type=int, default=20, help="timed steps per arm (after 3 warm-up steps)")


def _sum_outputs(out: Any) -> Any:
    """A scalar from a detection head's training outputs (any nesting of tensors), so backward reaches every
    parameter; the loss value does not matter for timing, only its graph."""
    import torch

    if isinstance(out, torch.Tensor):
        return out.float().sum()
    values = out.values() if isinstance(out, dict) else out
    return sum(_sum_outputs(v) for v in values)


def _worker(rank: int, world: int, port: int, steps: int, result_dir: str) -> None:
    """One process: time ``steps`` training steps (and, in a group, the all-reduce of the gradients)."""
    import torch
    import torch.distributed as dist
    from torch import nn
    from ultralytics.nn.tasks import DetectionModel

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    model: Any = DetectionModel(MODEL, verbose=False)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    x = torch.rand(GLOBAL_BATCH // world, 3, IMGSZ, IMGSZ)
    times = []
    for i in range(steps + 3):
        if world > 1:
            dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        _sum_outputs(model(x)).backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    result: dict[str, Any] = {"step_s": statistics.median(times), "params": params}
    if world > 1:
        flat = torch.zeros(params)
        reduce_times = []
        for i in range(steps + 3):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(flat)
            if i >= 3:
                reduce_times.append(time.perf_counter() - t0)
        result["allreduce_s"] = statistics.median(reduce_times)
        dist.barrier()
        dist.destroy_process_group()
    Path(result_dir, f"w{world}r{rank}.json").write_text(json.dumps(result))


def _measure(world: int, steps: int, tmp: Path) -> dict[str, Any]:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_worker, args=(world, port, steps, str(tmp)), nprocs=world, start_method="spawn")
    ranks = [json.loads((tmp / f"w{world}r{r}.json").read_text()) for r in range(world)]
    out = {"step_s": max(r["step_s"] for r in ranks), "params": ranks[0]["params"]}  # a step ends with its slowest rank
    if world > 1:
        out["allreduce_s"] = max(r["allreduce_s"] for r in ranks)
    return out


def _params(cfg: str) -> int:
    from ultralytics.nn.tasks import DetectionModel

    return sum(p.numel() for p in DetectionModel(cfg, verbose=False).parameters())


def projection(params: int) -> dict[str, Any]:
    """Gradient bytes per step and the ring all-reduce's bandwidth-bound time per world size and link speed."""
    grad_bytes = params * 4  # fp32 gradients (DDP reduces in the parameters' dtype; AMP keeps fp32 master weights)
    rows = []
    for n in WORLDS:
        per_rank = 2 * (n - 1) / n * grad_bytes
        rows.append(
            {
                "world_size": n,
                "bytes_per_rank": per_rank,
                "bytes_cluster": per_rank * n,
                "seconds": {str(g): per_rank * 8 / (g * 1e9) for g in LINKS_GBPS},
            }
        )
    return {"params": params, "grad_bytes": grad_bytes, "worlds": rows}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure 1 against 2 gloo processes, then project n/s/m."""
    import tempfile

    steps = 4 if getattr(args, "quick", False) else int(getattr(args, "steps", 20))
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        one = _measure(1, steps, Path(tmp))
        two = _measure(2, steps, Path(tmp))
    measured = {
        "model": MODEL,
        "global_batch": GLOBAL_BATCH,
        "imgsz": IMGSZ,
        "timed_steps": steps,
        "params": one["params"],
        "grad_bytes": one["params"] * 4,
        "step_s_1proc": one["step_s"],
        "step_s_2proc": two["step_s"],
        "allreduce_s": two["allreduce_s"],
        "allreduce_gbps": one["params"] * 4 * 8 / two["allreduce_s"] / 1e9,
        "loadavg_1min": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    return {"measured": measured, "projected": {Path(c).stem: projection(_params(c)) for c in PROJECTED}}


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def _ms(s: float) -> str:
    return f"{s * 1e3:,.1f} ms" if s < 1 else f"{s:,.2f} s"


def render(result: dict[str, Any]) -> str:
    """The markdown section, from the JSON alone."""
    m = result["measured"]
    out = [
        "## Scaling: communication per DDP step",
        "",
        f"Measured here ({m['cpus']} CPUs, load average {m['loadavg_1min']:.1f} during the run): `{m['model']}` "
        f"({m['params']:,} parameters, {_mb(m['grad_bytes'])} of fp32 gradients), global batch {m['global_batch']} at "
        f"{m['imgsz']} px, median of {m['timed_steps']} steps, one thread per process.",
        "",
        "| | step (forward + backward + SGD) | all-reduce of the gradients alone |",
        "|---|---|---|",
        f"| 1 process, batch {m['global_batch']} | {_ms(m['step_s_1proc'])} | - |",
        f"| 2 gloo processes, batch {m['global_batch'] // 2} each | {_ms(m['step_s_2proc'])} | "
        f"{_ms(m['allreduce_s'])} ({m['allreduce_gbps']:.1f} Gb/s effective over loopback) |",
        "",
        f"The all-reduce alone is {m['allreduce_s'] / m['step_s_2proc']:.0%} of the 2-process step here. Both "
        "processes share this machine (its 2 cores, memory bandwidth and the load of other jobs), so the step times "
        "are what the shared machine gave each arm, not a speed-up measure; the all-reduce line is the communication a "
        "step adds, without a backward pass to overlap it.",
        "",
        "Projected on paper (ring all-reduce, bandwidth term only: per rank `2 (N - 1) / N x` the fp32 gradient bytes "
        "per step; across the cluster `N x` that):",
        "",
        "| model | parameters | gradients | N | per rank per step | cluster per step | at 10 Gb/s | at 100 Gb/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, p in result["projected"].items():
        for row in p["worlds"]:
            out.append(
                f"| {name} | {p['params']:,} | {_mb(p['grad_bytes'])} | {row['world_size']} | "
                f"{_mb(row['bytes_per_rank'])} | {_mb(row['bytes_cluster'])} | {_ms(row['seconds']['10'])} | "
                f"{_ms(row['seconds']['100'])} |"
            )
    big = list(result["projected"])[-1]
    last = result["projected"][big]["worlds"][-1]
    out += [
        "",
        "Read: the traffic per rank hardly grows with N (it tends to twice the gradients), so a step's communication "
        f"is set by the model and the slowest link, not by the node count: at N = {last['world_size']} a {big} step "
        f"moves {_mb(last['bytes_per_rank'])} per rank, at least {_ms(last['seconds']['10'])} at 10 Gb/s and "
        f"{_ms(last['seconds']['100'])} at 100 Gb/s, which DDP's gradient buckets overlap with the backward pass only "
        "in part.",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    """Run alone: write bench/out/scaling.json and docs/SCALING.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (4 timed steps)")
    parser.add_argument("--render-only", action="store_true", help="only re-render docs/SCALING.md from the JSON")
    add_arguments(parser)
    args = parser.parse_args(argv)
    out = ROOT / "bench" / "out" / f"{NAME}.json"
    if args.render_only:
        result = json.loads(out.read_text())
    else:
        result = run(args)
        result["machine"] = {"platform": platform.platform(), "python": platform.python_version()}
        result["command"] = " ".join(
            ["python", "bench/bench_scaling.py", *(argv if argv is not None else sys.argv[1:])]
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    header = (
        "# Scaling across processes and machines\n\nGenerated by `python bench/bench_scaling.py` from "
        '`bench/out/scaling.json`; see the README section "Many machines" for how to launch.\n\n'
    )
    (ROOT / "docs" / "SCALING.md").write_text(header + render(result).split("\n", 1)[1].lstrip("\n"))


if __name__ == "__main__":
    main()
