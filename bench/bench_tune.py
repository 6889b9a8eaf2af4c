"""``yolocustom tune``: the same 8-trial grid under ASHA and under FIFO, and the fixed cost of a trial.

Fresh ``yolocustom`` subprocesses timed from spawn to exit: ``plain`` (``yolocustom train`` of the base recipe),
``one-trial`` (``yolocustom tune`` of it with a one-point grid, its own local Ray), ``fifo`` and ``asha`` (the grid
:data:`SPACE`, metric :data:`METRIC`, min; 1 CPU per trial). Fixed cost = wall time minus the training loop's own.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DOCS, YOLOCUSTOM, call_fresh, main, read_results_csv, run_checked, shell_join, table, work_dir  # noqa: E402

NAME = "tune_sweep"
TITLE = "Sweeps: ASHA against FIFO, and the fixed cost of a trial"
SPACE = "train.lr0: {grid: [0.003, 0.01, 0.03, 0.06]}\ntrain.momentum: {grid: [0.8, 0.937]}\n"
METRIC = "val/cls_loss"
PLOT = "tune_asha.png"  # the ASHA sweep's metric_per_epoch.png, copied to docs/


def ray_startup() -> dict[str, float]:
    """Time ``import ray``, ``ray.init`` and ``ray.shutdown`` in this fresh interpreter."""
    import time

    t0 = time.perf_counter()
    import ray

    t1 = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    t2 = time.perf_counter()
    ray.shutdown()
    return {"import_s": t1 - t0, "init_s": t2 - t1, "shutdown_s": time.perf_counter() - t2}


def loop_seconds(run_folder: Path) -> float:
    """The training loop's own seconds: results.csv's cumulative ``time`` at the last epoch."""
    rows = read_results_csv(run_folder / "results.csv")
    return rows[-1]["time"] if rows else float("nan")


def sweep(name: str, recipe: Path, space: Path, work: Path, *extra: str) -> dict[str, Any]:
    """Run one ``yolocustom tune`` and summarise its trials.csv."""
    cmd = [YOLOCUSTOM, "tune", str(recipe), "--space", str(space), "--project", str(work / "tune"), "--name", name]
    m = run_checked([*cmd, "--metric", METRIC, *extra], work / f"{name}.log", cwd=work)
    with open(work / "tune" / name / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    loop = round(sum(loop_seconds(Path(r["run_folder"])) for r in rows), 2)
    return {
        "command": shell_join([*cmd, "--metric", METRIC, *extra]), "wall_s": round(m.wall_s, 2), "trials": len(rows),
        "epochs_spent": sum(int(r["epochs"]) for r in rows), "training_loop_s": loop,
        "stopped_early": sum(r["status"] == "stopped early" for r in rows),
        "best_config": {p: float(v) for p, v in rows[0].items() if p.startswith(("train.", "features."))},
        "best_metric": float(rows[0][f"best {METRIC}"]),
    }  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The Ray probe, the plain run, the one-trial sweep, then FIFO and ASHA over the grid."""
    from yolocustom.demo_data import generate_demo_dataset

    work = work_dir(args, NAME)
    shutil.rmtree(work, ignore_errors=True)
    n_train, n_val, size, epochs = (16, 8, 32, 2) if args.quick else (96, 32, 64, 6)
    data = generate_demo_dataset(work / "shapes", n_train=n_train, n_val=n_val, img_size=size, seed=0)
    # SGD, so that lr0 and momentum are used; no warm-up
    train = {"epochs": epochs, "imgsz": size, "batch": 8, "nbs": 8, "workers": 0, "plots": False, "seed": 0,
             "amp": False, "optimizer": "SGD", "lr0": 0.01, "warmup_epochs": 0, "project": str(work / "runs"),
             "name": "plain", "exist_ok": True}  # fmt: skip
    recipe = work / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"model": "yolo26n.yaml", "data": str(data), "device": "cpu", "train": train}))
    (work / "space.yaml").write_text(SPACE)
    (work / "one.yaml").write_text("train.lr0: {grid: [0.01]}\n")  # the recipe's own value: the same run as plain
    try:
        ray = call_fresh(__file__, "ray_startup", cwd=work)
    except RuntimeError as e:  # Ray's start-up can time out on an overloaded machine; the sweeps may still run
        print(e, file=sys.stderr)
        ray = None
    plain = run_checked([YOLOCUSTOM, "train", str(recipe)], work / "plain.log", cwd=work)
    plain_loop = loop_seconds(work / "runs" / "plain")
    one = sweep("one-trial", recipe, work / "one.yaml", work, "--scheduler", "fifo")
    fifo = sweep("fifo", recipe, work / "space.yaml", work, "--scheduler", "fifo")
    asha = sweep("asha", recipe, work / "space.yaml", work, "--scheduler", "asha", "--reduction-factor", "2")
    if not args.quick and (work / "tune" / "asha" / "metric_per_epoch.png").is_file():
        shutil.copy2(work / "tune" / "asha" / "metric_per_epoch.png", DOCS / PLOT)
    return {
        "design": {"n_train": n_train, "n_val": n_val, "img_size": size, "epochs": epochs, "batch": train["batch"],
                   "space": SPACE, "metric": METRIC, "cpus_per_trial": 1},  # fmt: skip
        "ray_startup": ray,
        "plain": {"wall_s": round(plain.wall_s, 2), "training_loop_s": round(plain_loop, 2),
                  "fixed_s": round(plain.wall_s - plain_loop, 2)},
        "one_trial": {**one, "fixed_s": round(one["wall_s"] - one["training_loop_s"], 2)},
        "fifo": fifo, "asha": asha, "same_best_config": fifo["best_config"] == asha["best_config"],
    }  # fmt: skip


def render(result: dict[str, Any]) -> str:
    """The section: the two schedulers side by side, the plot, then the fixed cost of a trial."""
    d, p, one, fifo, asha, r = (result[k] for k in ("design", "plain", "one_trial", "fifo", "asha", "ray_startup"))
    rows = [[name, f"{a['wall_s']:.1f}", a["epochs_spent"], a["stopped_early"],
             ", ".join(f"{k}={v:g}" for k, v in a["best_config"].items()), f"{a['best_metric']:.4f}"]
            for name, a in (("FIFO", fifo), ("ASHA", asha))]  # fmt: skip
    columns = ["scheduler", "wall (s)", "epochs spent", "trials stopped early", "best config", f"best {d['metric']}"]
    fixed = [[label, x["wall_s"], x["training_loop_s"], x["fixed_s"]] for label, x in
             (("`yolocustom train` (plain)", p), ("`yolocustom tune`, one trial (own local Ray)", one))]  # fmt: skip
    ray = (f" For scale, Ray's start-up timed alone in a fresh process: `import ray` {r['import_s']:.1f} s, `ray.init` "
           f"{r['init_s']:.1f} s, `ray.shutdown` {r['shutdown_s']:.1f} s (a separate measurement, not to be subtracted "
           "from the difference above)." if r else "")  # fmt: skip
    saved, extra = 1 - asha["epochs_spent"] / fifo["epochs_spent"], one["fixed_s"] - p["fixed_s"]
    return (
        f"## {TITLE}\n\nThe same 8-trial grid under each scheduler: yolo26n from scratch on {d['n_train']}/"
        f"{d['n_val']} generated shapes images at {d['img_size']} px, {d['epochs']} epochs per trial, SGD, batch "
        f"{d['batch']}; space `{' '.join(d['space'].split())}`; metric {d['metric']} (min); {d['cpus_per_trial']} CPU "
        "per trial, so two trials at a time on 2 cores. ASHA: grace period 1 epoch, reduction factor 2, max_t = "
        "epochs. Wall times depend on the machine's load (below); epochs spent and the best configuration do not.\n\n"
        "Why this metric: at this budget Ultralytics' default fitness (mAP-based) is 0 or nearly so for every trial, "
        "so it cannot rank them, and a box loss can reward a diverged trial (a model that predicts no boxes has no "
        "box loss): a first run of this benchmark with `val/box_loss` ranked a diverged trial first. `val/cls_loss` "
        "exposes the divergence instead.\n\n"
        + table(columns, rows, "lrrrlr")
        + f"\n\nASHA spent {asha['epochs_spent']} epochs against FIFO's {fifo['epochs_spent']} ({saved:.0%} fewer) and "
        + ("found **the same** best configuration." if result["same_best_config"] else "found **a different** best.")
        + f"\n\n![ASHA sweep: {d['metric']} per epoch, every trial (the sweep's own metric_per_epoch.png)]({PLOT})\n\n"
        "Fixed cost (wall time minus the training loop's own seconds from results.csv):\n\n"
        + table("run | wall (s) | training loop (s) | fixed cost (s)", fixed)
        + f"\n\nSo a one-trial sweep costs {extra:.1f} s more than a plain run: Ray's start-up, the trial's launch (a "
        "Ray worker process that imports torch and Ultralytics again, the Tune controller, the per-epoch checkpoint "
        "copy) and the result collection (trials.csv, best.yaml, the plot)."
        + ray
        + " In a sweep Ray starts once; the trial launch is paid by every trial."
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.modules[__name__]))
