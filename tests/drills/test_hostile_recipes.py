"""Drill: hostile recipe files are rejected fast, with bounded memory, through the real CLI.

Each file goes through ``yolocustom validate-config`` and ``yolocustom train``. Bounds: exit 1 with a clear message and
no traceback, under 1 s of CPU time (and under 1 s of wall time unless the machine is overloaded, where wall time
is not the program's to control), peak RSS under 300 MiB, and no side effect from a Python tag.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CliRun, assert_clean_failure, run_cli

MAX_SECONDS = 1.0
MAX_RSS_MB = 300.0


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


def _check_bounds(run: CliRun, what: str) -> None:
    overloaded = os.getloadavg()[0] > (os.cpu_count() or 1)
    assert run.cpu_s < MAX_SECONDS, f"{what}: {run.cpu_s:.2f} s of CPU"
    assert run.wall_s < (3 * MAX_SECONDS if overloaded else MAX_SECONDS), f"{what}: {run.wall_s:.2f} s wall"
    assert run.maxrss_mb < MAX_RSS_MB, f"{what}: peak RSS {run.maxrss_mb:.0f} MiB"


@pytest.mark.parametrize("command", ["validate-config", "train"])
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_recipe_is_rejected_fast(tmp_path: Path, kind: str, command: str, drill_record: Any) -> None:
    make, needle = HOSTILE[kind]
    recipe = tmp_path / f"{kind}.yaml"
    make(recipe)
    run = run_cli([command, str(recipe)], tmp_path)
    assert_clean_failure(run, needle)
    _check_bounds(run, f"{command} {kind}")
    assert not (tmp_path / "PWNED").exists(), "a YAML tag executed code"
    assert not (tmp_path / "runs").exists(), "something was written for a rejected recipe"
    message = run.output.strip().splitlines()[-1].replace(f"{tmp_path}/", "")
    drill_record(
        hostile=kind,
        command=f"yolocustom {command} {recipe.name}",
        file_bytes=recipe.stat().st_size,
        wall_s=round(run.wall_s, 3),
        cpu_s=round(run.cpu_s, 3),
        maxrss_mb=round(run.maxrss_mb, 1),
        message=message[:140],
    )


def test_special_file_is_read_with_a_bound(tmp_path: Path) -> None:
    """``/dev/zero`` reports size 0 to stat() but never ends: the bounded read must still stop it."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    run = run_cli(["validate-config", "/dev/zero"], tmp_path)
    assert_clean_failure(run)
    _check_bounds(run, "validate-config /dev/zero")
