"""Helpers for the failure drills: the real ``yolocustom`` CLI in measured subprocesses, and a small shapes dataset.

``tests/conftest.py`` and this file share the module name ``conftest`` (neither folder is a package), and pytest swaps
``sys.modules["conftest"]`` as it loads them, so ``from conftest import X`` may find either file. This one therefore
re-exports every helper of the parent (explicitly, and through a module ``__getattr__`` for anything else), so both
the drills and the top-level tests import what they need whichever file is current.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

_TESTS = Path(__file__).resolve().parents[1]
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))


def _load_parent() -> ModuleType:
    """Load ``tests/conftest.py`` under a private name (the shared name ``conftest`` is pytest's to juggle)."""
    name = "_yolocustom_tests_conftest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_parent = _load_parent()
SHARED_DATASETS: Path = _parent.SHARED_DATASETS
TINY_TRAIN: dict[str, Any] = _parent.TINY_TRAIN
shared_dataset_yaml: Callable[[str, Path], Path] = _parent.shared_dataset_yaml
write_recipe: Callable[..., Path] = _parent.write_recipe
run_recipe: Callable[..., Any] = _parent.run_recipe
read_csv: Callable[[Path], list[dict[str, str]]] = _parent.read_csv


def __getattr__(name: str) -> Any:
    """Fall back to the parent conftest for helpers not re-exported above (PEP 562)."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_parent, name)


CLI = str(Path(sys.executable).parent / "yolocustom") if (Path(sys.executable).parent / "yolocustom").exists() else ""
CLI = CLI or shutil.which("yolocustom") or "yolocustom"

# Settings for the drills' training runs: small, CPU, and learnable enough that F1 leaves 0 within a few epochs (so
# "best.pt follows F1" is not vacuous): explicit AdamW at a higher LR, 1 warm-up epoch, no mosaic.
DRILL_TRAIN: dict[str, Any] = {
    "imgsz": 64,
    "batch": 8,
    "nbs": 8,
    "workers": 0,
    "seed": 0,
    "amp": False,
    "plots": False,
    "exist_ok": True,
    "optimizer": "AdamW",
    "lr0": 0.005,
    "warmup_epochs": 1,
    "mosaic": 0.0,
}
ALL_FEATURES: dict[str, Any] = {
    "f1_logging": {"per_class": True},
    "class_weights": {"auto": "sqrt_inverse"},
    "fitness": {"metric": "f1"},
    "freeze": {"layers": "backbone", "epochs": 3},
    "layer_lr": {"backbone_ratio": 0.3},
}


_REPORT: list[dict[str, Any]] = []


@pytest.fixture
def drill_record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record measured facts of a drill; written as JSON to ``$YOLOCUSTOM_DRILL_REPORT`` at the end of the session
    (``python bench/run_all.py drills`` folds them into docs/BENCHMARKS.md)."""

    def record(**facts: Any) -> None:
        _REPORT.append({"test": request.node.nodeid, **facts})

    return record


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the drills' recorded facts where ``$YOLOCUSTOM_DRILL_REPORT`` says, if set."""
    target = os.environ.get("YOLOCUSTOM_DRILL_REPORT")
    if target and _REPORT:
        import json

        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(json.dumps(_REPORT, indent=2) + "\n")


def cli_env() -> dict[str, str]:
    """Return the environment for CLI subprocesses: offline, no auto-install, unbuffered."""
    env = dict(os.environ)
    env.update(YOLO_OFFLINE="1", YOLO_AUTOINSTALL="false", PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    env.pop("PYTEST_CURRENT_TEST", None)  # else Ultralytics thinks it runs under pytest and moves relative run folders
    return env


@dataclass
class CliRun:
    """A finished CLI subprocess.

    Attributes:
        returncode (int): Exit status (negative: killed by that signal).
        stdout (str): Its standard output.
        stderr (str): Its standard error.
        wall_s (float): Wall-clock seconds.
        cpu_s (float): User + system CPU seconds of the child.
        maxrss_mb (float): Peak resident set size of the child, MiB.
    """

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    maxrss_mb: float

    @property
    def output(self) -> str:
        """Return stdout and stderr together."""
        return self.stdout + self.stderr


# A forked child starts with its parent's peak-RSS mark, and exec keeps it; when pytest has imported torch (300+ MiB),
# ru_maxrss of a directly spawned CLI reports pytest's footprint rather than the CLI's. This small launcher is exec'd
# first, forks the CLI from its own ~10 MiB image and reports the CLI's own rusage, so the figure is the CLI's.
_LAUNCHER = """
import json, os, signal, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
report = {"maxrss_kb": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": time.perf_counter() - start}
with open(sys.argv[1], "w") as f:
    json.dump(report, f)
code = os.waitstatus_to_exitcode(status)
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


class CliProcess:
    """A ``yolocustom`` subprocess writing to files, in its own session, that can be signalled and reaped with its
    resource usage.

    With ``isolated=True`` (what :func:`run_cli` uses) the CLI runs under a small launcher so its peak RSS is its own;
    don't signal such a process (the signal would reach the launcher, not the CLI).
    """

    def __init__(
        self,
        args: list[str],
        workdir: Path,
        cwd: Path | None = None,
        preexec_fn: Callable[[], None] | None = None,
        env: dict[str, str] | None = None,
        isolated: bool = False,
    ):
        """Start ``yolocustom ARGS``.

        Args:
            args (list[str]): CLI arguments.
            workdir (Path): Folder for the stdout/stderr files.
            cwd (Path, optional): Working directory (default: ``workdir``).
            preexec_fn (Callable, optional): Run in the child before exec (e.g. to set resource limits).
            env (dict[str, str], optional): Extra environment variables.
            isolated (bool): Run under the rusage launcher (exact peak RSS, CPU and wall time of the CLI itself).
        """
        workdir.mkdir(parents=True, exist_ok=True)
        stamp = f"{time.monotonic_ns()}"
        self.out_path = workdir / f"cli-{stamp}.out"
        self.err_path = workdir / f"cli-{stamp}.err"
        self.usage_path = workdir / f"cli-{stamp}.usage.json" if isolated else None
        self._out = open(self.out_path, "wb")  # noqa: SIM115 - closed in wait(), after the child exits
        self._err = open(self.err_path, "wb")  # noqa: SIM115
        self.start = time.perf_counter()

        def child_setup() -> None:
            # A terminal user's process has the default SIGINT (KeyboardInterrupt); a pytest started in the background
            # by a non-interactive shell passes SIGINT down as ignored, which would make Ctrl-C drills meaningless.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            if preexec_fn is not None:
                preexec_fn()

        cmd = [CLI, *args]
        if self.usage_path is not None:
            cmd = [sys.executable, "-c", _LAUNCHER, str(self.usage_path), *cmd]
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd or workdir,
            env={**cli_env(), **(env or {})},
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
            preexec_fn=child_setup,
        )

    def output_so_far(self) -> str:
        """Return what the process has written so far (stdout then stderr)."""
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def running(self) -> bool:
        """Whether the process has not exited yet."""
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process (only this one process, which we started)."""
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 600) -> CliRun:
        """Reap the process and return its outputs and resource usage; SIGKILL it after ``timeout`` seconds."""
        deadline = time.perf_counter() + timeout
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the launcher and the CLI, nothing else
            time.sleep(0.01)
        wall = time.perf_counter() - self.start
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self._out.close()
        self._err.close()
        cpu, maxrss_mb = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0
        if self.usage_path is not None and self.usage_path.exists():
            import json

            own = json.loads(self.usage_path.read_text())
            wall, cpu, maxrss_mb = own["wall_s"], own["cpu_s"], own["maxrss_kb"] / 1024.0
        return CliRun(
            self.proc.returncode,
            self.out_path.read_text(errors="replace"),
            self.err_path.read_text(errors="replace"),
            wall,
            cpu,
            maxrss_mb,
        )


def run_cli(
    args: list[str],
    workdir: Path,
    timeout: float = 600,
    cwd: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
    env: dict[str, str] | None = None,
) -> CliRun:
    """Run ``yolocustom ARGS`` to completion and return the result with its resource usage.

    Args:
        args (list[str]): CLI arguments.
        workdir (Path): Folder for output files (and the default working directory).
        timeout (float): Seconds before the process is killed.
        cwd (Path, optional): Working directory.
        preexec_fn (Callable, optional): Run in the child before exec.
        env (dict[str, str], optional): Extra environment variables.

    Returns:
        (CliRun): Exit status, outputs, wall/CPU time and peak RSS.
    """
    return CliProcess(args, workdir, cwd, preexec_fn, env, isolated=True).wait(timeout)


def run_cli_in_process(args: list[str]) -> CliRun:
    """Run ``yolocustom ARGS`` through the same Typer app in this process (typer's ``CliRunner``): for refusals
    before any compute, where a fresh interpreter would only add its 2-4 s of torch/Ultralytics import.

    An exception other than the command's own exit is written to stderr as a traceback, so ``assert_clean_failure``
    fails on a crash exactly as it would on the subprocess's output. Times and peak RSS are not measured (0).
    """
    import traceback

    from typer.testing import CliRunner

    from yolocustom.cli import app

    result = CliRunner().invoke(app, args)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return CliRun(result.exit_code, result.stdout, stderr, 0.0, 0.0, 0.0)


def assert_clean_failure(run: CliRun, *needles: str) -> None:
    """Assert a user-facing failure: exit 1, an ``error:``-style message containing ``needles``, no traceback.

    Args:
        run (CliRun): The finished CLI run.
        *needles (str): Substrings the output must contain (case-insensitive).
    """
    text = run.output
    assert run.returncode == 1, f"expected exit 1, got {run.returncode}:\n{text[-3000:]}"
    assert "Traceback" not in text, f"traceback instead of a clear error:\n{text[-3000:]}"
    for needle in needles:
        assert needle.lower() in text.lower(), f"{needle!r} not in output:\n{text[-3000:]}"


def write_drill_recipe(
    folder: Path, data: Path, features: dict[str, Any] | None = None, name: str = "run", **train: Any
) -> Path:
    """Write a drill recipe (``DRILL_TRAIN`` + ``train``) into ``folder``; runs go to ``folder/runs/NAME``.

    Args:
        folder (Path): Folder for the recipe and its runs.
        data (Path): Dataset YAML.
        features (dict[str, Any], optional): Feature blocks.
        name (str): Run name.
        **train (Any): Extra or overriding ``train`` values.

    Returns:
        (Path): The recipe file.
    """
    return write_recipe(folder, data, features, **{**DRILL_TRAIN, "name": name, **train})


@pytest.fixture(scope="session")
def drill_shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 96-train/32-val shapes set at 64 px (rare class 1:4): seconds per epoch on CPU."""
    from yolocustom.demo_data import generate_demo_dataset

    return generate_demo_dataset(
        tmp_path_factory.mktemp("drill_shapes") / "shapes", n_train=96, n_val=32, img_size=64, seed=0, rare_ratio=4
    )


def copy_dataset(src_yaml: Path, dest: Path) -> Path:
    """Copy a generated shapes dataset (images, labels, YAML with ``path:`` rewritten) to ``dest``; return its YAML.

    Args:
        src_yaml (Path): ``data.yaml`` of a generated dataset.
        dest (Path): New dataset folder.

    Returns:
        (Path): The copy's ``data.yaml``.
    """
    import yaml

    shutil.copytree(src_yaml.parent, dest, ignore=shutil.ignore_patterns("*.cache"))
    data = yaml.safe_load((dest / "data.yaml").read_text())
    data["path"] = str(dest)
    (dest / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return dest / "data.yaml"
