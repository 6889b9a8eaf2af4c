"""Drill: SIGKILL a real ``yolocustom train`` at a random point of epochs 1-4 of 6, then ``--resume``; five times.

The recipe has every feature on: freeze (backbone, 3 epochs), layer LR (backbone x 0.3), class weights, fitness =
F1 and per-class F1 logging; ``save_period: 1`` keeps one checkpoint per epoch as evidence. Kill points are drawn
from a seeded RNG (epochs 1, 2, 3, 4 and one more drawn from 2-4, each at a random fraction of an epoch), so every
phase is hit: before the first checkpoint exists, while frozen, and in the unfreeze epoch.

Decision for a kill before the first checkpoint: ``--resume`` must fail cleanly (exit 1, a message naming what it
looked for, no traceback), in both forms (``--resume LAST_PT`` and ``--resume RECIPE``), and the drill then restarts
the run from scratch, which must complete.

Checks after the resumed (or restarted) run finishes:

* results.csv and f1_per_class.csv hold epochs 1..6 exactly once each (nothing lost, no duplicate rows), and every
  results.csv row that was covered by the checkpoint at kill time is kept byte for byte;
* "unfroze" is logged exactly once by the run that finished, at the start of epoch 4 (or of the first resumed epoch if
  that is later), and the per-epoch checkpoints show it: backbone weights identical through epochs 1-3, changed in 4;
* the backbone/head LR ratio holds in every results.csv row for weight and BatchNorm groups, and for bias groups
  after the 1-epoch warm-up (group identities read from a checkpoint's optimizer state);
* best.pt agrees with the chosen metric: its fitness and F1 equal the maximum F1 of results.csv, and it comes from
  that epoch. Not vacuous: the drill asserts the maximum F1 is above 0.

The run uses a *relative* ``train.project`` and a private Ultralytics settings file, so ``--resume RECIPE`` is tested
against where Ultralytics really puts such runs (``<runs_dir>/detect/<project>/<name>``).
"""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ALL_FEATURES, CliProcess, assert_clean_failure, read_csv, run_cli, write_drill_recipe

EPOCHS = 6
FREEZE_EPOCHS = ALL_FEATURES["freeze"]["epochs"]
RATIO = ALL_FEATURES["layer_lr"]["backbone_ratio"]
WARMUP_EPOCHS = 1
SEED = 20261124
F1 = "metrics/F1(B)"
_UNFROZE = re.compile(r"unfroze layers \[([\d, ]+)\] .* at the start of epoch (\d+)")


def kill_points() -> list[tuple[int, float]]:
    """Return the five (1-based epoch, fraction of that epoch) kill points, seeded."""
    rng = random.Random(SEED)
    epochs = [1, 2, 3, 4, rng.randint(2, 4)]
    return [(e, round(rng.uniform(0.05, 0.95), 2)) for e in epochs]


def _settings(tmp: Path) -> Path:
    """A private Ultralytics config dir whose runs_dir is inside ``tmp``; returns the config dir."""
    from ultralytics.utils import SETTINGS

    cfg = tmp / "ultralytics_cfg"
    (cfg / "Ultralytics").mkdir(parents=True)
    settings = {**dict(SETTINGS), "runs_dir": str(tmp / "ultra_runs"), "sync": False}
    (cfg / "Ultralytics" / "settings.json").write_text(json.dumps(settings, indent=2))
    return cfg


def _rows(csv: Path) -> list[str]:
    return csv.read_text().splitlines()[1:] if csv.exists() else []


def _load(path: Path) -> dict[str, Any]:
    from ultralytics.utils.patches import torch_load

    return torch_load(path, map_location="cpu")


def _complete(path: Path) -> bool:
    from yolocustom.training import checkpoint_is_complete

    return path.exists() and checkpoint_is_complete(path)


def _kill_at(proc: CliProcess, run_dir: Path, epoch: int, fraction: float, timeout: float = 300) -> dict[str, Any]:
    """Wait for ``epoch`` (1-based) to start, then SIGKILL ``fraction`` of an epoch later; return the state then.

    The kill can still land in the next epoch or in the end-of-epoch save when the epoch runs shorter than estimated;
    the checks work from the state actually found (rows written, checkpoint present) rather than from the plan.
    """
    import signal

    csv = run_dir / "results.csv"
    deadline = time.monotonic() + timeout
    while True:
        assert proc.running(), f"the run ended before the kill point:\n{proc.output_so_far()[-3000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the kill point"
        if epoch == 1:
            started = "Starting training for" in proc.output_so_far()
        else:  # epoch N starts once epoch N-1's checkpoints are saved; epoch{N-2}.pt (0-based) is written last
            started = len(_rows(csv)) >= epoch - 1 and _complete(run_dir / "weights" / f"epoch{epoch - 2}.pt")
        if started:
            break
        time.sleep(0.02)
    rows = read_csv(csv) if csv.exists() else []
    times = [float(r["time"]) for r in rows]
    # Epoch length: the last epoch's, else epoch 1's; for epoch 1 itself a conservative 1 s, so that this kill point
    # reliably lands before the first checkpoint (the case where --resume has nothing to resume).
    estimate = times[-1] - times[-2] if len(times) >= 2 else (times[0] if times else 1.0)
    time.sleep(fraction * estimate)
    if proc.running():
        proc.signal(signal.SIGKILL)
    killed = proc.wait()
    return {"returncode": killed.returncode, "rows": _rows(csv), "output": killed.output}


def _backbone_params(ckpt: dict[str, Any], layers: list[int]) -> dict[str, Any]:
    prefixes = tuple(f"model.{i}." for i in layers)
    model = ckpt["ema"] or ckpt["model"]
    return {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith(prefixes) and ".dfl" not in n}


@pytest.mark.drill
@pytest.mark.parametrize(("index", "point"), list(enumerate(kill_points())), ids=lambda v: str(v))
def test_kill_and_resume(
    tmp_path: Path, drill_shapes: Path, drill_record: Any, index: int, point: tuple[int, float]
) -> None:
    import torch

    epoch, fraction = point
    cfg = _settings(tmp_path)
    env = {"YOLO_CONFIG_DIR": str(cfg)}
    recipe = write_drill_recipe(
        tmp_path / "recipe", drill_shapes, ALL_FEATURES, epochs=EPOCHS, save_period=1, project="drill/kill"
    )
    run_dir = tmp_path / "ultra_runs" / "detect" / "drill" / "kill" / "run"
    weights = run_dir / "weights"
    last = weights / "last.pt"
    logs = tmp_path / "logs"
    start = time.monotonic()

    state = _kill_at(CliProcess(["train", str(recipe)], logs, env=env), run_dir, epoch, fraction)
    assert state["returncode"] == -9, "the run was not killed by SIGKILL"
    facts: dict[str, Any] = {"kill_epoch": epoch, "kill_fraction": fraction, "rows_at_kill": len(state["rows"])}

    if epoch == 1:
        assert not last.exists(), "the epoch-1 kill point landed after the first checkpoint"
    if not last.exists():  # killed before the first checkpoint: resume must refuse cleanly, then restart
        by_path = run_cli(["train", "--resume", str(last)], logs, env=env)
        assert_clean_failure(by_path, "not found", str(last))
        by_recipe = run_cli(["train", "--resume", str(recipe)], logs, env=env)
        assert_clean_failure(by_recipe, "no last.pt found under", str(run_dir.parent))
        final = run_cli(["train", str(recipe)], logs, env=env)
        resume_start = 0  # 0-based first epoch of the run that finished
        facts.update(checkpoint_at_kill=None, resumed_with="restart")
    else:
        assert _complete(last), f"SIGKILL left a truncated {last} (Ultralytics writes it in place)"
        ckpt_epoch = int(_load(last)["epoch"])  # 0-based last completed epoch
        form = [str(last), str(recipe)][index % 2]  # alternate --resume LAST_PT and --resume RECIPE
        final = run_cli(["train", "--resume", form], logs, env=env)
        assert f"Resuming {last}" in final.output, final.output[-3000:]
        resume_start = ckpt_epoch + 1
        facts.update(checkpoint_at_kill=ckpt_epoch + 1, resumed_with="last.pt" if form.endswith(".pt") else "recipe")
    assert final.returncode == 0, final.output[-3000:]
    assert "Traceback" not in final.output

    # Nothing lost, nothing twice.
    rows = read_csv(run_dir / "results.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    f1_rows = read_csv(run_dir / "f1_per_class.csv")
    assert [int(r["epoch"]) for r in f1_rows] == list(range(1, EPOCHS + 1))
    final_lines = _rows(run_dir / "results.csv")
    for line in state["rows"][:resume_start]:
        assert line in final_lines, f"a checkpointed epoch's row changed or vanished: {line}"

    # Unfreezing at the right epoch, in the log and in the weights.
    expected = max(FREEZE_EPOCHS, resume_start) + 1
    unfroze = _UNFROZE.findall(final.output)
    assert [int(e) for _, e in unfroze] == [expected], unfroze
    assert all(int(e) == FREEZE_EPOCHS + 1 for _, e in _UNFROZE.findall(state["output"]))
    layers = [int(x) for x in unfroze[0][0].split(",")]
    per_epoch = {k: weights / f"epoch{k}.pt" for k in range(EPOCHS)}
    complete = sorted(k for k, p in per_epoch.items() if _complete(p))
    truncated = sorted(k for k, p in per_epoch.items() if p.exists() and k not in complete)
    # Ultralytics writes checkpoints in place, so the kill may cut the one being written: only the last epoch the
    # killed run checkpointed may be affected, and it is then left out of the comparison (and reported).
    assert all(k == resume_start - 1 for k in truncated), (
        f"truncated checkpoints {truncated}, resumed at {resume_start}"
    )
    frozen = [k for k in range(FREEZE_EPOCHS) if k in complete]
    unfrozen = [k for k in range(FREEZE_EPOCHS, EPOCHS) if k in complete]
    assert len(frozen) >= 2 and unfrozen, f"not enough per-epoch checkpoints: {complete}"
    reference = _backbone_params(_load(per_epoch[frozen[0]]), layers)
    for k in frozen[1:]:
        other = _backbone_params(_load(per_epoch[k]), layers)
        assert all(torch.equal(reference[n], other[n]) for n in reference), f"backbone moved in frozen epoch {k + 1}"
    after = _backbone_params(_load(per_epoch[unfrozen[0]]), layers)
    moved = sum(not torch.equal(reference[n], after[n]) for n in reference)
    assert moved > 0.5 * len(reference), f"only {moved}/{len(reference)} backbone tensors trained after unfreezing"

    # The LR ratio, per optimizer group pair (identities from a checkpoint's optimizer state).
    groups = _load(per_epoch[complete[-1]])["optimizer"]["param_groups"]
    pairs = [(i, i + 1) for i in range(0, len(groups), 2)]
    assert all(groups[b]["yc_part"] == "backbone" and groups[h]["yc_part"] == "head" for b, h in pairs)
    checked = 0
    for row in rows:
        for b, h in pairs:
            if groups[b]["param_group"] == "bias" and int(row["epoch"]) <= WARMUP_EPOCHS:
                continue  # bias warm-up starts from an absolute LR; the ratio is reached once warm-up ends
            assert float(row[f"lr/pg{b}"]) == pytest.approx(RATIO * float(row[f"lr/pg{h}"]), rel=2e-3), (row, b)
            checked += 1
    assert checked >= len(rows) * len(pairs) - len(pairs) * WARMUP_EPOCHS

    # best.pt follows F1, the recipe's fitness.
    f1s = [float(r[F1]) for r in rows]
    best_f1 = max(f1s)
    assert best_f1 > 0, "F1 never left 0: the best.pt check would be vacuous"
    best = _load(weights / "best.pt")
    assert best["train_metrics"]["fitness"] == pytest.approx(best_f1, rel=1e-3, abs=1e-6)
    assert best["train_metrics"][F1] == pytest.approx(best_f1, rel=1e-3, abs=1e-6)
    # The epoch best.pt comes from: the row whose validation metrics are its train_metrics (a stripped best.pt's
    # train_results is the whole table, so its last row says nothing).
    keys = [k for k in best["train_metrics"] if k.startswith("metrics/")]
    matches = [int(r["epoch"]) for r in rows if all(abs(float(r[k]) - best["train_metrics"][k]) < 1e-6 for k in keys)]
    assert matches, "best.pt's metrics match no results.csv row"
    best_epoch = matches[-1]
    assert f1s[best_epoch - 1] == pytest.approx(best_f1, rel=1e-3, abs=1e-6)

    facts.update(
        unfroze_at=expected,
        backbone_tensors_trained_after_unfreeze=f"{moved}/{len(reference)}",
        truncated_by_kill=[per_epoch[k].name for k in truncated],
        lr_checks=checked,
        best_epoch=best_epoch,
        best_f1=round(best_f1, 5),
        default_fitness_argmax=1 + max(range(len(rows)), key=lambda i: float(rows[i]["metrics/mAP50-95(B)"])),
        seconds=round(time.monotonic() - start, 1),
    )
    drill_record(**facts)
