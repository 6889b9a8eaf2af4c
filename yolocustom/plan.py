"""The ``--dry-run`` plan: read back from a trainer that was set up exactly as training would set it up."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from yolocustom.recipe import Recipe


def _section(title: str, lines: list[str]) -> list[str]:
    return [f"\n{title}", *[f"  {line}" for line in lines]]


def describe_plan(trainer: Any, recipe: Recipe, note: str = "") -> str:
    """Describe what training will do: trainer class, frozen layers, optimizer groups, weights, fitness, args.

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
