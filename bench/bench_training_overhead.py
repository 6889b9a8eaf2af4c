"""Training overhead: the same tiny run as plain Ultralytics and as ``yolocustom train`` with four features on.

Both arms train ``yolo26n.yaml`` from scratch on the generated shapes set (CPU, imgsz 64) with identical Ultralytics
arguments, each run in its own fresh subprocess, the arms alternated (ABBA order, so slow drift of the machine hits both
arms alike):

* ``plain``: ``python -c "from ultralytics import YOLO; YOLO('yolo26n.yaml').train(**args)"``;
* ``yolocustom``: ``yolocustom train recipe.yaml`` (the real CLI) with ``f1_logging`` (per-class table and CSV),
  ``class_weights`` (auto sqrt_inverse), ``fitness`` (0.5 F1 + 0.5 mAP50) and ``layer_lr`` (backbone x 0.3) on.
  ``freeze`` is off: it changes the work done per epoch (see ``bench_freeze_speed.py``).

The same pair runs for segmentation too (the segment row: ``yolo26n-seg.yaml`` on the shapes set generated with
``--task segment``, the F1/fitness features on the mask family), same ≤ 1.03 epoch-time target; ``--tasks`` picks them.

Epoch time is the difference of consecutive values of results.csv's cumulative ``time`` column (which includes the
epoch's validation), epoch 1 excluded as warm-up; a run's figure is the median of its epochs, an arm's figure the median
over its runs. Peak RSS is ``ru_maxrss`` of the child from ``wait4``. Results go to ``--out`` as JSON.

Usage::

    python bench/bench_training_overhead.py                # 8 runs per arm, 5 epochs, 400/100 images
    python bench/bench_training_overhead.py --quick        # smoke run: 1 run per arm, 3 epochs, 64/16 images
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    OUT_DIR,
    PYTHON,
    YOLOCUSTOM,
    epoch_times,
    machine_info,
    median,
    process_cpu_seconds,
    read_results_csv,
    run_measured,
    shell_join,
    write_json,
)

FEATURES: dict[str, Any] = {
    "f1_logging": {"per_class": True},
    "class_weights": {"auto": "sqrt_inverse"},
    "fitness": {"weights": {"f1": 0.5, "mAP50": 0.5}},
    "layer_lr": {"backbone_ratio": 0.3},
}
# One row per task: (model, features). Segment: the same features, the fitness on the mask family.
TASK_ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "detect": ("yolo26n.yaml", FEATURES),
    "segment": ("yolo26n-seg.yaml", {**FEATURES, "fitness": {"weights": {"f1(M)": 0.5, "mAP50(M)": 0.5}}}),
}
PLAIN_SNIPPET = "import json, sys; from ultralytics import YOLO; YOLO(sys.argv[2]).train(**json.loads(sys.argv[1]))"
TARGET_TIME_RATIO = 1.03
TARGET_RSS_RATIO = 1.05


def train_args(data: Path, project: Path, name: str, epochs: int) -> dict[str, Any]:
    """Return the Ultralytics ``train()`` arguments shared by both arms.

    Args:
        data (Path): Dataset YAML.
        project (Path): Runs folder.
        name (str): Run name.
        epochs (int): Epochs.

    Returns:
        (dict[str, Any]): Keyword arguments (JSON- and YAML-safe).
    """
    return {
        "data": str(data),
        "epochs": epochs,
        "imgsz": 64,
        "batch": 16,
        "workers": 0,
        "device": "cpu",
        "seed": 0,
        "plots": False,
        "project": str(project),
        "name": name,
        "exist_ok": True,
    }


def plain_command(args: dict[str, Any], task: str = "detect") -> list[str]:
    """Return the plain-Ultralytics command line for ``args`` and the task's model."""
    return [PYTHON, "-c", PLAIN_SNIPPET, json.dumps(args), TASK_ROWS[task][0]]


def yolocustom_command(args: dict[str, Any], recipe_path: Path, task: str = "detect") -> list[str]:
    """Write the yolocustom recipe equivalent to ``args`` (plus the features) and return its CLI command line.

    Args:
        args (dict[str, Any]): From :func:`train_args`.
        recipe_path (Path): Where to write the recipe.
        task (str): The row (model and features) of :data:`TASK_ROWS`.

    Returns:
        (list[str]): ``yolocustom train RECIPE``.
    """
    model, features = TASK_ROWS[task]
    train = {k: v for k, v in args.items() if k not in {"data", "device"}}
    recipe = {"model": model, "data": args["data"], "device": args["device"], "train": train}
    recipe["features"] = features
    recipe_path.parent.mkdir(parents=True, exist_ok=True)
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return [YOLOCUSTOM, "train", str(recipe_path)]


class EpochCpuProbe:
    """Records the child's CPU seconds (all threads) each time its results.csv gains a row, i.e. at each epoch end.

    CPU time is immune to the process being descheduled by other load on the machine, so it is a second, steadier
    view of the same epochs next to their wall-clock time.
    """

    def __init__(self, csv: Path):
        """Watch ``csv``.

        Args:
            csv (Path): The run's results.csv (may not exist yet).
        """
        self.csv = csv
        self.rows = 0
        self.cpu_at_row: list[float] = []

    def __call__(self, pid: int) -> None:
        """Poll once: if a row was added since the last call, record the child's CPU seconds."""
        try:
            rows = self.csv.read_bytes().count(b"\n") - 1
        except OSError:
            return
        if rows > self.rows:
            cpu = process_cpu_seconds(pid)
            if cpu is not None:
                self.cpu_at_row += [cpu] * (rows - self.rows)
                self.rows = rows

    def epoch_cpu(self) -> list[float]:
        """CPU seconds of epochs 2..N (differences between consecutive epoch ends)."""
        return [b - a for a, b in zip(self.cpu_at_row, self.cpu_at_row[1:], strict=False)]


def bootstrap_median_ci(values: list[float], n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap confidence interval of the median of ``values``.

    Args:
        values (list[float]): Samples (here: per-pair time ratios).
        n (int): Resamples.
        seed (int): RNG seed.

    Returns:
        (tuple[float, float]): Lower and upper bounds.
    """
    import random
    import statistics

    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]


def measure_arm(arm: str, index: int, root: Path, data: Path, epochs: int, task: str = "detect") -> dict[str, Any]:
    """Run one arm once in a fresh subprocess and return its measurements.

    Args:
        arm (str): ``plain`` or ``yolocustom``.
        index (int): Repeat number (names the run folder).
        root (Path): Work folder.
        data (Path): Dataset YAML.
        epochs (int): Epochs.
        task (str): The row of :data:`TASK_ROWS`.

    Returns:
        (dict[str, Any]): Command, exit code, wall time, peak RSS, per-epoch times and their median.
    """
    name = f"{arm}_{index}" if task == "detect" else f"{task}_{arm}_{index}"
    project = root / "runs"
    shutil.rmtree(project / name, ignore_errors=True)
    args = train_args(data, project, name, epochs)
    cmd = (
        plain_command(args, task)
        if arm == "plain"
        else yolocustom_command(args, root / "recipes" / f"{name}.yaml", task)
    )
    probe = EpochCpuProbe(project / name / "results.csv")
    measured = run_measured(cmd, root / "logs" / f"{name}.log", poll=probe)
    if measured.returncode != 0:
        raise SystemExit(f"{arm} run {index} failed (exit {measured.returncode}); see {measured.log}")
    rows = read_results_csv(project / name / "results.csv")
    epochs_s = epoch_times(rows)
    cpu_s = probe.epoch_cpu()
    record = {
        "task": task,
        "arm": arm,
        "repeat": index,
        "command": shell_join(cmd),
        "wall_s": round(measured.wall_s, 3),
        "maxrss_mb": round(measured.maxrss_mb, 1),
        "epoch1_s": rows[0]["time"],
        "epoch_s": [round(x, 3) for x in epochs_s],
        "median_epoch_s": round(median(epochs_s), 4),
        "epoch_cpu_s": [round(x, 3) for x in cpu_s],
        "median_epoch_cpu_s": round(median(cpu_s), 4) if cpu_s else None,
        "train_time_s": rows[-1]["time"],
        "startup_and_teardown_s": round(measured.wall_s - rows[-1]["time"], 3),
    }
    print(
        f"[overhead] {task:<7} {arm:<10} #{index}: median epoch {record['median_epoch_s']:.3f} s "
        f"(CPU {record['median_epoch_cpu_s'] or float('nan'):.2f} s), wall {measured.wall_s:.1f} s, "
        f"peak RSS {measured.maxrss_mb:.0f} MiB",
        flush=True,
    )
    return record


def micro_child(data: Path, out: Path, pairs: int, val_pairs: int) -> None:
    """Interleaved A/B in one process: a plain ``DetectionTrainer`` and the yolocustom trainer, built side by side.

    Both trainers are set up the way a real run sets them up (``_setup_train``: model, loaders, optimizer, class
    weights, layer-LR groups, F1 validator). Then training steps (preprocess, forward with loss, backward,
    ``optimizer_step`` with EMA) alternate A, B, A, B... on the same pre-drawn batches, and so do full validations
    (``trainer.validate()``, which runs the F1 metrics and the recipe's fitness). Alternating step by step cancels
    drift of the machine, which dominates the noise between separate processes.

    Args:
        data (Path): Dataset YAML.
        out (Path): JSON written with the per-step and per-validation times.
        pairs (int): Measured training-step pairs (after 10 warm-up pairs).
        val_pairs (int): Measured validation pairs (after 1 warm-up pair).
    """
    import tempfile
    import time

    from ultralytics.models.yolo.detect import DetectionTrainer

    from yolocustom.factory import build_trainer, train_overrides
    from yolocustom.recipe import validate_recipe

    with tempfile.TemporaryDirectory(prefix="yc-micro-") as tmp:
        base = train_args(data, Path(tmp), "plain", 5)
        plain = DetectionTrainer(overrides={**base, "model": "yolo26n.yaml"})
        recipe = validate_recipe(
            {
                "model": "yolo26n.yaml",
                "data": str(data),
                "device": "cpu",
                "train": {k: v for k, v in base.items() if k not in {"data", "device"}} | {"name": "yc"},
                "features": FEATURES,
            }
        )
        custom = build_trainer(recipe)(overrides={**train_overrides(recipe), "model": "yolo26n.yaml"})
        trainers = {"plain": plain, "yolocustom": custom}
        for trainer in trainers.values():
            trainer._setup_train()
            trainer.epoch = 0
            trainer._model_train()
        batches = [b for _, b in zip(range(8), plain.train_loader, strict=False)]

        def step(trainer: Any, batch: dict[str, Any]) -> float:
            start = time.perf_counter()
            batch = trainer.preprocess_batch(dict(batch))
            loss, trainer.loss_items = trainer.model(batch)
            if not trainer.loss_names:  # as _do_train does on its first batch; the validator needs both
                trainer.loss_names = tuple(trainer.loss_items)
            trainer.loss = loss.sum()
            trainer.loss.backward()
            trainer.optimizer_step()
            return time.perf_counter() - start

        def validate(trainer: Any) -> float:
            start = time.perf_counter()
            trainer.validate()
            trainer._model_train()
            return time.perf_counter() - start

        times: dict[str, dict[str, list[float]]] = {arm: {"step": [], "validate": []} for arm in trainers}
        for i in range(10 + pairs):
            order = list(trainers) if i % 2 == 0 else list(trainers)[::-1]
            for arm in order:
                dt = step(trainers[arm], batches[i % len(batches)])
                if i >= 10:
                    times[arm]["step"].append(dt)
        for i in range(1 + val_pairs):
            order = list(trainers) if i % 2 == 0 else list(trainers)[::-1]
            for arm in order:
                dt = validate(trainers[arm])
                if i >= 1:
                    times[arm]["validate"].append(dt)
    out.write_text(json.dumps(times))


def summarise_micro(times: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Per-arm median step and validation times, and the paired yolocustom/plain ratios with bootstrap intervals.

    Args:
        times (dict): From :func:`micro_child`.

    Returns:
        (dict[str, Any]): Medians, ratios, 95 % intervals and sample counts.
    """
    result: dict[str, Any] = {}
    for kind in ("step", "validate"):
        p, y = times["plain"][kind], times["yolocustom"][kind]
        ratios = [b / a for a, b in zip(p, y, strict=True)]
        result[kind] = {
            "n": len(ratios),
            "plain_median_s": median(p),
            "yolocustom_median_s": median(y),
            "ratio_of_medians": median(y) / median(p),
            "paired_ratio_median": median(ratios),
            "paired_ratio_ci95": bootstrap_median_ci(ratios) if len(ratios) > 1 else None,
        }
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-arm medians and the yolocustom/plain ratios.

    Args:
        runs (list[dict[str, Any]]): Run records from :func:`measure_arm`.

    Returns:
        (dict[str, Any]): ``arms`` (median epoch time, its min-max over runs, peak RSS, wall) and ``ratios``.
    """
    arms: dict[str, dict[str, Any]] = {}
    for arm in ("plain", "yolocustom"):
        rs = [r for r in runs if r["arm"] == arm]
        per_run = [r["median_epoch_s"] for r in rs]
        arms[arm] = {
            "runs": len(rs),
            "median_epoch_s": median(per_run),
            "epoch_s_min_max": [min(per_run), max(per_run)],
            "median_epoch_cpu_s": median([r["median_epoch_cpu_s"] for r in rs if r["median_epoch_cpu_s"]]),
            "median_maxrss_mb": median([r["maxrss_mb"] for r in rs]),
            "maxrss_mb_min_max": [min(r["maxrss_mb"] for r in rs), max(r["maxrss_mb"] for r in rs)],
            "median_wall_s": median([r["wall_s"] for r in rs]),
            "median_epoch1_s": median([r["epoch1_s"] for r in rs]),
            "median_startup_and_teardown_s": median([r["startup_and_teardown_s"] for r in rs]),
        }
    p, y = arms["plain"], arms["yolocustom"]
    ratios = {
        "epoch_time": y["median_epoch_s"] / p["median_epoch_s"],
        "epoch_cpu": y["median_epoch_cpu_s"] / p["median_epoch_cpu_s"],
        "peak_rss": y["median_maxrss_mb"] / p["median_maxrss_mb"],
        "wall": y["median_wall_s"] / p["median_wall_s"],
    }
    by_repeat: dict[int, dict[str, dict[str, Any]]] = {}
    for r in runs:
        by_repeat.setdefault(r["repeat"], {})[r["arm"]] = r
    complete = [v for _, v in sorted(by_repeat.items()) if len(v) == 2]
    pair_time = [v["yolocustom"]["median_epoch_s"] / v["plain"]["median_epoch_s"] for v in complete]
    pair_cpu = [
        v["yolocustom"]["median_epoch_cpu_s"] / v["plain"]["median_epoch_cpu_s"]
        for v in complete
        if v["yolocustom"]["median_epoch_cpu_s"] and v["plain"]["median_epoch_cpu_s"]
    ]
    pairs = {
        "epoch_time_ratios": [round(x, 4) for x in pair_time],
        "epoch_time_median": median(pair_time),
        "epoch_time_ci95": bootstrap_median_ci(pair_time) if len(pair_time) > 1 else None,
        "epoch_cpu_ratios": [round(x, 4) for x in pair_cpu],
        "epoch_cpu_median": median(pair_cpu),
        "epoch_cpu_ci95": bootstrap_median_ci(pair_cpu) if len(pair_cpu) > 1 else None,
    }
    return {
        "arms": arms,
        "ratios": ratios,
        "pairs": pairs,
        "targets": {"epoch_time": TARGET_TIME_RATIO, "peak_rss": TARGET_RSS_RATIO},
        "met": {
            "epoch_time": ratios["epoch_time"] <= TARGET_TIME_RATIO,
            "peak_rss": ratios["peak_rss"] <= TARGET_RSS_RATIO,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON.

    Args:
        argv (list[str], optional): Command-line arguments.

    Returns:
        (int): Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 run per arm, 3 epochs, 64/16 images")
    parser.add_argument("--repeats", type=int, default=None, help="runs per arm (default 8; --quick: 1)")
    parser.add_argument("--no-micro", action="store_true", help="skip the in-process interleaved step A/B")
    parser.add_argument("--micro-child", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 5; --quick: 3)")
    parser.add_argument("--tasks", default="detect,segment", help="rows to run, comma-separated (detect,segment)")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON results (default bench/out/training_overhead.json)"
    )
    args = parser.parse_args(argv)
    args.out = args.out or OUT_DIR / ("training_overhead_quick.json" if args.quick else "training_overhead.json")
    micro_pairs, micro_val_pairs = (10, 1) if args.quick else (150, 5)
    if args.micro_child:
        micro_child(Path(args.micro_child[0]), Path(args.micro_child[1]), micro_pairs, micro_val_pairs)
        return 0
    repeats = args.repeats or (1 if args.quick else 8)
    epochs = args.epochs or (3 if args.quick else 5)
    n_train, n_val = (64, 16) if args.quick else (400, 100)
    root = OUT_DIR / ("overhead_quick" if args.quick else "overhead")

    from yolocustom.demo_data import generate_demo_dataset

    data = generate_demo_dataset(root / "shapes", n_train=n_train, n_val=n_val, img_size=64, seed=0, rare_ratio=10)
    machine = machine_info()
    runs: list[dict[str, Any]] = []
    task_runs: dict[str, list[dict[str, Any]]] = {}
    for task in args.tasks.split(","):
        if task not in TASK_ROWS:
            raise SystemExit(f"--tasks: expected some of {', '.join(TASK_ROWS)}, found {task!r}")
        task_data = data
        if task != "detect":
            task_data = generate_demo_dataset(
                root / f"shapes-{task}", n_train=n_train, n_val=n_val, img_size=64, seed=0, rare_ratio=10, task=task
            )
        for i in range(repeats):
            order = ("plain", "yolocustom") if i % 2 == 0 else ("yolocustom", "plain")  # ABBA
            for arm in order:
                task_runs.setdefault(task, []).append(measure_arm(arm, i, root, task_data, epochs, task))
    runs = task_runs.get("detect", [])
    micro: dict[str, Any] | None = None
    micro_cmd = [PYTHON, str(Path(__file__).resolve()), "--micro-child", str(data), str(root / "micro.json")]
    if args.quick:
        micro_cmd.insert(2, "--quick")
    if not args.no_micro:
        measured = run_measured(micro_cmd, root / "logs" / "micro.log")
        if measured.returncode != 0:
            raise SystemExit(f"micro A/B failed (exit {measured.returncode}); see {measured.log}")
        micro = summarise_micro(json.loads((root / "micro.json").read_text()))
        micro["command"] = shell_join(micro_cmd)
        s = micro["step"]
        print(f"[overhead] micro A/B: step ratio {s['paired_ratio_median']:.3f} {s['paired_ratio_ci95']}", flush=True)
    plain_args = train_args(data, root / "runs", "plain_0", epochs)
    rows = {
        task: {"model": TASK_ROWS[task][0], "features": TASK_ROWS[task][1], "runs": rs, **summarise(rs)}
        for task, rs in task_runs.items()
    }
    result = {
        "benchmark": "training_overhead",
        "machine": machine,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "design": {
            "dataset": {"n_train": n_train, "n_val": n_val, "img_size": 64, "rare_ratio": 10, "seed": 0},
            "ultralytics_args": train_args(data, root / "runs", "NAME", epochs),
            "features": FEATURES,
            "repeats_per_arm": repeats,
            "order": "ABBA (plain first on even repeats, yolocustom first on odd ones), each run a fresh subprocess",
            "epoch_time": "results.csv time column differences, epoch 1 excluded; median per run, median over runs; "
            "CPU time per epoch: the child's user+system seconds (/proc/PID/stat) sampled when each row appears",
            "peak_rss": "ru_maxrss of the child process (os.wait4)",
        },
        "commands": {
            "benchmark": "python bench/bench_training_overhead.py" + (" --quick" if args.quick else ""),
            "plain": f'.venv/bin/python -c "{PLAIN_SNIPPET}" ' + shell_join([json.dumps(plain_args)]),
            "yolocustom": next((r["command"] for r in runs if r["arm"] == "yolocustom"), None),
        },
        "runs": runs,
        **(summarise(runs) if runs else {}),
        "tasks": {task: {k: v for k, v in row.items() if k != "runs"} for task, row in rows.items()},
        "micro": micro,
        # A forked child starts from its parent's peak-RSS mark; this shows the parent's was far below the children's.
        "measuring_process_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    write_json(args.out, result)
    for task, row in rows.items():
        r = row["ratios"]
        print(f"[overhead] {task}: epoch-time ratio {r['epoch_time']:.3f}, peak-RSS ratio {r['peak_rss']:.3f}")
    print(f"[overhead] wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
