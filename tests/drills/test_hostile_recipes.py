"""Drill: hostile recipe files are rejected fast, with bounded memory, through the real CLI.

Each file goes through ``yolocustom validate-config`` and ``yolocustom train``. Bounds: exit 1 with a clear message and
no traceback; CPU and wall time at most ``2 x + 0.5 s`` those of the same command on a two-line recipe, run in the same
test just before (a loaded machine slows both: beside a training run a plain ``validate-config`` took 0.59 s of CPU,
0.15 s quiet, so no absolute bound holds); peak RSS under 300 MiB; and no side effect from a Python tag.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CliRun, assert_clean_failure, run_cli

TIME_FACTOR, TIME_SLACK_S = 2.0, 0.5  # hostile <= 2 x minimal + 0.5 s, CPU and wall alike
MAX_RSS_MB = 300.0
MINIMAL = "model: yolo26n.yaml\ndata: coco8.yaml\n"


def _alias_bomb(path: Path) -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")  # 9^10 nodes if expanded
    path.write_text("\n".join(lines) + "\nmodel: yolo26n.yaml\ndata: coco8.yaml\n")


def _python_tag(path: Path) -> None:
    marker = path.parent / "PWNED"
    path.write_text(f'model: !!python/object/apply:os.system ["touch {marker}"]\ndata: coco8.yaml\n')


def _python_object(path: Path) -> None:
    path.write_text("model: yolo26n.yaml\ndata: coco8.yaml\ntrain: !!python/object:collections.OrderedDict {}\n")


def _fifty_mb(path: Path) -> None:
    with open(path, "w") as f:  # a valid recipe followed by a 50 MiB comment
        f.write("model: yolo26n.yaml\ndata: coco8.yaml\n# ")
        chunk = "x" * (1 << 20)
        for _ in range(50):
            f.write(chunk)
        f.write("\n")


def _binary(path: Path) -> None:
    rng = random.Random(0)
    path.write_bytes(bytes(rng.getrandbits(8) for _ in range(1 << 16)))


def _binary_without_nul(path: Path) -> None:
    rng = random.Random(1)
    path.write_bytes(bytes(rng.randrange(1, 256) for _ in range(1 << 16)))


def _deep_flow(path: Path) -> None:
    path.write_text("model: " + "[" * 100_000 + "]" * 100_000 + "\ndata: coco8.yaml\n")


def _deep_block(path: Path) -> None:
    path.write_text("".join(" " * i + f"k{i}:\n" for i in range(800)))


HOSTILE: dict[str, tuple[Callable[[Path], None], str]] = {
    "alias_bomb": (_alias_bomb, "alias bomb"),
    "python_tag": (_python_tag, "not allowed"),
    "python_object": (_python_object, "not allowed"),
    "fifty_mb": (_fifty_mb, "limit"),
    "binary": (_binary, "binary"),
    "binary_without_nul": (_binary_without_nul, "utf-8"),
    "deep_flow_nesting": (_deep_flow, "nesting is deeper"),
    "deep_block_nesting": (_deep_block, "nesting is deeper"),
}


def _baseline(command: str, tmp_path: Path) -> CliRun:
    """``command`` on a two-line recipe, measured now: ``validate-config`` accepts it, ``train`` is refused for a
    ``train.epochs`` that is no integer (same start-up and recipe path as a hostile file, no training)."""
    recipe = tmp_path / "minimal" / "recipe.yaml"
    recipe.parent.mkdir(exist_ok=True)
    recipe.write_text(MINIMAL if command == "validate-config" else MINIMAL + "train: {epochs: ten}\n")
    run = run_cli([command, str(recipe)], recipe.parent)
    assert run.returncode == (0 if command == "validate-config" else 1), run.output[-2000:]
    return run


def _check_bounds(run: CliRun, base: CliRun, what: str, measure: Callable[[], CliRun]) -> CliRun:
    """Bound ``run`` by ``base``; past the bound, measure the baseline again (the load may have changed since) and
    bound by the slower of the two. Returns the baseline used."""

    def within(b: CliRun) -> bool:
        return run.cpu_s <= TIME_FACTOR * b.cpu_s + TIME_SLACK_S and run.wall_s <= TIME_FACTOR * b.wall_s + TIME_SLACK_S

    if not within(base):
        again = measure()
        base = CliRun(0, "", "", max(base.wall_s, again.wall_s), max(base.cpu_s, again.cpu_s), base.maxrss_mb)
    assert within(base), (
        f"{what}: {run.cpu_s:.2f} s of CPU, {run.wall_s:.2f} s wall; minimal {base.cpu_s:.2f} s, {base.wall_s:.2f} s"
    )
    assert run.maxrss_mb < MAX_RSS_MB, f"{what}: peak RSS {run.maxrss_mb:.0f} MiB"
    return base


@pytest.mark.parametrize("command", ["validate-config", "train"])
def test_hostile_recipes_are_rejected_fast(tmp_path: Path, command: str, drill_record: Any) -> None:
    """Every hostile file through ``command``, each bounded by the same command on a minimal recipe, run first."""

    def measure() -> CliRun:
        return _baseline(command, tmp_path)

    base = measure()
    for kind, (make, needle) in HOSTILE.items():
        folder = tmp_path / kind
        folder.mkdir()
        recipe = folder / f"{kind}.yaml"
        make(recipe)
        run = run_cli([command, str(recipe)], folder)
        assert_clean_failure(run, needle)
        used = _check_bounds(run, base, f"{command} {kind}", measure)
        assert not (folder / "PWNED").exists(), f"{kind}: a YAML tag executed code"
        assert not (folder / "runs").exists(), f"{kind}: something was written for a rejected recipe"
        message = run.output.strip().splitlines()[-1].replace(f"{folder}/", "")
        drill_record(
            hostile=kind,
            command=f"yolocustom {command} {recipe.name}",
            file_bytes=recipe.stat().st_size,
            wall_s=round(run.wall_s, 3),
            cpu_s=round(run.cpu_s, 3),
            minimal_wall_s=round(used.wall_s, 3),
            minimal_cpu_s=round(used.cpu_s, 3),
            maxrss_mb=round(run.maxrss_mb, 1),
            message=message[:140],
        )


def test_special_file_is_read_with_a_bound(tmp_path: Path) -> None:
    """``/dev/zero`` reports size 0 to stat() but never ends: the bounded read must still stop it."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")

    def measure() -> CliRun:
        return _baseline("validate-config", tmp_path)

    base = measure()
    run = run_cli(["validate-config", "/dev/zero"], tmp_path)
    assert_clean_failure(run)
    _check_bounds(run, base, "validate-config /dev/zero", measure)
