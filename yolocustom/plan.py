"""The ``--dry-run`` plan: read back from a trainer that was set up exactly as training would set it up."""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolocustom.recipe import Recipe

if TYPE_CHECKING:
    from yolocustom.runplan import RunPlan


def _section(title: str, lines: list[str]) -> list[str]:
    return [f"\n{title}", *[f"  {line}" for line in lines]]


def weights_checkpoint(args: Any) -> str | None:
    """The checkpoint a new run's model is loaded from, chosen as ``BaseTrainer.setup_model`` chooses it: a
    ``pretrained`` path wins, ``pretrained=False`` loads nothing, else a ``.pt`` model loads itself (None: random)."""
    if isinstance(args.pretrained, (str, Path)):
        return str(args.pretrained)
    if args.pretrained is False or not str(args.model).lower().endswith(".pt"):
        return None
    return str(args.model)


def transferred_tensors(model: Any, source: Any, cls_remap: bool = True) -> tuple[set[str], set[str]]:
    """Which of ``model``'s state_dict entries a checkpoint's model filled, computed as ``BaseModel.load`` does.

    ``load`` first copies the class-logit rows of classes whose names match (``_remap_cls_by_names``, replayed on a
    copy so ``model`` is untouched), then every tensor whose name and shape match (``intersect_dicts``). ``model`` is
    the trainer's, after loading: a class branch ``load`` rebuilt at the source's width already has its new shapes.

    Returns:
        (tuple[set[str], set[str]]): Keys copied whole, and keys whose class rows were copied by class name.
    """
    from ultralytics.utils.torch_utils import intersect_dicts

    csd = source.float().state_dict()
    remapped: set[str] = set()
    if cls_remap:
        rest = dict(csd)
        copy.deepcopy(model)._remap_cls_by_names(rest, source, verbose=False)
        remapped, csd = set(csd) - set(rest), rest
    return set(intersect_dicts(csd, model.state_dict())), remapped


def _ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``'0-2, 5'``."""
    spans: list[list[int]] = []
    for i in indices:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans)


def _fold(key: str) -> str:
    """The module of a state_dict key inside its layer, branch index folded: 'model.23.cv3.1.2.weight' -> 'cv3.*.2'."""
    return re.sub(r"^(\w+)\.\d+\.", r"\1.*.", key.split(".", 2)[2].rsplit(".", 1)[0])


def transfer_lines(trainer: Any, model: Any) -> list[str]:
    """The plan's account of the weights: which checkpoint, how many tensors it fills, which layers start pretrained,
    partially pretrained or random (what to freeze follows from it)."""
    source = weights_checkpoint(trainer.args)
    if source is None:
        why = "pretrained=False" if trainer.args.pretrained is False else "a model YAML and no train.pretrained .pt"
        return [f"none: every layer starts random ({why})"]
    from ultralytics.nn.tasks import load_checkpoint

    src, _ = load_checkpoint(source)
    copied, remapped = transferred_tensors(model, src, getattr(trainer.args, "cls_remap", True))
    keys = list(model.state_dict())
    n = len(copied) + len(remapped)
    field = "train.pretrained" if isinstance(trainer.args.pretrained, (str, Path)) else "model"
    if len(copied) == len(keys):
        return [f"all {n} tensors from {source} ({field}): every layer starts pretrained"]
    partly = f", {len(remapped)} of them only in the rows of classes matched by name" if remapped else ""
    lines = [
        f"{source} ({field}): {n} of {len(keys)} tensors transferred (name and shape match, as Model.load){partly}"
    ]
    by_layer: dict[int, list[str]] = {i: [] for i in range(len(model.model))}  # Upsample, Concat: no tensors
    for key in keys:
        by_layer[int(key.split(".")[1])].append(key)
    full = [i for i, ks in by_layer.items() if all(k in copied for k in ks)]
    none = [i for i, ks in by_layer.items() if ks and not any(k in copied or k in remapped for k in ks)]
    if full:
        lines.append(f"layers {_ranges(full)}: pretrained")
    if none:
        lines.append(f"layers {_ranges(none)}: random")
    last = len(model.model) - 1
    for i, ks in by_layer.items():
        if i in full or i in none:
            continue
        # modules left random, inside the layer, branch indices folded ('cv3.0.2', 'cv3.1.2' -> 'cv3.*.2')
        left = {_fold(k) for k in ks if k not in copied and k not in remapped}
        parts = [f"random: {', '.join(sorted(left))}"] if left else []
        rows = sorted({_fold(k) for k in ks if k in remapped})
        if rows:
            theirs = {str(v).strip().lower() for v in src.names.values()}
            names = [str(v) for v in trainer.data["names"].values() if str(v).strip().lower() in theirs]
            parts.append(
                f"{', '.join(rows)}: rows of {len(names)} of {len(trainer.data['names'])} classes copied by class name "
                f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}), the other rows random"
            )
        lines.append(f"layer {i}{' (head)' if i == last else ''}: partially pretrained; {'; '.join(parts)}")
    return lines


def describe_plan(trainer: Any, recipe: Recipe, note: str = "") -> str:
    """Describe what training will do: trainer class, weights transferred, frozen layers, optimizer groups, class
    weights, fitness, args.

    Args:
        trainer: A trainer built by ``build_trainer`` after ``_setup_train()``.
        recipe: Its recipe.
        note: A line to print under the header (e.g. why the plan ran on CPU).
    """
    from ultralytics.utils import DEFAULT_CFG_DICT
    from ultralytics.utils.torch_utils import unwrap_model

    from yolocustom.features.class_weights import semantics_line, weight_table
    from yolocustom.features.fitness import DEFAULT_FITNESS, fitness_formula
    from yolocustom.features.freeze import STAGE_KEY
    from yolocustom.features.layer_lr import PART_KEY

    model = unwrap_model(trainer.model)
    feats = recipe.features.enabled()
    mixins = [c.__name__ for c in type(trainer).__mro__[1:] if c.__module__.startswith("yolocustom.features")]
    out = [f"yolocustom plan for {recipe.model} on {recipe.data} (recipe sha256 {recipe.digest()[:12]})"]
    if note:
        out.append(note)
    base = next(c for c in type(trainer).__mro__ if not c.__module__.startswith("yolocustom"))  # the task's trainer
    task = getattr(trainer, "yc_task", trainer.args.task)
    out += _section("Trainer", [f"{type(trainer).__name__}: {' -> '.join(mixins)} -> {base.__name__} (task: {task})"])
    out += _section("Pretrained weights (what starts trained)", transfer_lines(trainer, model))

    frozen: dict[str, int] = defaultdict(int)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            frozen[".".join(name.split(".")[:2])] += p.numel()
    freeze = feats.get("freeze")
    lines = [f"{layer}: {n:,} params" for layer, n in frozen.items()]
    lines.append(f"total frozen: {sum(frozen.values()):,} of {sum(p.numel() for p in model.parameters()):,} params")
    if freeze is not None:
        for epoch, layers in trainer.yc_stages:
            lines.append(
                f"unfreeze: layers {layers} at the start of epoch {epoch + 1} (1-based) "
                f"of {trainer.epochs}; '.dfl' stays frozen (Ultralytics always freezes it)"
            )
        ramp = freeze.ramp  # type: ignore[attr-defined]
        if ramp is not None:
            lines.append(
                f"ramp: after each stage unfreezes, its layers' LR rises linearly per iteration from {ramp.start:g} x "
                f"to 1 x their LR over {ramp.epochs:g} epochs (own optimizer groups, 'stage' column below)"
            )
    out += _section("Frozen parameters", lines)

    bias_lr = trainer.args.warmup_bias_lr
    lines = [
        f"{'#':>2} {'group':<7} {'part':<9} {'tensors':>7} {'params':>10} {'lr':>10} {'warmup start':>12} {'decay':>8}"
        + (" stage" if any(STAGE_KEY in g for g in trainer.optimizer.param_groups) else "")
    ]
    for i, g in enumerate(trainer.optimizer.param_groups):
        tag = g.get("param_group", "?")
        warm = bias_lr if tag == "bias" else 0.0
        count = sum(p.numel() for p in g["params"])
        lines.append(
            f"{i:>2} {tag:<7} {g.get(PART_KEY, '-'):<9} {len(g['params']):>7} {count:>10,} {g['initial_lr']:>10.3g} "
            f"{warm:>12.3g} {g.get('weight_decay', 0.0):>8.3g}"
            + (f" {g[STAGE_KEY] if g[STAGE_KEY] >= 0 else '-':>5}" if STAGE_KEY in g else "")
        )
    lines.append(
        f"optimizer: {type(trainer.optimizer).__name__}, {trainer.epochs} epochs, schedule lrf={trainer.args.lrf}"
    )
    layer_lr = feats.get("layer_lr")
    if layer_lr is not None:
        lines.append(
            f"backbone lr = head lr x {layer_lr.backbone_ratio:g} after warmup and throughout the schedule; during "  # type: ignore[attr-defined]
            f"warmup, non-bias groups ramp from 0 (ratio holds at every step) while bias groups fall from Ultralytics' "
            f"absolute warmup_bias_lr={bias_lr:g}, so the ratio there holds only once warmup ends"
        )
    out += _section("Optimizer groups", lines)

    weights = getattr(trainer, "yc_class_weights", None)
    if weights is None:
        weights = getattr(model, "class_weights", None)
    if weights is not None:
        counts = trainer.get_class_counts()
        table = weight_table(trainer.data["names"], [float(c) for c in counts], weights.tolist())
        cw = feats.get("class_weights")
        lines = [semantics_line(cw.apply_to)] if cw is not None else []  # type: ignore[attr-defined]
        out += _section("Class weights (classification BCE, both heads)", lines + table.splitlines())

    rfs = getattr(trainer, "yc_repeat_factors", None)
    if rfs is not None:
        from yolocustom.features.repeat_factor import describe

        threshold = feats["repeat_factor_sampling"].threshold  # type: ignore[attr-defined]
        lines = describe(rfs, trainer.data["names"], threshold, len(trainer.train_loader.dataset))
        out += _section("Repeat-factor sampling (train images per epoch)", lines)

    fitness = feats.get("fitness")
    formula = fitness_formula(fitness, trainer.data["names"]) if fitness is not None else DEFAULT_FITNESS  # type: ignore[arg-type]
    out += _section("Fitness (best.pt, early stopping, best_fitness)", [formula])

    if "thresholds" in feats:
        from yolocustom.thresholds import describe_rules

        out += _section("Per-class confidence thresholds", describe_rules(recipe, trainer.data["names"]))

    args = vars(trainer.args)
    skip = {"save_dir", "project", "name", "exist_ok", "plots"}
    changed = [f"{k}={v!r}" for k, v in args.items() if k not in skip and DEFAULT_CFG_DICT.get(k) != v]
    out += _section("Ultralytics arguments (differing from defaults)", [", ".join(changed)])
    return "\n".join(out) + "\n"


def describe_world(plan: RunPlan, trainer: Any) -> str:
    """The run section: run folder, resume decision, and (under a launcher) this rank's place in the group.

    Args:
        plan: The run's plan (this rank's).
        trainer: Its trainer after ``_setup_train()`` (for the per-rank batch its train loader really uses).
    """
    world = plan.world
    lines = [f"run folder: {plan.save_dir}" + (f" ({plan.note})" if plan.note else "")]
    if world.distributed:
        batch = getattr(getattr(trainer, "train_loader", None), "batch_size", plan.rank_batch)
        lines += [
            f"world size: {world.size} processes on {world.nnodes} node{'s' if world.nnodes != 1 else ''} "
            f"(launcher: {world.launcher})",
            f"this rank: {world.rank} (local rank {world.local_rank} of {world.local_size} on this node)",
            f"batch: {plan.global_batch} global = {batch} per rank x {world.size} ranks",
            f"backend: {plan.backend} (device {'cpu' if plan.backend == 'gloo' else f'cuda:{plan.device}'})",
            "writes the run folder: rank 0 only" + (" (this rank)" if world.writer else ""),
        ]
    else:
        lines.append(
            "world size: 1 (no launcher: one process"
            + (", or Ultralytics' own DDP launcher)" if "," in str(plan.recipe.ultralytics_device()) else ")")
        )
    return "\n".join(_section("Run" + (f" (rank {world.rank})" if world.distributed else ""), lines)) + "\n"
