"""Quality study: do the rare-class and fine-tuning features help when fine-tuning a pretrained model on real data?

Design, fixed in this file before any result was seen (nothing below is tuned on test results):

* Data: a dataset YAML with train/val/test splits (default ``../shared/datasets/aquarium``: 7 real classes, 448 / 127 /
  63 photos). Train on train, choose on val, report on test (never used for a choice). The rare classes are the three
  with the fewest train instances (as Ultralytics loads them): starfish, stingray, puffin on Aquarium.
* Model: ``yolo11n.yaml`` with ``train.pretrained`` = the official COCO-Pose checkpoint (``yolo11n-pose.pt``, 493 of
  499 tensors transfer: backbone, neck and most of the head; only the class convolutions start random). Ultralytics
  defaults otherwise (optimizer ``auto``, 3 warm-up epochs, best.pt by its default fitness); ``f1_logging`` on in every
  arm because it only logs.
* Arms, phase 1 (one feature each, against ``plain``):
  ``cw_positives`` = ``class_weights: {auto: sqrt_inverse, apply_to: positives}``; ``cw_all`` = the same with
  ``apply_to: all``; ``rfs`` = ``repeat_factor_sampling: {threshold: 0.3}``; ``freeze`` = ``freeze: {layers: backbone,
  epochs: 2}``; ``freeze_ramp`` = gradual unfreezing, upper backbone (layers 5-10) at epoch 1, lower (0-4) at epoch 2,
  each with a 1-epoch LR ramp from 0.1x; ``layer_lr`` = ``layer_lr: {backbone_ratio: 0.1}``.
* Phase 2, ``combo``: the combination the single-feature arms support. Features are grouped in families (class
  weights, sampling, freezing, layer LR); a family is supported when its best arm beats ``plain`` on the val score
  (mean over seeds of val mAP50). ``combo`` joins the best arm of every supported family; when fewer than two
  families are supported it joins the two best families anyway, and the JSON records that no pair was supported.
* Seeds 0, 1, 2. Each run goes through the real CLI, ``python -m yolocustom train RECIPE``.
* Metrics: each run's best.pt is validated on test and on val (``YOLO(best).val(split=..., imgsz=<train imgsz>)``):
  mAP50, mAP50-95, and recall, F1 and AP50 of each rare class. Reported per arm as mean ± sample sd over seeds, and as
  paired differences against ``plain`` (same seed) with their mean ± sd; plus the training wall time per run.
* Budget (``--budget``; ``--quick`` is ``smoke``): ``smoke`` proves the pipeline (3 epochs at 64 px, a twentieth of
  train). ``cpu`` was sized by measurement on the 2-core machine: one 224 px epoch of Aquarium takes ~30 s per
  1-thread run (26 s train + 4 s val), two runs side by side; 24 runs x 10 epochs then take ~1.5 h. ``gpu``: 640 px,
  100 epochs.

Resumable: a run whose ``quality_metrics.json`` exists is loaded, a partial run folder is trained again.

Usage::

    python bench/bench_quality.py --quick                 # the smoke budget, JSON under bench/out/quick
    python bench/bench_quality.py --budget cpu            # ~1.5 h on 2 free CPU cores
    python bench/bench_quality.py --budget gpu --device 0
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DOCS, PYTHON, REPO, bench_env, main, run_measured, shell_join, work_dir, write_json  # noqa: E402

NAME = "quality_finetune"
TITLE = "Fine-tuning study: a pretrained model on real imbalanced data"
SHARED = REPO.parent / "shared"
WEIGHTS = {"auto": "sqrt_inverse"}
ARMS: dict[str, tuple[str, dict[str, Any]]] = {  # arm -> (family, features)
    "plain": ("", {}),
    "cw_positives": ("class_weights", {"class_weights": {**WEIGHTS, "apply_to": "positives"}}),
    "cw_all": ("class_weights", {"class_weights": {**WEIGHTS, "apply_to": "all"}}),
    "rfs": ("sampling", {"repeat_factor_sampling": {"threshold": 0.3}}),
    "freeze": ("freeze", {"freeze": {"layers": "backbone", "epochs": 2}}),
    "freeze_ramp": (
        "freeze",
        {
            "freeze": {
                "schedule": [{"epoch": 1, "layers": [5, 6, 7, 8, 9, 10]}, {"epoch": 2, "layers": [0, 1, 2, 3, 4]}],
                "ramp": {"epochs": 1, "start": 0.1},
            }
        },
    ),
    "layer_lr": ("layer_lr", {"layer_lr": {"backbone_ratio": 0.1}}),
}
BUDGETS: dict[str, dict[str, Any]] = {
    "smoke": {"epochs": 3, "imgsz": 64, "batch": 16, "seeds": [0], "fraction": 0.05, "jobs": 1},
    "cpu": {"epochs": 10, "imgsz": 224, "batch": 16, "seeds": [0, 1, 2], "jobs": 2},
    "gpu": {"epochs": 100, "imgsz": 640, "batch": 16, "seeds": [0, 1, 2], "jobs": 1},
}
KEYS = ("mAP50", "mAP50-95")
PER_CLASS = ("R", "F1", "AP50")
EVAL_LOCK = threading.Lock()  # runs train side by side; evaluations take turns


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The study's options."""
    parser.add_argument("--budget", choices=[b for b in BUDGETS if b != "smoke"], default="cpu")
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "aquarium" / "aquarium.yaml")
    parser.add_argument("--pretrained", type=Path, default=SHARED / "weights" / "yolo11n-pose.pt")
    parser.add_argument("--model", default="yolo11n.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per run")
    parser.add_argument("--jobs", type=int, help="runs side by side (default: the budget's)")
    parser.add_argument("--root", type=Path, help="where runs go (default bench/out/work/<name>_<budget>)")


def dataset(path: Path, out: Path) -> tuple[Path, dict[str, Any]]:
    """Write the dataset YAML with an absolute ``path`` (the shipped one leaves it empty); return it and its data."""
    data = yaml.safe_load(path.read_text())
    data["path"] = str(Path(data.get("path") or path.parent).resolve())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out, data


def image_classes(data: dict[str, Any], split: str) -> list[list[int]]:
    """Per label file of one split, the class id of each instance, as Ultralytics reads them (line by line)."""
    labels = Path(data["path"]) / str(data[split]).replace("images", "labels")
    return [
        [int(ln.split()[0]) for ln in f.read_text().splitlines() if ln.strip()] for f in sorted(labels.glob("*.txt"))
    ]


def instances(data: Path) -> dict[str, dict[str, int]]:
    """Instances per class name in each split, counted by yolocustom as Ultralytics' dataset loads them."""
    from yolocustom.datasets import resolve_dataset, split_image_paths
    from yolocustom.label_counts import count_labels

    spec = resolve_dataset(data)
    return {
        split: dict(zip(spec.names.values(), count_labels(split_image_paths(spec, split), spec.nc, workers=0).counts))
        for split in ("train", "val", "test")
    }


def sampled_images(data: dict[str, Any]) -> dict[str, float]:
    """Train images, and the images the ``rfs`` arm draws per epoch (the sum of its LVIS factors): more optimizer
    steps per epoch, which its comparison with ``plain`` has to be read with."""
    from yolocustom.features.repeat_factor import compute_repeat_factors

    images = image_classes(data, "train")
    threshold = ARMS["rfs"][1]["repeat_factor_sampling"]["threshold"]
    factors = compute_repeat_factors(images, len(data["names"]), threshold)
    return {"images": len(images), "expected": round(factors.expected_images(), 1)}


def run_one(cfg: dict[str, Any], arm: str, features: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train and evaluate one (arm, seed), or load its stored record."""
    name = f"{arm}_s{seed}"
    run_dir = cfg["root"] / "runs" / name
    done = run_dir / "quality_metrics.json"
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    train = {k: cfg[k] for k in ("epochs", "imgsz", "batch")}
    if cfg.get("fraction"):
        train["fraction"] = cfg["fraction"]
    recipe = {
        "model": cfg["model"],
        "data": str(cfg["data"]),
        "device": cfg["device"],
        "train": {
            **train,
            "pretrained": str(cfg["pretrained"]),
            "workers": 0,
            "cache": "ram",
            "plots": False,
            "seed": seed,
            "project": str(cfg["root"] / "runs"),
            "name": name,
            "exist_ok": True,
        },
        "features": {"f1_logging": {"per_class": True}, **features},
    }
    path = cfg["root"] / "recipes" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    cmd = [PYTHON, "-m", "yolocustom", "train", str(path)]
    print(f"[quality] {arm} seed {seed}: {shell_join(cmd)}", flush=True)
    env = bench_env(PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(cfg["threads"]))
    measured = run_measured(cmd, cfg["root"] / "logs" / f"{name}.log", env=env, timeout=12 * 3600)
    if measured.returncode != 0:
        raise SystemExit(f"[quality] {arm} seed {seed} failed (exit {measured.returncode}); see {measured.log}")
    best = run_dir / "weights" / "best.pt"
    with EVAL_LOCK:
        evals = {split: evaluate(best, split, cfg) for split in ("test", "val")}
    record = {
        "arm": arm,
        "seed": seed,
        "features": features,
        "train_wall_s": round(measured.wall_s, 1),
        **evals,
        "curves": curves(run_dir, cfg["rare"]),
    }
    write_json(done, record)
    t = record["test"]
    print(f"[quality] {arm} seed {seed}: {measured.wall_s:.0f} s, test mAP50 {t['mAP50']:.3f}", flush=True)
    return record


def evaluate(best: Path, split: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate best.pt on one split: overall mAP and the rare classes' recall, F1, AP50 (0 when absent)."""
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(cfg["threads"])
    m = YOLO(str(best)).val(
        data=str(cfg["data"]), split=split, imgsz=cfg["imgsz"], batch=16, plots=False, device=cfg["device"], workers=0
    )
    box, classes = m.box, [int(c) for c in m.box.ap_class_index]
    out: dict[str, Any] = {"mAP50": float(box.map50), "mAP50-95": float(box.map), "per_class": {}}
    for name in cfg["rare"]:
        c = next(i for i, n in m.names.items() if n == name)
        i = classes.index(c) if c in classes else None
        out["per_class"][name] = {
            k: float(getattr(box, a)[i]) if i is not None else 0.0 for k, a in zip(PER_CLASS, ("r", "f1", "ap50"))
        }
    return out


def curves(run_dir: Path, rare: list[str]) -> dict[str, list[float]]:
    """Per epoch: val mAP50 (results.csv) and the rare classes' mean F1 (f1_per_class.csv)."""

    def rows(name: str) -> list[dict[str, str]]:
        with open(run_dir / name, newline="") as f:
            return [{k.strip(): v.strip() for k, v in r.items()} for r in csv.DictReader(f)]

    return {
        "mAP50": [float(r["metrics/mAP50(B)"]) for r in rows("results.csv")],
        "rare_F1": [statistics.fmean(float(r[n] or 0) for n in rare) for r in rows("f1_per_class.csv")],
    }


def phase(cfg: dict[str, Any], arms: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (arm, seed), ``cfg['jobs']`` at a time, in a fixed order."""
    pairs = [(arm, feats, seed) for seed in cfg["seeds"] for arm, feats in arms.items()]
    with ThreadPoolExecutor(max_workers=cfg["jobs"]) as pool:
        return list(pool.map(lambda p: run_one(cfg, *p), pairs))


def val_score(runs: list[dict[str, Any]], arm: str) -> float:
    """The selection rule: mean over seeds of val mAP50."""
    return statistics.fmean(r["val"]["mAP50"] for r in runs if r["arm"] == arm)


def combination(runs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``combo`` arm's features and how the rule chose them (see the module docstring)."""
    plain = val_score(runs, "plain")
    best: dict[str, str] = {}
    for arm, (family, _) in ARMS.items():
        if family and (family not in best or val_score(runs, arm) > val_score(runs, best[family])):
            best[family] = arm
    ranked = sorted(best.values(), key=lambda a: val_score(runs, a), reverse=True)
    supported = [a for a in ranked if val_score(runs, a) > plain]
    chosen = supported if len(supported) >= 2 else ranked[:2]
    features: dict[str, Any] = {}
    for arm in chosen:
        features.update(ARMS[arm][1])
    rule = {
        "val_mAP50": {a: round(val_score(runs, a), 4) for a in ARMS},
        "best_per_family": best,
        "supported": supported,
        "chosen": chosen,
    }
    return features, rule


def stats(values: list[float]) -> dict[str, Any]:
    """Mean, sample sd and the values."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd, "values": values}


def flat(split: dict[str, Any]) -> dict[str, float]:
    """One split's figures as flat keys: mAP50, mAP50-95, <class>_R / _F1 / _AP50."""
    out = {k: split[k] for k in KEYS}
    for name, row in split["per_class"].items():
        out.update({f"{name}_{k}": v for k, v in row.items()})
    return out


def summarise(runs: list[dict[str, Any]], arms: list[str]) -> dict[str, Any]:
    """Per arm: test and val stats, paired test differences against plain, curves and train time."""
    by = {(r["arm"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    summary: dict[str, Any] = {}
    for arm in arms:
        rs = [by[(arm, s)] for s in seeds]
        entry: dict[str, Any] = {"features": rs[0]["features"], "train_wall_s": stats([r["train_wall_s"] for r in rs])}
        for split in ("test", "val"):
            rows = [flat(r[split]) for r in rs]
            entry[split] = {k: stats([row[k] for row in rows]) for k in rows[0]}
        base = [flat(by[("plain", s)]["test"]) for s in seeds]
        mine = [flat(r["test"]) for r in rs]
        entry["diff"] = {k: stats([m[k] - b[k] for m, b in zip(mine, base)]) for k in mine[0]}
        for curve in ("mAP50", "rare_F1"):
            n = min(len(r["curves"][curve]) for r in rs)
            entry[f"curve_{curve}"] = [statistics.fmean(r["curves"][curve][i] for r in rs) for i in range(n)]
        summary[arm] = entry
    return summary


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the study (phase 1, then the combination chosen on val) and return its record."""
    budget = "smoke" if args.quick else args.budget
    cfg = {**BUDGETS[budget], "budget": budget}
    cfg["jobs"] = args.jobs or cfg["jobs"]
    root = args.root or work_dir(args, f"{NAME}_{budget}")
    data, spec = dataset(args.data, root / "data.yaml")
    counts = instances(data)
    rare = sorted(counts["train"], key=counts["train"].__getitem__)[:3]
    cfg.update(
        root=root,
        data=data,
        rare=rare,
        model=args.model,
        pretrained=args.pretrained.resolve(),
        device=args.device,
        threads=args.threads,
    )
    runs = phase(cfg, {arm: feats for arm, (_, feats) in ARMS.items()})
    combo, rule = combination(runs)
    runs += phase(cfg, {"combo": combo})
    arms = [*ARMS, "combo"]
    return {
        "design": {
            "budget": {k: cfg.get(k) for k in ("budget", "epochs", "imgsz", "batch", "seeds", "fraction", "jobs")},
            "device": args.device,
            "model": args.model,
            "pretrained": args.pretrained.name,
            "dataset": args.data.parent.name,
            "instances": counts,
            "rfs_images": sampled_images(spec),
            "rare": rare,
            "arms": {a: ARMS[a][1] for a in ARMS} | {"combo": combo},
            "combo_rule": rule,
        },
        "runs": runs,
        "summary": summarise(runs, arms),
    }


def render(result: dict[str, Any]) -> str:
    """The study's section of docs/BENCHMARKS.md, and its plot (docs/quality_finetune.png), from the JSON alone."""
    d, s = result["design"], result["summary"]
    b, rare, test = d["budget"], d["rare"], d["instances"]["test"]

    def ms(e: dict[str, Any], signed: bool = False) -> str:
        return f"{e['mean']:+.3f} ± {e['sd']:.3f}" if signed else f"{e['mean']:.3f} ± {e['sd']:.3f}"

    lines = [
        f"## {TITLE} ({d['dataset']})",
        "",
        f"`{d['model']}` with the COCO-pretrained `{d['pretrained']}` backbone, fine-tuned {b['epochs']} epochs at "
        f"{b['imgsz']} px, batch {b['batch']}, seeds {b['seeds']}, device `{d['device']}`; {len(result['runs'])} runs, "
        f"{result['seconds'] / 3600:.1f} h wall clock, {b['jobs']} at a time. Trained on train, best.pt chosen on val "
        f"(Ultralytics' fitness), the combination chosen on val (rule in `bench/bench_quality.py`); every figure "
        f"below is on the **test** split ({sum(test.values())} instances; "
        + ", ".join(f"{n} {test[n]}" for n in rare)
        + "), never used for a choice. Mean ± sample sd over seeds.",
        "",
        "| arm | mAP50 | mAP50-95 | " + " | ".join(f"{n} R / F1 / AP50" for n in rare) + " | train min/run |",
        "|---|---:|---:|" + "---:|" * len(rare) + "---:|",
    ]
    for arm, e in s.items():
        t = e["test"]
        cells = [" / ".join(f"{t[f'{n}_{k}']['mean']:.2f}" for k in PER_CLASS) for n in rare]
        lines.append(
            f"| {arm} | {ms(t['mAP50'])} | {ms(t['mAP50-95'])} | "
            + " | ".join(cells)
            + f" | {e['train_wall_s']['mean'] / 60:.1f} |"
        )
    lines += [
        "",
        "Paired differences against `plain` (same seed), test, mean ± sd over seeds:",
        "",
        "| arm | Δ mAP50 | Δ mAP50-95 | " + " | ".join(f"Δ {n} R / AP50" for n in rare) + " |",
        "|---|---:|---:|" + "---:|" * len(rare),
    ]
    for arm, e in s.items():
        if arm == "plain":
            continue
        df = e["diff"]
        cells = [f"{df[f'{n}_R']['mean']:+.2f} / {df[f'{n}_AP50']['mean']:+.2f}" for n in rare]
        lines.append(f"| {arm} | {ms(df['mAP50'], True)} | {ms(df['mAP50-95'], True)} | " + " | ".join(cells) + " |")
    rule = d["combo_rule"]
    lines += [
        "",
        f"Combination rule (val mAP50, mean over seeds): plain {rule['val_mAP50']['plain']:.3f}; best per family "
        + ", ".join(f"{f} `{a}` {rule['val_mAP50'][a]:.3f}" for f, a in rule["best_per_family"].items())
        + f". Supported (above plain on val): {', '.join(f'`{a}`' for a in rule['supported']) or 'none'}; `combo` = "
        + " + ".join(f"`{a}`" for a in rule["chosen"])
        + ("" if len(rule["supported"]) >= 2 else " (fewer than two supported: the two best families, as a check)")
        + ". Arms: "
        + "; ".join(f"`{a}`: `{json.dumps(f) if f else 'none'}`" for a, f in d["arms"].items())
        + ".",
        "",
        "![fine-tuning study](quality_finetune.png)",
        "",
        *notes(result),
    ]
    plot(result, DOCS / "quality_finetune.png")
    return "\n".join(lines)


def notes(result: dict[str, Any]) -> list[str]:
    """How to read the result: the reading is by hand, every figure in it comes from ``result``."""
    d, s = result["design"], result["summary"]
    b, rare, rfs = d["budget"], d["rare"], d["rfs_images"]

    def delta(arm: str, key: str = "mAP50") -> str:
        e = s[arm]["diff"][key]
        return f"{e['mean']:+.3f} ± {e['sd']:.3f}"

    def wins(arm: str, key: str = "mAP50") -> str:
        values = s[arm]["diff"][key]["values"]
        return f"{sum(v > 0 for v in values)} of {len(values)} seeds"

    combo = d["combo_rule"]["chosen"]
    return [
        "**Reading it.**",
        f"- **Class weights help here.** `cw_positives` {delta('cw_positives')} test mAP50 against `plain` "
        f"({wins('cw_positives')}), `cw_all` {delta('cw_all')} ({wins('cw_all')}); `positives` is ahead on mAP50 and "
        f"on val ({d['combo_rule']['val_mAP50']['cw_positives']:.3f} vs {d['combo_rule']['val_mAP50']['cw_all']:.3f}) "
        "but within the seed spread of `all`, so the default stays `positives`.",
        f"- **Repeat-factor sampling helps most on its own** ({delta('rfs')}, {wins('rfs')}), but an epoch under "
        f"sampling holds {rfs['expected'] / rfs['images']:.2f}x the train images ({rfs['expected']:.0f} expected vs "
        f"{rfs['images']}), so at an equal epoch count it also took that many more optimizer steps; part of its gain "
        "may be the extra steps.",
        f"- **The combination the single arms support** ({' + '.join(f'`{a}`' for a in combo)}, chosen on val) is the "
        f"best arm: {delta('combo')} test mAP50 ({wins('combo')}), {delta('combo', 'mAP50-95')} mAP50-95, and the "
        f"rarest class's recall {s['combo']['diff'][f'{rare[0]}_R']['mean']:+.2f}.",
        f"- **Freezing and a lower backbone LR do not help in this regime.** `freeze` {delta('freeze')} "
        f"({wins('freeze')} above plain), `freeze_ramp` {delta('freeze_ramp')} ({wins('freeze_ramp')}), `layer_lr` "
        f"{delta('layer_lr')} ({wins('layer_lr')}): with a few epochs to adapt a COCO backbone to "
        "underwater photos, slowing the backbone costs accuracy. They are not recommended for fine-tuning unless a "
        "measurement on your data says otherwise.",
        f"- **Limits.** CPU budget: {b['epochs']} epochs at {b['imgsz']} px, far from a converged detector (plain test "
        f"mAP50 {s['plain']['test']['mAP50']['mean']:.3f}); the test split holds "
        + ", ".join(f"{d['instances']['test'][n]} {n}" for n in rare)
        + " instances, so per-class figures move in steps of 1/n. A longer schedule or larger images may shrink the "
        "gaps, and freezing may matter more there; the `gpu` budget (640 px, 100 epochs) is the study to run when a "
        "GPU is lent.",
        "",
    ]


def plot(result: dict[str, Any], path: Path) -> None:
    """Val mAP50 per epoch per arm, and the paired test differences against plain with their sd."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    s = {a: e for a, e in result["summary"].items()}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.0, 4.0), layout="constrained")
    for arm, e in s.items():
        ys = e["curve_mAP50"]
        ax1.plot(range(1, len(ys) + 1), ys, marker="o", markersize=3, label=arm)
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set(xlabel="epoch", ylabel="val mAP50 (mean over seeds)")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    arms = [a for a in s if a != "plain"]
    rare = result["design"]["rare"]
    keys = [("mAP50", "mAP50"), *[(f"{n}_AP50", f"{n} AP50") for n in rare]]
    width = 0.8 / len(keys)
    for i, (key, label) in enumerate(keys):
        xs = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(arms))]
        ax2.bar(
            xs,
            [s[a]["diff"][key]["mean"] for a in arms],
            width,
            yerr=[s[a]["diff"][key]["sd"] for a in arms],
            label=label,
        )
    ax2.axhline(0, color="black", linewidth=0.8)
    ax2.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
    ax2.set(ylabel="test, arm - plain (paired by seed)")
    ax2.legend(fontsize=8)
    fig.suptitle(f"{result['design']['dataset']}: fine-tuning {result['design']['model']}", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main(sys.modules[__name__]))
