"""Read what a run folder holds into one :class:`Run`: settings, per-epoch metrics and fitness, per-class rows.

Sources, each optional except that a run folder has ``results.csv`` or ``args.yaml``:

- ``recipe.yaml`` (yolocustom), else Ultralytics' ``args.yaml``, for the settings and the fitness definition;
- ``results.csv`` (Ultralytics) for the per-epoch metrics; it has no fitness column, so the fitness of every epoch is
  recomputed here with the functions the trainer used (``features/fitness.py``);
- ``metrics_per_class.csv`` (the fitness feature) and ``f1_per_class.csv`` (``f1_logging.per_class``) per class;
- ``thresholds.yaml`` (``features.thresholds``) for the deployed per-class confidence.

What a run lacks goes into :attr:`Run.missing` instead of an error, so a plain Ultralytics run still reports.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from yolocustom.errors import UserError
from yolocustom.features.f1_logging import PER_CLASS_FILE as F1_PER_CLASS_FILE
from yolocustom.features.fitness import (
    DEFAULT_FITNESS,
    PER_CLASS_COLUMNS,
    PER_CLASS_KEYS,
    PER_CLASS_METRICS_FILE,
    TIE_BREAK,
    compute_fitness,
    fitness_formula,
    per_class_fitness,
    resolve_classes,
)
from yolocustom.features.recipe_record import RECIPE_FILE
from yolocustom.recipe import FitnessFeature, suggest
from yolocustom.tasks import BOX, FAMILIES, TASKS, Family, metric_key, parse_metric
from yolocustom.tune.runner import TRIALS_DIR
from yolocustom.ultralytics_cfg import load_ultralytics_cfg

RESULTS_FILE = "results.csv"
ARGS_FILE = "args.yaml"
THRESHOLDS_FILE = "thresholds.yaml"
RECIPE_TOP_LEVEL = ("model", "task", "data", "device")  # args.yaml keys a recipe holds outside ``train:``
DERIVED_ARGS = ("save_dir",)  # args.yaml entries Ultralytics fills in itself: not settings anyone chose

PerClass = dict[str, dict[str, dict[str, float]]]  # family suffix -> class name -> {instances, P, R, F1, AP50, ...}


@dataclass
class Run:
    """One run folder, read.

    Attributes:
        path (Path): The run folder.
        label (str): Its name in the report (the shortest path tail that tells the runs apart).
        task (str): detect, segment, pose or obb.
        settings (dict[str, Any]): Flattened dotted-key settings (``features.fitness.metric``).
        settings_source (str): The file the settings came from (``recipe.yaml`` or ``args.yaml``).
        fitness_name (str): How the run's fitness is defined (``fitness_formula``'s text).
        family (Family): The metric family of the per-class table: thresholds.yaml's, else the fitness's, else boxes.
        epochs (list[int]): Epochs with a ``results.csv`` row.
        metrics (list[dict[str, float]]): The ``metrics/...`` columns of each of those rows.
        fitness (list[float]): The recipe's fitness at each of those epochs.
        per_class (dict[int, PerClass]): Epoch -> ``metrics_per_class.csv`` rows of classes with val instances.
        f1_per_class (dict[int, dict[str, float]]): Epoch -> class -> F1 of ``family`` (``f1_per_class.csv``).
        thresholds (dict[str, dict[str, float]]): Class name -> ``threshold`` (the deployed confidence) and, where
            given, ``instances`` (``thresholds.yaml``).
        missing (list[str]): What the report cannot show for this run, and why.
    """

    path: Path
    label: str = ""
    task: str = "detect"
    settings: dict[str, Any] = field(default_factory=dict)
    settings_source: str = RECIPE_FILE
    fitness_name: str = ""
    family: Family = BOX
    epochs: list[int] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    fitness: list[float] = field(default_factory=list)
    per_class: dict[int, PerClass] = field(default_factory=dict)
    f1_per_class: dict[int, dict[str, float]] = field(default_factory=dict)
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def best_index(self) -> int | None:
        """Row of the best epoch: the last one at the highest fitness, as best.pt is re-saved on a tie."""
        finite = [(v, i) for i, v in enumerate(self.fitness) if not math.isnan(v)]
        return max(finite)[1] if finite else None

    @property
    def class_rows(self) -> dict[str, dict[str, float]]:
        """Per-class rows of the per-class table's family at the best epoch (``{}`` without metrics_per_class.csv)."""
        i = self.best_index
        return {} if i is None else self.per_class.get(self.epochs[i], {}).get(self.family.suffix, {})

    def f1_curves(self) -> dict[str, list[tuple[int, float]]]:
        """Class -> ``(epoch, F1)`` points of the table's family, from metrics_per_class.csv, else f1_per_class.csv."""
        curves: dict[str, list[tuple[int, float]]] = {}
        if self.per_class:
            for epoch, tables in sorted(self.per_class.items()):
                for name, row in tables.get(self.family.suffix, {}).items():
                    curves.setdefault(name, []).append((epoch, row["F1"]))
        else:
            for epoch in sorted(self.f1_per_class):
                for name, value in self.f1_at(epoch).items():
                    curves.setdefault(name, []).append((epoch, value))
        return curves

    def f1_at(self, epoch: int) -> dict[str, float]:
        """Class -> F1 of the table's family at ``epoch`` from f1_per_class.csv (whose columns are ``name(B)``,
        ``name(M)``... when the task reports several families)."""
        values = self.f1_per_class.get(epoch, {})
        tagged = {k: v for k, v in values.items() if k.endswith(f"({self.family.suffix})")}
        if len(TASKS[self.task].families if self.task in TASKS else (BOX,)) > 1:
            return {k.rpartition("(")[0]: v for k, v in tagged.items()}
        return values


# ------------------------------------------------------------------------------------------------------ finding runs


def is_run(folder: Path) -> bool:
    """Whether ``folder`` is a training run folder (Ultralytics writes ``args.yaml`` first, then ``results.csv``)."""
    return (folder / RESULTS_FILE).is_file() or (folder / ARGS_FILE).is_file()


def expand(arguments: list[Path]) -> list[Path]:
    """The run folders named by the command's arguments, in order, each once.

    A run folder stands for itself; a tune sweep (a folder with ``trials/``) for its trials; any other folder for the
    run folders directly inside it (``trials/`` itself, ``runs/detect``).

    Raises:
        UserError: For a path that is not a folder, or a folder with no run in or directly under it.
    """
    found: list[Path] = []
    for arg in arguments:
        if not arg.is_dir():
            siblings = [p.name for p in arg.parent.iterdir() if p.is_dir()] if arg.parent.is_dir() else []
            what = "a file" if arg.exists() else "no such folder"
            raise UserError(f"{arg}: expected a run folder, found {what}{suggest(arg.name, siblings)}")
        if is_run(arg):
            runs = [arg]
        else:
            parent = arg / TRIALS_DIR if (arg / TRIALS_DIR).is_dir() else arg
            runs = sorted(p for p in parent.iterdir() if p.is_dir() and is_run(p))
            if not runs:
                raise UserError(
                    f"{arg}: expected a run folder (with {RESULTS_FILE} or {ARGS_FILE}), a tune sweep (with "
                    f"{TRIALS_DIR}/) or a folder of runs, found none of these"
                )
        found += [r for r in runs if r.resolve() not in {f.resolve() for f in found}]
    return found


def labels(paths: list[Path]) -> list[str]:
    """The shortest path tails that tell the runs apart (``train``, or ``detect/train`` and ``segment/train``)."""
    parts = [p.resolve().parts for p in paths]
    for n in range(1, max(len(p) for p in parts) + 1):
        tails = ["/".join(p[-n:]) for p in parts]
        if len(set(tails)) == len(tails):
            return tails
    return [str(p) for p in paths]


# ----------------------------------------------------------------------------------------------------- reading files


def read_yaml(path: Path) -> Any:
    """Safe-load a YAML file; a malformed one is a user error naming the file."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UserError(f"{path}: expected a readable YAML file, found {type(e).__name__}: {e}") from None


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV with stripped keys and values (older Ultralytics padded results.csv)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: expected a readable CSV file, found {type(e).__name__}: {e}") from None


def number(text: str | None) -> float:
    """A CSV cell as a float; empty or unreadable is NaN."""
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``); lists stay values."""
    if not isinstance(data, dict) or (prefix and not data):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


# ------------------------------------------------------------------------------------------------------- one run


def read_run(path: Path, label: str) -> Run:
    """Read one run folder (see the module docstring for what comes from where)."""
    run = Run(path=path, label=label)
    args = read_yaml(path / ARGS_FILE) if (path / ARGS_FILE).is_file() else {}
    recipe = read_yaml(path / RECIPE_FILE) if (path / RECIPE_FILE).is_file() else None
    args = args if isinstance(args, dict) else {}
    _read_settings(run, recipe, args)
    feature = _fitness_feature(run, recipe)
    _read_results(run)
    _read_per_class(run)
    names = _class_names(run)
    run.family = _table_family(run, feature)
    _read_thresholds(run)
    try:
        run.fitness_name = fitness_formula(feature, names) if feature else DEFAULT_FITNESS
    except ValueError:  # a fitness class the per-class file does not name: as the recipe wrote it
        assert feature is not None
        run.fitness_name = f"{fitness_formula(feature.model_copy(update={'classes': None}))} over {feature.classes}"
    run.fitness = [_fitness(run, feature, names, i) for i in range(len(run.epochs))]
    if run.epochs and all(math.isnan(v) for v in run.fitness):
        run.missing.append(f"its fitness ({run.fitness_name}) cannot be recomputed from its files: no fitness curve")
    _note_per_class(run)
    return run


def _read_settings(run: Run, recipe: Any, args: dict[str, Any]) -> None:
    """The run's settings, flattened: its recipe.yaml, else the args.yaml values that differ from Ultralytics'
    defaults, placed as a recipe would hold them (``train.lr0``), so both kinds of run diff key by key."""
    if isinstance(recipe, dict):
        run.settings = flatten(recipe)
        run.task = str(recipe.get("task") or args.get("task") or run.task)
        return
    run.task = str(args.get("task") or run.task)
    run.settings_source = ARGS_FILE
    if not args:
        run.missing.append(f"no {RECIPE_FILE} or {ARGS_FILE}: its settings are unknown")
        return
    defaults = load_ultralytics_cfg().defaults
    chosen = {
        k: v for k, v in args.items() if k not in DERIVED_ARGS and (k in RECIPE_TOP_LEVEL or defaults.get(k) != v)
    }
    run.settings = flatten({k: v for k, v in chosen.items() if k in RECIPE_TOP_LEVEL})
    run.settings.update(flatten({k: v for k, v in chosen.items() if k not in RECIPE_TOP_LEVEL}, "train"))
    run.missing.append(
        f"no {RECIPE_FILE} (not a yolocustom run): settings from Ultralytics' {ARGS_FILE}, the values that differ "
        "from its defaults"
    )


def _fitness_feature(run: Run, recipe: Any) -> FitnessFeature | None:
    """The recipe's fitness block, or None for Ultralytics' default fitness."""
    block = (recipe or {}).get("features", {}) if isinstance(recipe, dict) else {}
    block = block.get("fitness") if isinstance(block, dict) else None
    if block is None:
        return None
    try:
        feature = FitnessFeature.model_validate(block)
    except ValueError as e:
        run.missing.append(f"{RECIPE_FILE}: features.fitness is not readable ({e}); Ultralytics' default fitness used")
        return None
    return feature if feature.enabled and feature.metric != "default" else None


def _read_results(run: Run) -> None:
    """Epochs and ``metrics/...`` columns of results.csv."""
    path = run.path / RESULTS_FILE
    if not path.is_file():
        run.missing.append(f"no {RESULTS_FILE} (no epoch finished): no metrics, no fitness curve")
        return
    for row in read_rows(path):
        epoch = number(row.get("epoch"))
        if not math.isnan(epoch):
            run.epochs.append(int(epoch))
            run.metrics.append({k: number(v) for k, v in row.items() if k.startswith("metrics/")})


def _read_per_class(run: Run) -> None:
    """metrics_per_class.csv into ``run.per_class`` (per family), and f1_per_class.csv into ``run.f1_per_class``."""
    path = run.path / PER_CLASS_METRICS_FILE
    if path.is_file():
        for row in read_rows(path):
            epoch = number(row.get("epoch"))
            if math.isnan(epoch):
                continue
            tables = run.per_class.setdefault(int(epoch), {})
            for suffix in FAMILIES:
                cols = {c: c if suffix == "B" else f"{c}({suffix})" for c in PER_CLASS_COLUMNS[4:]}
                if cols["P"] not in row or not row[cols["P"]]:
                    continue  # a family the task lacks, or a class without val instances
                values = {c: number(row[col]) for c, col in cols.items()}
                count = number(row.get("instances"))
                tables.setdefault(suffix, {})[row.get("class_name", "")] = {"instances": count, **values}
    path = run.path / F1_PER_CLASS_FILE
    if path.is_file():
        for row in read_rows(path):
            epoch = number(row.pop("epoch", ""))
            if not math.isnan(epoch):
                run.f1_per_class[int(epoch)] = {k: number(v) for k, v in row.items() if v}


def _note_per_class(run: Run) -> None:
    """Say which per-class source a run lacks."""
    if run.per_class or not run.epochs:
        return
    if not run.f1_per_class:
        run.missing.append(
            f"no {PER_CLASS_METRICS_FILE} (written with features.fitness) or {F1_PER_CLASS_FILE} (f1_logging: "
            "{per_class: true}): no per-class rows or curves"
        )
    else:
        run.missing.append(
            f"no {PER_CLASS_METRICS_FILE} (written with features.fitness): per-class instances, P, R and AP50 "
            f"unknown; F1 from {F1_PER_CLASS_FILE}"
        )


def _class_names(run: Run) -> dict[int, str]:
    """Class id -> name, from metrics_per_class.csv (the only file that holds both)."""
    path = run.path / PER_CLASS_METRICS_FILE
    if not path.is_file():
        return {}
    rows = read_rows(path)
    first = [r for r in rows if r.get("epoch") == rows[0].get("epoch") and r.get("class_id", "").isdigit()]
    return {int(r["class_id"]): r.get("class_name", "") for r in first}


def _table_family(run: Run, feature: FitnessFeature | None) -> Family:
    """thresholds.yaml's family, else the fitness metrics' one family, else boxes; only one the task reports."""
    spec = TASKS.get(run.task)
    task_families = spec.families if spec else (BOX,)
    path = run.path / THRESHOLDS_FILE
    data = read_yaml(path) if path.is_file() else None
    if isinstance(data, dict) and data.get("family") is not None:
        named = str(data["family"]).strip("()")
        for family in task_families:
            if named in (family.suffix, family.attr, family.what):
                return family
    if feature is not None:
        metrics = [feature.metric] if feature.metric else list(feature.weights or {})
        families = {parse_metric(m)[1] for m in metrics if m != "default"}
        if len(families) == 1 and (only := families.pop()) in task_families:
            return only
    return BOX


def _read_thresholds(run: Run) -> None:
    """Per-class thresholds from thresholds.yaml (``classes: {name: {threshold: ...}}``)."""
    path = run.path / THRESHOLDS_FILE
    if not path.is_file():
        return
    data = read_yaml(path)
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, dict):
        run.missing.append(f"{THRESHOLDS_FILE}: expected a 'classes' mapping, found none: no thresholds shown")
        return
    for name, entry in classes.items():
        if isinstance(entry, dict) and isinstance(entry.get("threshold"), int | float):
            numbers = {k: float(entry[k]) for k in ("threshold", "instances") if isinstance(entry.get(k), int | float)}
            run.thresholds[str(name)] = numbers


def _fitness(run: Run, feature: FitnessFeature | None, names: dict[int, str], i: int) -> float:
    """The fitness of row ``i``, computed as ``FitnessMixin.validate`` did from the same validation.

    results.csv keeps 6 significant digits, so this matches the trainer's value to about 1e-6.
    """
    metrics = dict(run.metrics[i])
    families = TASKS[run.task].families if run.task in TASKS else (BOX,)
    # Ultralytics 8.4's own fitness: mAP50-95 summed over the task's families (DetMetrics/SegmentMetrics.fitness)
    default = sum(metrics.get(f"metrics/mAP50-95({f.suffix})", math.nan) for f in families)
    if feature is None:
        return default
    tables = run.per_class.get(run.epochs[i], {})
    if feature.classes is not None:
        if not tables:
            return math.nan
        try:
            ids = resolve_classes(feature, names)
        except ValueError:  # a class the per-class file does not name
            return math.nan
        by_id = {
            f.suffix: {cid: tables[f.suffix][n] for cid, n in names.items() if n in tables.get(f.suffix, {})}
            for f in families
        }
        return per_class_fitness(feature, ids, by_id) + TIE_BREAK * default if ids else math.nan
    for name in [feature.metric] if feature.metric else list(feature.weights or {}):
        key = metric_key(name)
        if key not in metrics and name != "default":  # F1 without f1_logging: the same mean, from the per-class file
            table = tables.get(parse_metric(name)[1].suffix, {})
            col = PER_CLASS_KEYS[parse_metric(name)[0]]
            metrics[key] = sum(r[col] for r in table.values()) / len(table) if table else math.nan
    return compute_fitness(feature, metrics, default, None)


def collect(arguments: list[Path]) -> list[Run]:
    """Expand the command's arguments to run folders and read each one."""
    paths = expand(arguments)
    return [read_run(p, label) for p, label in zip(paths, labels(paths))]
