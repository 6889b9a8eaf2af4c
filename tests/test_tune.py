"""``yolocustom tune``: real Ray Tune sweeps of real Ultralytics runs on a tiny generated dataset.

Trials train yolo26n from scratch at imgsz 32 on 16 images, 1-2 epochs. A trial's cost is mostly its start (a Ray
worker importing torch and Ultralytics, building the model), so each sweep runs as few trials as its assertions need,
and the crash sweep runs in the background beside the grid sweep: in a fresh Python with no Ray, where the command
starts its own. One small Ray instance (2 CPUs, no dashboard) serves the rest: the grid sweep's driver is a subprocess
that joins it with ``--address`` (so it can be sent SIGINT like a user's Ctrl-C); ``--resume`` and the ASHA sweep run
in-process and use it as they find it.
"""

from __future__ import annotations

import csv
import functools
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TINY_TRAIN
from typer.testing import CliRunner

from yolocustom.cli import app

REPO = Path(__file__).resolve().parents[1]
PLACEMENT = ("project", "name", "exist_ok")  # set per trial by the sweep
TRAIN = {
    **{k: v for k, v in TINY_TRAIN.items() if k not in PLACEMENT},
    "epochs": 2,
    "optimizer": "SGD",  # 'auto' would pick its own LR and ignore the swept lr0
    "warmup_epochs": 0,
}
Waiter = Callable[[], dict[str, Any]]  # waits for a background sweep, then returns what it left


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """One small local Ray instance for the module; yields its address for subprocess drivers."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from yolocustom.demo_data import generate_demo_dataset

    return generate_demo_dataset(
        tmp_path_factory.mktemp("tiny") / "shapes", n_train=16, n_val=8, img_size=32, seed=0, rare_ratio=3
    )


def recipe_file(folder: Path, data: Path, features: dict[str, Any] | None = None, **train: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    recipe = {
        "model": "yolo26n.yaml",
        "data": str(data),
        "device": "cpu",
        "train": {**TRAIN, "project": str(folder / "runs"), "name": "base", **train},
        "features": features or {},
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def space_file(folder: Path, text: str) -> Path:
    path = folder / "space.yaml"
    path.write_text(text)
    return path


def tune(*args: str | Path) -> Any:
    result = CliRunner().invoke(app, ["tune", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def epochs_in(run_folder: Path) -> list[int]:
    return [int(float(r["epoch"])) for r in read_rows(run_folder / "results.csv")]


# -- a grid, interrupted and resumed -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid_sweep(
    crash_sweep: Waiter, ray_address: str, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A 2-point grid sent SIGINT once the first trial has finished and the second has reported an epoch (so it has
    a checkpoint), then finished with ``--resume``. Trials run one at a time (2 CPUs each), so the second one started
    only after the first had ended. FIFO: ASHA could stop the second trial on its loss before the interrupt.
    ``crash_sweep`` is only started here, to run beside these one-at-a-time trials."""
    folder = tmp_path_factory.mktemp("grid")
    recipe = recipe_file(folder, tiny_data, {"f1_logging": {"per_class": False}})
    space = space_file(folder, "train.lr0: {grid: [0.01, 0.02]}\n")
    project, sweep = folder / "tune", folder / "tune" / "g"
    cmd = [sys.executable, "-m", "yolocustom", "tune", str(recipe), "--space", str(space), "--metric", "val/box_loss"]
    cmd += ["--scheduler", "fifo", "--cpus-per-trial", "2", "--address", ray_address]
    cmd += ["--project", str(project), "--name", "g"]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if sorted(len(read_rows(p)) for p in sweep.glob("ray-*/progress.csv")) == [1, 2]:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    trials = sweep / "trials.csv"
    before = {r["trial"]: r for r in read_rows(trials)} if trials.is_file() else {}
    finished = {
        t: (sweep / "trials" / t / "weights" / "last.pt").stat().st_mtime_ns
        for t, r in before.items()
        if r["status"] == "completed"
    }
    resumed = tune("--resume", "--name", "g", "--project", project)
    return {
        "interrupted": (proc.returncode, out, err),
        "before": before,
        "finished": finished,
        "result": resumed,
        "sweep": sweep,
        "recipe": recipe,
    }


def test_interrupt_then_resume_runs_no_trial_twice(grid_sweep: dict[str, Any]) -> None:
    sweep, (code, out, err) = grid_sweep["sweep"], grid_sweep["interrupted"]
    assert code == 130, out + err
    assert f"yolocustom tune --resume --name g --project {sweep.parent}" in err
    before, finished = grid_sweep["before"], grid_sweep["finished"]
    assert sorted(r["status"] for r in before.values()) == ["completed", "unfinished"], before

    result = grid_sweep["result"]
    assert result.exit_code == 0, result.output
    after = read_rows(sweep / "trials.csv")
    assert {r["trial"] for r in after} == set(before)  # the same two trials, no new one
    assert all(r["status"] == "completed" and r["epochs"] == "2" for r in after), after
    for trial, mtime in finished.items():  # the finished trial was not trained again
        assert (sweep / "trials" / trial / "weights" / "last.pt").stat().st_mtime_ns == mtime
    for row in after:  # no epoch trained or reported twice, the interrupted trial included
        assert epochs_in(Path(row["run_folder"])) == [1, 2]
        progress = next(sweep.glob(f"ray-{row['trial']}/progress.csv"))
        assert [int(float(r["epoch"])) for r in read_rows(progress)] == [1, 2]


def test_grid_sweep_runs_each_point_as_a_normal_run(grid_sweep: dict[str, Any]) -> None:
    """Checked on the resumed sweep: the interrupted trial, too, ends as a normal run."""
    result, sweep = grid_sweep["result"], grid_sweep["sweep"]
    assert result.exit_code == 0, result.output
    rows = read_rows(sweep / "trials.csv")
    assert sorted(float(r["train.lr0"]) for r in rows) == [0.01, 0.02]
    for row in rows:
        run = Path(row["run_folder"])
        assert run.parent == sweep / "trials"
        assert row["status"] == "completed" and row["epochs"] == "2"
        assert (run / "weights" / "last.pt").is_file() and (run / "weights" / "best.pt").is_file()
        assert epochs_in(run) == [1, 2]
        ran = yaml.safe_load((run / "recipe.yaml").read_text())
        assert ran["train"]["lr0"] == float(row["train.lr0"])  # the config in the row is the one the run trained
        losses = [float(r["val/box_loss"]) for r in read_rows(run / "results.csv")]
        assert float(row["best val/box_loss"]) == pytest.approx(min(losses), rel=1e-5)
    ranked = [float(r["best val/box_loss"]) for r in rows]
    assert ranked == sorted(ranked)  # min mode for a loss: best first
    assert (sweep / "metric_per_epoch.png").stat().st_size > 0
    assert "ranked by val/box_loss (min)" in result.output


def test_best_yaml_is_the_winning_recipe_and_trains(grid_sweep: dict[str, Any], tmp_path: Path) -> None:
    sweep = grid_sweep["sweep"]
    rows = read_rows(sweep / "trials.csv")
    winner = min(rows, key=lambda r: float(r["best val/box_loss"]))
    best = yaml.safe_load((sweep / "best.yaml").read_text())
    ran = yaml.safe_load((Path(winner["run_folder"]) / "recipe.yaml").read_text())
    base = yaml.safe_load(grid_sweep["recipe"].read_text())
    for key in PLACEMENT:  # the trial's own folder is the only difference
        ran["train"].pop(key, None)
        best["train"].pop(key, None)
    assert best == ran
    assert best["train"]["lr0"] == float(winner["train.lr0"])
    assert base["train"]["project"] != str(sweep / "trials")
    check = CliRunner().invoke(app, ["validate-config", str(sweep / "best.yaml")])
    assert check.exit_code == 0, check.output
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trained = CliRunner().invoke(app, ["train", str(sweep / "best.yaml"), "--set", "train.epochs=1"])
    assert trained.exit_code == 0, trained.output
    # Ultralytics' own Ray Tune callback (on whenever ray is installed) is dropped: outside a sweep it only warned
    assert not [w for w in caught if "get_trial_id" in str(w.message)]
    assert (Path(base["train"]["project"]) / base["train"]["name"] / "weights" / "best.pt").is_file()


# -- a crashing trial ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crash_sweep(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Waiter]:
    """A sweep in a fresh Python where no Ray runs, so the command starts its own local Ray; the probe then says
    whether Ray is still up. It runs in the background (the grid sweep starts it, so its two trials use the CPU that
    the grid's one-at-a-time trials leave); calling the fixture's value waits for it."""
    pytest.importorskip("ray")
    folder = tmp_path_factory.mktemp("crash")
    recipe = recipe_file(folder, tiny_data, epochs=1)
    space = space_file(folder, "model: {grid: [yolo26n.yaml, no-such-model.yaml]}\n")
    argv = ["yolocustom", "tune", str(recipe), "--space", str(space), "--project", str(folder / "tune"), "--name", "c"]
    probe = (
        "import sys\n"
        "import ray\n"
        "from yolocustom.cli import main\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    print('Ray still initialized:', ray.is_initialized())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # nothing to join: none is running
    env["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    proc = subprocess.Popen([sys.executable, "-c", probe], cwd=folder, env=env, **pipes)

    @functools.cache
    def finish() -> dict[str, Any]:
        out, err = proc.communicate(timeout=300)
        return {"code": proc.returncode, "out": out, "err": err, "sweep": folder / "tune" / "c"}

    try:
        yield finish
        finish()  # even when no test waited: a killed driver could leave its Ray running
    finally:
        proc.kill()


def test_a_crashing_trial_is_recorded_and_the_others_finish(crash_sweep: Waiter) -> None:
    ran = crash_sweep()
    assert ran["code"] == 0, ran["out"] + ran["err"]
    rows = {r["model"]: r for r in read_rows(ran["sweep"] / "trials.csv")}
    assert rows["no-such-model.yaml"]["status"] == "error"
    assert "no-such-model" in rows["no-such-model.yaml"]["error"]
    good = rows["yolo26n.yaml"]
    assert good["status"] == "completed" and good["best fitness"] != ""  # the default metric: the recipe's fitness
    assert (Path(good["run_folder"]) / "weights" / "best.pt").is_file()
    assert yaml.safe_load((ran["sweep"] / "best.yaml").read_text())["model"] == "yolo26n.yaml"
    assert "Started a local Ray instance" in ran["err"]  # the command started its own Ray ...
    assert "Ray still initialized: False" in ran["out"]  # ... and shut it down after


# -- ASHA ----------------------------------------------------------------------------------------------------------


def test_asha_stops_poor_trials_early(ray_address: str, tiny_data: Path, tmp_path: Path) -> None:
    """Built so ASHA must stop a trial: one trial at a time (2 CPUs each), the metric is the reported learning rate of
    the first parameter group (deterministic: lr0 at epoch 1 with no warmup), and the best lr0 comes first. At the
    first rung the second, lower trial falls below the cutoff the first one recorded and is stopped after 1 of 2
    epochs (a trial waits in its report until Ray Tune lets it go on, so it cannot run ahead of the decision)."""
    recipe = recipe_file(tmp_path, tiny_data)
    space = space_file(tmp_path, "train.lr0: {grid: [0.02, 0.001]}\n")
    args = ["--metric", "lr/pg0", "--scheduler", "asha", "--grace-period", "1", "--reduction-factor", "2"]
    args += ["--cpus-per-trial", "2", "--project", str(tmp_path / "tune"), "--name", "asha"]
    result = tune(recipe, "--space", space, *args)
    assert result.exit_code == 0, result.output
    rows = {float(r["train.lr0"]): r for r in read_rows(tmp_path / "tune" / "asha" / "trials.csv")}
    assert rows[0.02]["status"] == "completed" and rows[0.02]["epochs"] == "2", rows
    assert rows[0.001]["status"] == "stopped early" and rows[0.001]["epochs"] == "1", rows
    assert epochs_in(Path(rows[0.001]["run_folder"])) == [1]  # the run really stopped
    from ultralytics.utils.patches import torch_load

    # the surviving trial ends as Ultralytics ends a run: best.pt validated and stripped by final_eval (ASHA must not
    # stop a trial at its last report, inside on_fit_epoch_end, before that)
    best = torch_load(Path(rows[0.02]["run_folder"]) / "weights" / "best.pt", map_location="cpu")
    assert best["epoch"] == -1 and best["optimizer"] is None, (best["epoch"], type(best["optimizer"]))


# -- bad space files -----------------------------------------------------------------------------------------------

BAD_SPACES = [
    pytest.param(
        "train.lr0: {uniform: [0.001, 0.01]}\nfeatures.freez.epochs: {choice: [1, 2]}\n",
        ["space.yaml:2:1: features.freez.epochs: unknown key", "unknown key 'freez'", "did you mean 'freeze'"],
        id="unknown-path",
    ),
    pytest.param(
        "train.lr00: {loguniform: [0.001, 0.01]}\n",
        ["space.yaml:1:1: train.lr00: ", "unknown Ultralytics train argument 'lr00'", "did you mean 'lr0'"],
        id="unknown-train-key",
    ),
    pytest.param(
        "features.freeze.epochs: {uniform: [1, 3]}\n",
        ["space.yaml:1:26: features.freeze.epochs: ", "expected an integer domain", "found uniform"],
        id="float-range-on-int",
    ),
    pytest.param(
        "features.class_weights.auto: {choice: [inverse, sqrt]}\n",
        ["space.yaml:1:49: features.class_weights.auto: ", "value 'sqrt'", "'sqrt_inverse'", "found 'sqrt'"],
        id="choice-outside-literal",
    ),
    pytest.param(
        "features.freeze.epochs: {grid: [1, 2]}\ntrain.epochs: {grid: [2, 4]}\n",
        [
            "1:1",
            "features.freeze.epochs",
            "forbidden combination",
            "features.freeze.epochs=2, train.epochs=2",
            "expected fewer than train.epochs (2), found 2",
        ],
        id="forbidden-combination",
    ),
    pytest.param(
        "features.freeze.epochs: {randint: [1, 5]}\n",
        ["features.freeze.epochs", "forbidden combination", "expected fewer than train.epochs (2)"],
        id="forbidden-random-draw",
    ),
    pytest.param(
        "train.optimizer: {choice: [SGD, auto]}\ntrain.lr0: {loguniform: [1.0e-4, 1.0e-2]}\n",
        ["space.yaml:2:1: train.lr0: ", "'auto' picks its own learning rate", "set train.optimizer in the recipe"],
        id="lr0-ignored-by-auto-optimizer",
    ),
    pytest.param(
        "train.lr0: {choice: [0.1, 0.2}\n",
        ["space.yaml:1:", "YAML syntax error"],
        id="malformed-yaml",
    ),
    pytest.param(
        "train.lr0: {choise: [0.1]}\n",
        ["space.yaml:1:13: train.lr0: unknown domain 'choise'", "did you mean 'choice'"],
        id="unknown-domain",
    ),
]


@pytest.mark.parametrize(("text", "fragments"), BAD_SPACES)
def test_bad_space_file_exit_1_before_any_compute(
    tiny_data: Path, tmp_path: Path, text: str, fragments: list[str]
) -> None:
    recipe = recipe_file(tmp_path, tiny_data)
    space = space_file(tmp_path, text)
    result = CliRunner().invoke(app, ["tune", str(recipe), "--space", str(space), "--project", str(tmp_path / "t")])
    output = result.stdout + result.stderr
    assert result.exit_code == 1, output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    assert not (tmp_path / "t").exists()  # refused before a sweep folder (or a trial) existed


def test_without_ray_tune_names_the_extra(tmp_path: Path, tiny_data: Path) -> None:
    recipe = recipe_file(tmp_path, tiny_data)
    space = space_file(tmp_path, "train.lr0: {grid: [0.01, 0.02]}\n")
    probe = (
        "import sys; sys.modules['ray'] = None\n"  # what a missing package looks like to `import ray`
        "from yolocustom.cli import main\n"
        f"sys.argv = ['yolocustom', 'tune', {str(recipe)!r}, '--space', {str(space)!r}]\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "pip install 'yolocustom[tune]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_valid_feature_space_passes_every_check(tiny_data: Path, tmp_path: Path) -> None:
    """The README's space over features: every value, grid point and seeded draw validates as a complete recipe."""
    pytest.importorskip("ray")
    from yolocustom.recipe import load_recipe, validate_recipe
    from yolocustom.tune.space import apply_config, check_space, combinations, load_space

    recipe = load_recipe(recipe_file(tmp_path, tiny_data, {"freeze": {"epochs": 1}}, epochs=8))
    space = load_space(
        space_file(
            tmp_path,
            "features.class_weights.auto: {choice: [inverse, sqrt_inverse, effective_number]}\n"
            "features.freeze.epochs: {randint: [1, 6]}\n"
            "features.layer_lr.backbone_ratio: {loguniform: [0.01, 1.0]}\n"
            "train.lr0: {loguniform: [1.0e-4, 1.0e-2]}\n"
            "train.imgsz: {grid: [32, 64]}\n",
        )
    )
    assert space.trial_count(3) == 6  # each sample runs both grid points
    assert check_space(space, recipe.resolved_dict(), samples=16) >= 2 * 16
    draws = combinations(space, samples=16, seed=0)
    assert draws == combinations(space, samples=16, seed=0)  # seeded
    assert {d["features.freeze.epochs"] for d in draws} == {1, 2, 3, 4, 5}  # randint excludes its upper bound
    ran = validate_recipe(apply_config(recipe.resolved_dict(), draws[0]))
    assert (
        ran.features.class_weights is not None
        and ran.features.class_weights.auto == draws[0]["features.class_weights.auto"]
    )
    assert set(space.ray_space()) == {p.path for p in space.params}
