"""``yolocustom tune``: the same 8-trial space under ASHA and under FIFO, and the fixed cost of a trial.

Arms, each a fresh ``yolocustom`` subprocess measured from the outside (wall clock from spawn to exit):

* ``plain``: ``yolocustom train`` of the base recipe (the reference for fixed costs);
* ``one-trial``: ``yolocustom tune`` of the same recipe with a one-point grid (its own local Ray, FIFO);
* ``fifo`` and ``asha``: the same 8-point grid (``train.lr0`` x ``train.momentum``), metric ``val/cls_loss`` (min;
  it moves on this tiny dataset, where mAP and F1 stay near 0), 1 CPU per trial (2 trials at a time on 2 cores).

Fixed cost of a run = its wall time minus the training loop's own time (results.csv's cumulative ``time`` at the last
epoch): process start, imports, model and data-loader build, final validation, and for ``tune`` Ray's start-up, the
trial's worker process and the result collection. Ray's ``init``/``shutdown`` are also timed on their own.

Usage::

    python bench/bench_tune.py [--out bench/out/tune_sweep.json]     # 6 epochs per trial, 96/32 images at 64 px
    python bench/bench_tune.py --quick                               # 2 epochs, 16/8 images at 32 px
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DOCS,
    OUT_DIR,
    PYTHON,
    YOLOCUSTOM,
    bench_env,
    machine_info,
    read_results_csv,
    run_measured,
    shell_join,
    write_json,
)

SPACE = "train.lr0: {grid: [0.003, 0.01, 0.03, 0.06]}\ntrain.momentum: {grid: [0.8, 0.937]}\n"
METRIC = "val/cls_loss"
PLOT_DOC = "tune_asha.png"  # the ASHA sweep's metric_per_epoch.png, shown in BENCHMARKS.md
RAY_PROBE = """
import json, time
t0 = time.perf_counter()
import ray
t1 = time.perf_counter()
ray.init(include_dashboard=False, log_to_driver=False)
t2 = time.perf_counter()
ray.shutdown()
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "init_s": t2 - t1, "shutdown_s": t3 - t2}))
"""


def write_recipe(path: Path, data: Path, project: Path, quick: bool) -> None:
    """The base recipe: yolo26n from scratch, SGD (so lr0 and momentum are used), no warm-up."""
    train = {
        "epochs": 2 if quick else 6,
        "imgsz": 32 if quick else 64,
        "batch": 8,
        "nbs": 8,
        "workers": 0,
        "plots": False,
        "seed": 0,
        "amp": False,
        "optimizer": "SGD",
        "lr0": 0.01,
        "warmup_epochs": 0,
        "project": str(project),
        "name": "plain",
        "exist_ok": True,
    }
    recipe = {"model": "yolo26n.yaml", "data": str(data), "device": "cpu", "train": train}
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))


def loop_seconds(results_csv: Path) -> float:
    """The training loop's own seconds: results.csv's cumulative ``time`` at the last epoch."""
    rows = read_results_csv(results_csv)
    return rows[-1]["time"] if rows else float("nan")


def read_trials(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def sweep(name: str, recipe: Path, space: Path, project: Path, work: Path, *extra: str) -> dict[str, Any]:
    """Run one ``yolocustom tune`` and summarise its trials.csv."""
    cmd = [YOLOCUSTOM, "tune", str(recipe), "--space", str(space), "--project", str(project), "--name", name]
    cmd += ["--metric", METRIC, *extra]
    m = run_measured(cmd, work / f"{name}.log", cwd=work)
    rows = read_trials(project / name / "trials.csv") if m.returncode == 0 else []
    params = [k for k in (rows[0] if rows else {}) if k.startswith(("train.", "features."))]
    best = rows[0] if rows else {}
    loops = [loop_seconds(Path(r["run_folder"]) / "results.csv") for r in rows]
    return {
        "command": shell_join(cmd),
        "returncode": m.returncode,
        "wall_s": round(m.wall_s, 2),
        "trials": len(rows),
        "epochs_spent": sum(int(r["epochs"]) for r in rows),
        "stopped_early": sum(r["status"] == "stopped early" for r in rows),
        "errors": sum(r["status"] == "error" for r in rows),
        "best_config": {p: float(best[p]) for p in params},
        "best_metric": float(best[f"best {METRIC}"]) if best else None,
        "training_loop_s": round(sum(loops), 2),
        "per_trial": [{"status": r["status"], "epochs": int(r["epochs"]), **{p: r[p] for p in params}} for r in rows],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR / "tune_sweep.json")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 epochs, 16/8 images at 32 px")
    args = parser.parse_args(argv)
    work = OUT_DIR / ("tune_quick" if args.quick else "tune")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    info = machine_info()

    from yolocustom.demo_data import generate_demo_dataset

    n_train, n_val, size = (16, 8, 32) if args.quick else (96, 32, 64)
    data = generate_demo_dataset(work / "shapes", n_train=n_train, n_val=n_val, img_size=size, seed=0)
    recipe = work / "recipe.yaml"
    write_recipe(recipe, data, work / "runs", args.quick)
    (work / "space.yaml").write_text(SPACE)
    (work / "one.yaml").write_text("train.lr0: {grid: [0.01]}\n")  # the recipe's own value: the same run as plain

    probe = subprocess.run([PYTHON, "-c", RAY_PROBE], capture_output=True, text=True, env=bench_env(), cwd=work)
    ray_times = json.loads(probe.stdout.strip().splitlines()[-1]) if probe.returncode == 0 else None

    plain_cmd = [YOLOCUSTOM, "train", str(recipe)]
    plain = run_measured(plain_cmd, work / "plain.log", cwd=work)
    plain_loop = loop_seconds(work / "runs" / "plain" / "results.csv")
    one = sweep("one-trial", recipe, work / "one.yaml", work / "tune", work, "--scheduler", "fifo")
    fifo = sweep("fifo", recipe, work / "space.yaml", work / "tune", work, "--scheduler", "fifo")
    asha = sweep(
        "asha", recipe, work / "space.yaml", work / "tune", work, "--scheduler", "asha", "--reduction-factor", "2"
    )
    result = {
        "machine": info,
        "design": {
            "dataset": {"n_train": n_train, "n_val": n_val, "img_size": size},
            "recipe": yaml.safe_load(recipe.read_text()),
            "space": SPACE,
            "metric": f"{METRIC} (min)",
            "metric_name": METRIC,
            "cpus_per_trial": 1,
            "asha": {"grace_period": 1, "reduction_factor": 2, "max_t": "train.epochs"},
        },
        "commands": {"benchmark": shell_join([PYTHON, *sys.argv]), "plain": shell_join(plain_cmd)},
        "ray_startup": ray_times,
        "plain": {
            "returncode": plain.returncode,
            "wall_s": round(plain.wall_s, 2),
            "training_loop_s": round(plain_loop, 2),
            "fixed_s": round(plain.wall_s - plain_loop, 2),
        },
        "one_trial": {**one, "fixed_s": round(one["wall_s"] - one["training_loop_s"], 2)},
        "fifo": fifo,
        "asha": asha,
        "same_best_config": bool(fifo["best_config"]) and fifo["best_config"] == asha["best_config"],
    }
    write_json(args.out, result)
    plot = work / "tune" / "asha" / "metric_per_epoch.png"
    if not args.quick and plot.is_file():
        shutil.copy2(plot, DOCS / PLOT_DOC)
    print(json.dumps({k: result[k] for k in ("plain", "one_trial", "same_best_config")}, indent=2))
    for arm in ("fifo", "asha"):
        a = result[arm]
        print(f"{arm}: wall {a['wall_s']} s, {a['epochs_spent']} epochs, best {a['best_config']} = {a['best_metric']}")
    ok = all(x["returncode"] == 0 for x in (result["plain"], one, fifo, asha))
    return 0 if ok else 1


def render(data: dict[str, Any] | None, path: Path) -> tuple[list[str], list[list[str]]]:
    """The BENCHMARKS.md section and summary rows (called by ``bench/run_all.py``)."""
    lines = ["## 6. Sweeps: ASHA against FIFO, and the fixed cost of a trial", ""]
    if data is None:
        lines += [f"Not measured (`{path.name}` missing).", ""]
        return lines, [["tune: ASHA vs FIFO", "fewer epochs, same best config", "not measured", "n/a"]]
    d, p, one, fifo, asha = data["design"], data["plain"], data["one_trial"], data["fifo"], data["asha"]
    ds, tr = d["dataset"], d["recipe"]["train"]
    lines += [
        f"The same 8-trial grid under each scheduler, in one run of `{data['commands']['benchmark']}` "
        f"({data['machine']['date_utc']} UTC; load average at start {data['machine']['loadavg_at_start']}). "
        f"yolo26n from scratch on {ds['n_train']}/{ds['n_val']} generated shapes images at {ds['img_size']} px, "
        f"{tr['epochs']} epochs per trial, SGD, batch {tr['batch']}; space `{' '.join(d['space'].split())}`; metric "
        f"{d['metric']}; {d['cpus_per_trial']} CPU per trial, so two trials at a time on the 2 cores. ASHA: grace "
        f"period 1 epoch, reduction factor 2, max_t = epochs. **The machine is shared with other busy processes** "
        "(three other sessions' builds and tests ran at the same time), so wall times are indicative only; epochs "
        "spent and the best configuration do not depend on load.",
        "",
        "Why this metric: at this budget Ultralytics' default fitness (mAP-based) is 0 or nearly so for every trial, "
        "so it cannot rank them, and a first run of this benchmark with `val/box_loss` showed that a box loss can "
        "reward a diverged trial: with lr0 0.06 and momentum 0.937 the classification loss exploded (val/cls_loss "
        "1.3e6) and the model predicted no boxes, so val/box_loss read 0.0 and FIFO ranked that trial first. "
        "`val/cls_loss` exposes the divergence instead.",
        "",
        f"| scheduler | wall (s) | epochs spent | trials stopped early | best config | best {d['metric_name']} |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for name, a in (("FIFO", fifo), ("ASHA", asha)):
        config = ", ".join(f"{k}={v:g}" for k, v in a["best_config"].items())
        best = "n/a" if a["best_metric"] is None else f"{a['best_metric']:.4f}"
        lines.append(f"| {name} | {a['wall_s']:.1f} | {a['epochs_spent']} | {a['stopped_early']} | {config} | {best} |")
    same = data["same_best_config"]
    saved = 1 - asha["epochs_spent"] / fifo["epochs_spent"] if fifo["epochs_spent"] else float("nan")
    lines += [
        "",
        f"ASHA spent {asha['epochs_spent']} epochs against FIFO's {fifo['epochs_spent']} ({saved:.0%} fewer) and "
        + ("found **the same** best configuration." if same else "found **a different** best configuration."),
        "",
        f"![ASHA sweep: {d['metric_name']} per epoch, every trial (the sweep's own metric_per_epoch.png)]({PLOT_DOC})",
        "",
    ]
    r, nan = data.get("ray_startup") or {}, float("nan")
    lines += [
        "Fixed cost (wall time minus the training loop's own seconds from results.csv):",
        "",
        "| run | wall (s) | training loop (s) | fixed cost (s) |",
        "|---|---:|---:|---:|",
        f"| `yolocustom train` (plain) | {p['wall_s']:.1f} | {p['training_loop_s']:.1f} | {p['fixed_s']:.1f} |",
        f"| `yolocustom tune`, one trial (own local Ray) | {one['wall_s']:.1f} | {one['training_loop_s']:.1f} | "
        f"{one['fixed_s']:.1f} |",
        "",
        f"So a one-trial sweep costs {one['fixed_s'] - p['fixed_s']:.1f} s more than a plain run: Ray's start-up, "
        "the trial's launch (a Ray worker process that imports torch and Ultralytics again, the Tune controller, the "
        "per-epoch checkpoint copy) and the result collection (trials.csv, best.yaml, the plot). For scale, Ray's "
        f"start-up timed alone in a fresh process: `import ray` {r.get('import_s', nan):.1f} s, `ray.init` "
        f"{r.get('init_s', nan):.1f} s, `ray.shutdown` {r.get('shutdown_s', nan):.1f} s (a separate measurement on "
        "a loaded machine, so not to be subtracted from the difference above). In a sweep, Ray starts once; the "
        "trial launch is paid by every trial.",
        "",
    ]
    summary = [
        [
            "tune: ASHA vs FIFO, same 8-trial grid",
            "fewer epochs, same best config",
            f"{asha['epochs_spent']} vs {fifo['epochs_spent']} epochs; best config {'same' if same else 'differs'}",
            "**met**" if same and asha["epochs_spent"] < fifo["epochs_spent"] else "**missed**",
        ],
        [
            "tune: fixed cost of a one-trial sweep over a plain run",
            "reported",
            f"+{one['fixed_s'] - p['fixed_s']:.1f} s",
            "n/a",
        ],
    ]
    return lines, summary


if __name__ == "__main__":
    raise SystemExit(main())
