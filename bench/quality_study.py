"""Quality study: does class weighting (and an F1 fitness) help the rare class on imbalanced data?

Design, fixed before any result was seen:

* Data: the built-in demo set (``yolocustom.demo_data``) with the rare class ``crack`` at 1:20 (``rare_ratio=20``),
  600 train / 150 val images at 64 px, dataset seed 0.
* Arms (same Ultralytics arguments, same seed, same 20-epoch budget; ``f1_logging`` on everywhere because it only
  logs):
    - ``plain``: no class weights, Ultralytics' default fitness;
    - ``inverse``: ``class_weights: {auto: inverse}``;
    - ``sqrt_inverse``: ``class_weights: {auto: sqrt_inverse}``;
    - ``sqrt_inverse+f1``: ``sqrt_inverse`` plus ``fitness: {metric: f1}`` (best.pt chosen by mean F1).
  No ``max_weight``, default ``normalize: mean``: the library defaults, not tuned.
* Seeds 0, 1, 2 (``train.seed``). Each run goes through the real CLI, ``yolocustom train RECIPE``.
* Metrics: ``best.pt`` of every run is validated once more with
  ``YOLO(best).val(data=..., imgsz=64, batch=32, plots=False)``; the rare class's recall, F1 and AP50 and the overall
  mAP50 are read from ``metrics.box`` (``ap_class_index``, ``r``, ``f1``, ``ap50``).
* Curve: the rare class's F1 per epoch from each run's ``f1_per_class.csv``, averaged over seeds, drawn to
  ``docs/quality.png``.

The script is resumable: a run whose ``quality_metrics.json`` exists is skipped; a run folder without it (killed
mid-way) is deleted and trained again from scratch. Results go to ``bench/out/quality.json`` and the table into
``docs/BENCHMARKS.md`` (through ``run_all.render_doc``).

Usage::

    python bench/quality_study.py            # the full study, ~12 runs of ~70-90 s on 2 CPU cores
    python bench/quality_study.py --quick    # smoke run: 1 seed, 2 epochs, 96/32 images (docs untouched)
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DOCS, OUT_DIR, YOLOCUSTOM, bench_env, machine_info, run_measured, shell_join, write_json  # noqa: E402

RARE_CLASS = 3
RARE_NAME = "crack"
ARMS: dict[str, dict[str, Any]] = {
    "plain": {},
    "inverse": {"class_weights": {"auto": "inverse"}},
    "sqrt_inverse": {"class_weights": {"auto": "sqrt_inverse"}},
    "sqrt_inverse+f1": {"class_weights": {"auto": "sqrt_inverse"}, "fitness": {"metric": "f1"}},
}


def study_config(quick: bool) -> dict[str, Any]:
    """Return the study's fixed settings (the full study or the ``--quick`` smoke version).

    Args:
        quick (bool): Smoke-run settings.

    Returns:
        (dict[str, Any]): Dataset, training and seed settings.
    """
    if quick:
        return {
            "dataset": {"n_train": 96, "n_val": 32, "img_size": 64, "seed": 0, "rare_ratio": 20.0},
            "train": {"epochs": 2, "imgsz": 64, "batch": 16, "workers": 0, "plots": False},
            "seeds": [0],
            "root": OUT_DIR / "quality_quick",
            "json": OUT_DIR / "quality_quick.json",
        }
    return {
        "dataset": {"n_train": 600, "n_val": 150, "img_size": 64, "seed": 0, "rare_ratio": 20.0},
        "train": {"epochs": 20, "imgsz": 64, "batch": 16, "workers": 0, "plots": False},
        "seeds": [0, 1, 2],
        "root": OUT_DIR / "quality",
        "json": OUT_DIR / "quality.json",
    }


def write_recipe(path: Path, data: Path, arm: str, seed: int, train: dict[str, Any], project: Path) -> None:
    """Write the recipe of one (arm, seed) run.

    Args:
        path (Path): Recipe file to write.
        data (Path): Dataset YAML.
        arm (str): A key of :data:`ARMS`.
        seed (int): ``train.seed``.
        train (dict[str, Any]): Shared Ultralytics arguments.
        project (Path): ``train.project``.
    """
    recipe = {
        "model": "yolo26n.yaml",
        "data": str(data),
        "device": "cpu",
        "train": {**train, "seed": seed, "project": str(project), "name": run_name(arm, seed), "exist_ok": True},
        "features": {"f1_logging": {"per_class": True}, **ARMS[arm]},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))


def run_name(arm: str, seed: int) -> str:
    """Return the run folder name of an (arm, seed) pair (``+`` is kept out of paths)."""
    return f"{arm.replace('+', '_plus_')}_s{seed}"


def validate_best(best: Path, data: Path, imgsz: int) -> dict[str, Any]:
    """Validate ``best.pt`` once more and return the rare class's and the overall metrics.

    Args:
        best (Path): The checkpoint.
        data (Path): Dataset YAML.
        imgsz (int): Image size.

    Returns:
        (dict[str, Any]): ``rare_precision``, ``rare_recall``, ``rare_f1``, ``rare_ap50`` (0 when the class got no
            prediction statistics at all), ``mAP50``, ``mAP50-95``, ``mean_f1`` and per-class F1.
    """
    from ultralytics import YOLO

    metrics = YOLO(str(best)).val(
        data=str(data), imgsz=imgsz, batch=32, plots=False, device="cpu", workers=0, verbose=False
    )
    box = metrics.box
    classes = [int(c) for c in box.ap_class_index]
    out: dict[str, Any] = {"mAP50": float(box.map50), "mAP50-95": float(box.map)}
    out["mean_f1"] = float(sum(float(x) for x in box.f1) / len(box.f1)) if len(box.f1) else 0.0
    out["per_class_f1"] = {metrics.names[c]: float(box.f1[i]) for i, c in enumerate(classes)}
    if RARE_CLASS in classes:
        i = classes.index(RARE_CLASS)
        out.update(
            rare_precision=float(box.p[i]),
            rare_recall=float(box.r[i]),
            rare_f1=float(box.f1[i]),
            rare_ap50=float(box.ap50[i]),
        )
    else:
        out.update(rare_precision=0.0, rare_recall=0.0, rare_f1=0.0, rare_ap50=0.0)
    return out


def rare_f1_curve(run_dir: Path) -> list[float]:
    """Return the rare class's F1 per epoch from ``f1_per_class.csv`` (empty cells read as 0).

    Args:
        run_dir (Path): The run folder.

    Returns:
        (list[float]): One value per validated epoch, in epoch order.
    """
    path = run_dir / "f1_per_class.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [float(r[RARE_NAME]) if r.get(RARE_NAME) else 0.0 for r in rows]


def best_epoch(run_dir: Path) -> int | None:
    """Return the epoch best.pt was saved at: the results.csv row whose validation metrics equal its ``train_metrics``.

    (A stripped best.pt's ``train_results`` holds the whole results table, so its last row says nothing.)

    Args:
        run_dir (Path): The run folder.

    Returns:
        (int | None): 1-based epoch, or None when no row matches.
    """
    from ultralytics.utils.patches import torch_load

    metrics = torch_load(run_dir / "weights" / "best.pt", map_location="cpu")["train_metrics"]
    keys = [k for k in metrics if k.startswith("metrics/")]
    with open(run_dir / "results.csv", newline="") as f:
        for row in csv.DictReader(f):
            row = {k.strip(): v for k, v in row.items()}
            if all(abs(float(row[k]) - float(metrics[k])) < 1e-6 for k in keys):
                return int(row["epoch"])
    return None


def one_run(cfg: dict[str, Any], data: Path, arm: str, seed: int) -> dict[str, Any]:
    """Train and evaluate one (arm, seed) pair, or load its stored result.

    Args:
        cfg (dict[str, Any]): From :func:`study_config`.
        data (Path): Dataset YAML.
        arm (str): A key of :data:`ARMS`.
        seed (int): Training seed.

    Returns:
        (dict[str, Any]): The run's record (command, timings, metrics, rare-class F1 curve).
    """
    root: Path = cfg["root"]
    project = root / "runs"
    run_dir = project / run_name(arm, seed)
    done = run_dir / "quality_metrics.json"
    if done.exists():
        print(f"[quality] {arm} seed {seed}: stored result, skipped", flush=True)
        stored: dict[str, Any] = json.loads(done.read_text())
        if "best_epoch" not in stored:  # stored before this field existed
            stored["best_epoch"] = best_epoch(run_dir)
            write_json(done, stored)
        return stored
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a run killed mid-way: start it again from scratch
    recipe = root / "recipes" / f"{run_name(arm, seed)}.yaml"
    write_recipe(recipe, data, arm, seed, cfg["train"], project)
    cmd = [YOLOCUSTOM, "train", str(recipe)]
    print(f"[quality] {arm} seed {seed}: {shell_join(cmd)}", flush=True)
    measured = run_measured(cmd, root / "logs" / f"{run_name(arm, seed)}.log", env=bench_env())
    if measured.returncode != 0:
        raise SystemExit(f"[quality] {arm} seed {seed} failed (exit {measured.returncode}); see {measured.log}")
    best = run_dir / "weights" / "best.pt"
    record: dict[str, Any] = {
        "arm": arm,
        "seed": seed,
        "command": shell_join(cmd),
        "recipe": str(recipe.relative_to(OUT_DIR.parent.parent)),
        "train_wall_s": round(measured.wall_s, 1),
        "metrics": validate_best(best, data, int(cfg["train"]["imgsz"])),
        "best_epoch": best_epoch(run_dir),
        "rare_f1_per_epoch": rare_f1_curve(run_dir),
    }
    weights = run_dir / "class_weights.json"
    if weights.exists():
        record["class_weights"] = json.loads(weights.read_text())["weights"]
    write_json(done, record)
    m = record["metrics"]
    print(
        f"[quality] {arm} seed {seed}: {measured.wall_s:.0f} s, rare R {m['rare_recall']:.3f} F1 {m['rare_f1']:.3f} "
        f"AP50 {m['rare_ap50']:.3f}, mAP50 {m['mAP50']:.3f}",
        flush=True,
    )
    return record


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean, sample standard deviation and per-seed values of each reported metric, per arm.

    Args:
        runs (list[dict[str, Any]]): Run records.

    Returns:
        (dict[str, dict[str, Any]]): ``arm -> metric -> {mean, std, values}`` plus ``rare_f1_curve`` (seed mean).
    """
    keys = ("rare_recall", "rare_f1", "rare_ap50", "mAP50", "mAP50-95", "mean_f1")
    summary: dict[str, dict[str, Any]] = {}
    for arm in ARMS:
        arm_runs = sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["seed"])
        if not arm_runs:
            continue
        entry: dict[str, Any] = {
            "seeds": [r["seed"] for r in arm_runs],
            "best_epochs": [r.get("best_epoch") for r in arm_runs],
        }
        for key in keys:
            values = [float(r["metrics"][key]) for r in arm_runs]
            entry[key] = {
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "values": values,
            }
        curves = [r["rare_f1_per_epoch"] for r in arm_runs if r["rare_f1_per_epoch"]]
        n = min((len(c) for c in curves), default=0)
        entry["rare_f1_curve"] = [statistics.fmean(c[i] for c in curves) for i in range(n)]
        if "class_weights" in arm_runs[0]:
            entry["class_weights"] = arm_runs[0]["class_weights"]
        summary[arm] = entry
    return summary


def plot(summary: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Plot the rare class's F1 per epoch (mean over seeds) for each arm to a PNG (matplotlib Agg).

    Args:
        summary (dict[str, dict[str, Any]]): From :func:`summarise`.
        path (Path): PNG to write.
        title (str): Figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"plain": ("o", "-"), "inverse": ("s", "-"), "sqrt_inverse": ("^", "-"), "sqrt_inverse+f1": ("x", "--")}
    fig, ax = plt.subplots(figsize=(7.0, 4.2), layout="constrained")
    for arm, entry in summary.items():
        curve = entry["rare_f1_curve"]
        marker, line = styles.get(arm, ("o", "-"))
        ax.plot(range(1, len(curve) + 1), curve, marker=marker, linestyle=line, markersize=4, label=arm)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"F1 of rare class '{RARE_NAME}' (mean over seeds)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the study (resumably), then write the JSON, the plot and the document.

    Args:
        argv (list[str], optional): Command-line arguments.

    Returns:
        (int): Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 2 epochs, tiny data; docs untouched")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default bench/out/quality.json)")
    parser.add_argument("--no-doc", action="store_true", help="don't re-render docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    cfg = study_config(args.quick)
    out_json: Path = args.out or cfg["json"]

    from yolocustom.demo_data import generate_demo_dataset

    ds = cfg["dataset"]
    data = generate_demo_dataset(cfg["root"] / f"shapes_r{int(ds['rare_ratio'])}", **ds)
    from yolocustom.demo_data import count_instances

    counts = count_instances(data, "train")
    val_counts = count_instances(data, "val")
    start = time.time()
    runs = [one_run(cfg, data, arm, seed) for seed in cfg["seeds"] for arm in ARMS]
    summary = summarise(runs)
    result = {
        "machine": machine_info(),
        "design": {
            "dataset": {**ds, "train_instances": counts, "val_instances": val_counts},
            "train": cfg["train"],
            "seeds": cfg["seeds"],
            "arms": {arm: {"f1_logging": {"per_class": True}, **feats} for arm, feats in ARMS.items()},
            "rare_class": {"id": RARE_CLASS, "name": RARE_NAME},
            "validation": "YOLO(best.pt).val(data=..., imgsz=64, batch=32, plots=False, device='cpu')",
        },
        "runs": runs,
        "summary": summary,
        "session_wall_s": round(time.time() - start, 1),
    }
    write_json(out_json, result)
    print(f"[quality] wrote {out_json}")
    if not args.quick:
        plot(
            summary,
            DOCS / "quality.png",
            f"Demo set, rare class 1:{int(ds['rare_ratio'])}, yolo26n, {cfg['train']['epochs']} epochs, "
            f"{len(cfg['seeds'])} seeds",
        )
        print(f"[quality] wrote {DOCS / 'quality.png'}")
        if not args.no_doc:
            try:
                import run_all

                run_all.render_doc()
            except ImportError as e:  # run_all.py absent: the JSON is still there for a later render
                print(f"[quality] docs not rendered: {e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
