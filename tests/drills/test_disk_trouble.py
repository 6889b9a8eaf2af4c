"""Drill: disk trouble gets a clear error (exit 1, no traceback) and leaves nothing half-written.

* The run folder cannot be created: ``train.project`` inside a read-only folder (skipped when running as root, where
  permission bits don't stop writes) or below a regular file (works for every user, root included).
* ``compute-weights --output`` into a missing folder, or below a regular file.
* A file-size limit (``RLIMIT_FSIZE``, which CPython turns into ``EFBIG`` errors) stops the first checkpoint write in
  the middle of training: the stand-in for a disk that fills up during a run.
* A truncated ``last.pt`` given to ``--resume``.
"""

from __future__ import annotations

import os
import resource
import stat
import zipfile
from pathlib import Path

import pytest
from conftest import assert_clean_failure, run_cli, run_cli_in_process, write_drill_recipe


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _permission_bits_block_writes(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.mkdir()
    except PermissionError:
        return True
    probe.rmdir()
    return False


@pytest.mark.parametrize("technique", ["read_only_folder", "file_in_path"])
def test_train_into_unwritable_run_folder(tmp_path: Path, drill_shapes: Path, technique: str) -> None:
    target = tmp_path / "target"
    target.mkdir()
    if technique == "read_only_folder":
        target.chmod(stat.S_IRUSR | stat.S_IXUSR)  # 0o500
        if not _permission_bits_block_writes(target):
            target.chmod(0o700)
            pytest.skip("permission bits do not stop this user (root); the file_in_path case covers root")
        project = target / "runs"
        needle = "not writable"
    else:
        (target / "afile").write_text("not a folder\n")
        project = target / "afile" / "runs"
        needle = "is a file, not a folder"
    before = _tree(target)
    try:
        recipe = write_drill_recipe(tmp_path / "recipe", drill_shapes, project=str(project), epochs=1)
        run = run_cli_in_process(["train", str(recipe)])  # refused before any compute: no process needed
        assert_clean_failure(run, "train.project", needle, str(project))
        assert _tree(target) == before, "something was written"
        if technique == "file_in_path":
            assert (target / "afile").read_text() == "not a folder\n"
    finally:
        target.chmod(0o700)


@pytest.mark.parametrize("technique", ["missing_folder", "file_in_path"])
def test_compute_weights_output_into_bad_folder(tmp_path: Path, drill_shapes: Path, technique: str) -> None:
    out_root = tmp_path / "out"
    out_root.mkdir()
    if technique == "missing_folder":
        output = out_root / "missing" / "weights.yaml"
    else:
        (out_root / "afile").write_text("x")
        output = out_root / "afile" / "weights.yaml"
    before = _tree(out_root)
    run = run_cli_in_process(
        ["compute-weights", "--data", str(drill_shapes), "--format", "yaml", "--output", str(output), "-q"]
    )
    assert_clean_failure(run, "cannot write", str(output))
    assert _tree(out_root) == before, "something was written (or a temporary file was left)"


def _limit_file_size() -> None:
    limit = 2 << 20  # 2 MiB: results.csv and the label caches fit, a yolo26n checkpoint (~5 MiB) does not
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.drill
def test_disk_full_during_training_is_a_clear_error(tmp_path: Path, drill_shapes: Path) -> None:
    recipe = write_drill_recipe(tmp_path, drill_shapes, epochs=2)
    run = run_cli(["train", str(recipe)], tmp_path / "logs", preexec_fn=_limit_file_size)
    assert_clean_failure(run, "file-system error", "File too large")
    last = tmp_path / "runs" / "run" / "weights" / "last.pt"
    assert "Resume with" not in run.output, "a damaged last.pt was advertised as resumable"
    if last.exists():  # cut short at the limit: the message says so instead of offering it
        assert "is incomplete" in run.output
    else:
        assert "no last.pt to resume from" in run.output


@pytest.mark.drill
def test_disk_full_leaves_no_truncated_checkpoint(tmp_path: Path, drill_shapes: Path) -> None:
    """No checkpoint under its real name is cut short (last.pt, best.pt are replaced atomically or not at all)."""
    recipe = write_drill_recipe(tmp_path, drill_shapes, epochs=2)
    run_cli(["train", str(recipe)], tmp_path / "logs", preexec_fn=_limit_file_size)
    weights = tmp_path / "runs" / "run" / "weights"
    partial = [p.name for p in weights.glob("*.pt") if not zipfile.is_zipfile(p)] if weights.exists() else []
    assert not partial, f"truncated checkpoints left under their real names: {partial}"


@pytest.mark.drill
def test_disk_full_leaves_no_temporary_files(tmp_path: Path, drill_shapes: Path) -> None:
    recipe = write_drill_recipe(tmp_path, drill_shapes, epochs=2)
    run_cli(["train", str(recipe)], tmp_path / "logs", preexec_fn=_limit_file_size)
    weights = tmp_path / "runs" / "run" / "weights"
    leftovers = [p.name for p in weights.iterdir() if not p.name.endswith(".pt")] if weights.exists() else []
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_resume_from_truncated_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    weights = tmp_path / "runs" / "run" / "weights"
    weights.mkdir(parents=True)
    last = weights / "last.pt"
    last.write_bytes(b"PK\x03\x04" + os.urandom(4096))  # the start of a zip archive, cut short
    run = run_cli_in_process(["train", "--resume", str(last)])
    assert_clean_failure(run, "not a readable checkpoint", str(last))
