"""Valid recipes: round trips, --set overrides, relative paths, feature switches and the validate-config command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from yolocustom import cli
from yolocustom.errors import RecipeError
from yolocustom.recipe import Recipe, load_recipe, validate_recipe

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
HEAD = "model: yolo26n.yaml\ndata: coco8.yaml\n"


APP = cli.app  # the real CLI, as the console script runs it


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


EXTRA_RECIPES = {
    "explicit-weights-and-blend": """\
        version: 1
        model: yolo26n.yaml
        data: coco8.yaml
        device: [0, 1]
        train: {epochs: 12, imgsz: [320, 256], lr0: 0.005, amp: false, name: run1, fraction: 0.5}
        features:
          class_weights: {weights: {0: 2.0, dog: 0.5}, normalize: none, max_weight: 3}
          fitness: {weights: {f1: 1, mAP50-95: 3}}
          freeze: {layers: [0, 1, 2], epochs: 4}
          layer_lr: {backbone_ratio: 0.25, backbone_layers: 10}
        """,
    "effective-number-and-switched-off": """\
        model: yolo26n.yaml
        data: coco8.yaml
        device: "0,1"
        train:
          epochs: 3
        features:
          f1_logging:
          class_weights: {auto: effective_number, beta: 0.99}
          fitness: {enabled: false}
          freeze: false
          layer_lr: {enabled: false, backbone_ratio: 0.5}
        """,
    "cpu-null-blocks": """\
        model: yolo26n.yaml
        data: coco8.yaml
        device: cpu
        train:
        features:
        """,
}


def _recipe_files(tmp_path: Path) -> list[Path]:
    import textwrap

    extra = [_write(tmp_path / f"{name}.yaml", textwrap.dedent(text)) for name, text in EXTRA_RECIPES.items()]
    return [*CONFIGS, *extra]


def test_configs_exist() -> None:
    assert {p.name for p in CONFIGS} >= {"minimal.yaml", "all-features.yaml"}


def test_round_trip(tmp_path: Path) -> None:
    """load -> resolved_dict() -> YAML -> load gives an equal Recipe with the same digest."""
    for source in _recipe_files(tmp_path):
        recipe = load_recipe(source)
        dumped = yaml.safe_dump(recipe.resolved_dict(), sort_keys=False)
        again = load_recipe(_write(tmp_path / "round" / source.name, dumped))
        assert again == recipe, source.name
        assert again.digest() == recipe.digest(), source.name
        assert again.resolved_dict() == recipe.resolved_dict()
        # validate_recipe on the plain data (how checkpoints carry recipes) agrees too
        assert validate_recipe(recipe.resolved_dict()).digest() == recipe.digest()


def test_resolved_dict_is_plain_data(tmp_path: Path) -> None:
    recipe = load_recipe(_recipe_files(tmp_path)[-3])  # explicit-weights-and-blend
    data = recipe.resolved_dict()
    assert data["features"]["class_weights"]["weights"] == {0: 2.0, "dog": 0.5}  # class-id keys stay ints
    assert set(data["features"]) == {"class_weights", "fitness", "freeze", "layer_lr"}  # absent blocks left out
    assert data["version"] == 1 and data["device"] == [0, 1]
    assert recipe.ultralytics_device() == "0,1"
    assert recipe.train_epochs() == 12


def test_digest_changes_with_content(tmp_path: Path) -> None:
    a = load_recipe(_write(tmp_path / "a.yaml", HEAD + "train: {epochs: 5}\n"))
    b = load_recipe(_write(tmp_path / "b.yaml", HEAD + "train: {epochs: 6}\n"))
    c = load_recipe(_write(tmp_path / "c.yaml", "# a comment\ntrain: {epochs: 5}\n" + HEAD))  # order, comments
    assert a.digest() != b.digest()
    assert a.digest() == c.digest()
    assert len(a.digest()) == 64


# -- overrides ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "path", "expected"),
    [
        ("train.epochs=5", ("train", "epochs"), 5),
        ("train.lr0=0.02", ("train", "lr0"), 0.02),
        ("train.amp=false", ("train", "amp"), False),
        ("train.cos_lr=true", ("train", "cos_lr"), True),
        ("train.imgsz=[320, 256]", ("train", "imgsz"), [320, 256]),
        ("train.name=exp 7", ("train", "name"), "exp 7"),
        ("train.name='5'", ("train", "name"), "5"),
        ("train.fraction=0.25", ("train", "fraction"), 0.25),
        ("device=[0, 1]", ("device",), [0, 1]),
        ("device=0,1", ("device",), "0,1"),
        ("device=3", ("device",), 3),
        ("device=cpu", ("device",), "cpu"),
        ("features.freeze.epochs=2", ("features", "freeze", "epochs"), 2),
        ("features.freeze.layers=[0, 2, 4]", ("features", "freeze", "layers"), [0, 2, 4]),
        ("features.layer_lr.backbone_ratio=0.3", ("features", "layer_lr", "backbone_ratio"), 0.3),
        ("features.fitness.metric=f1", ("features", "fitness", "metric"), "f1"),
        ("features.class_weights.auto=inverse", ("features", "class_weights", "auto"), "inverse"),
        (
            "features.class_weights.weights={dog: 2, 0: 0.5}",
            ("features", "class_weights", "weights"),
            {"dog": 2.0, 0: 0.5},
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_override_types(tmp_path: Path, override: str, path: tuple[str, ...], expected: Any) -> None:
    base = HEAD + "train:\n  epochs: 10\nfeatures:\n  freeze: {epochs: 1}\n"
    recipe = load_recipe(_write(tmp_path / "r.yaml", base), [override])
    value: Any = recipe.resolved_dict()
    for part in path:
        value = value[part]
    assert value == expected
    assert type(value) is type(expected)


def test_override_creates_feature_blocks_and_wins(tmp_path: Path) -> None:
    recipe_file = _write(tmp_path / "r.yaml", HEAD + "train:\n  epochs: 10\n  batch: 8\n")
    recipe = load_recipe(
        recipe_file,
        ["train.epochs=5", "features.freeze.epochs=2", "features.f1_logging=", "train.epochs=6"],
    )
    assert recipe.train == {"epochs": 6, "batch": 8}  # the last --set for a key wins over the file and earlier --set
    enabled = recipe.features.enabled()
    assert list(enabled) == ["f1_logging", "freeze"]
    assert recipe.features.freeze is not None and recipe.features.freeze.epochs == 2
    assert recipe.features.freeze.layers == "backbone"
    assert recipe.features.f1_logging is not None and recipe.features.f1_logging.per_class is True


def test_override_can_switch_a_feature_off(tmp_path: Path) -> None:
    recipe_file = _write(tmp_path / "r.yaml", HEAD + "train: {epochs: 3}\nfeatures:\n  freeze: {epochs: 1}\n")
    assert "freeze" in load_recipe(recipe_file).features.enabled()
    off = load_recipe(recipe_file, ["features.freeze.enabled=false"])
    assert "freeze" not in off.features.enabled()
    # ... which also allows values that only matter when it is on
    assert (
        "freeze" not in load_recipe(recipe_file, ["features.freeze.enabled=false", "train.epochs=1"]).features.enabled()
    )


def test_override_through_cli(tmp_path: Path) -> None:
    recipe_file = _write(tmp_path / "r.yaml", HEAD + "train:\n  epochs: 3\n")
    ok = CliRunner().invoke(APP, ["validate-config", str(recipe_file), "--set", "train.epochs=5",
                                  "--set", "features.freeze.epochs=2"])  # fmt: skip
    assert ok.exit_code == 0  # a warning (freeze on a model YAML) never changes the exit code
    assert ok.stdout.splitlines()[1:] == [f"{recipe_file}: ok"]
    assert ok.stdout.startswith(f"{recipe_file}: warning: --set features.freeze.epochs=2: features.freeze: ")
    bad = CliRunner().invoke(APP, ["validate-config", str(recipe_file), "--set", "features.freeze.epochs=3"])
    assert bad.exit_code == 1
    assert "--set features.freeze.epochs=3: features.freeze.epochs: expected fewer than train.epochs (3)" in bad.stdout


# -- relative paths ----------------------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_recipe_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    _write(project / "recipes" / "data" / "foo.yaml", "names: {0: a}\n")
    _write(project / "recipes" / "yolo26n.yaml", "# a local model YAML shadowing the bare name\n")
    recipe_file = _write(
        project / "recipes" / "r.yaml",
        "model: yolo26n.yaml\ndata: data/foo.yaml\ntrain: {epochs: 3}\n",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    recipe = load_recipe(Path("..") / "project" / "recipes" / "r.yaml")
    assert recipe.data == str((project / "recipes" / "data" / "foo.yaml").resolve())
    assert recipe.model == str((project / "recipes" / "yolo26n.yaml").resolve())  # a file of that name sits there
    assert load_recipe(recipe_file).data == recipe.data  # absolute or relative recipe path: same answer


def test_bare_names_and_other_path_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "recipes"
    absolute = tmp_path / "abs" / "data.yaml"
    recipe_file = _write(
        folder / "r.yaml",
        f"model: ./models/custom.yaml\ndata: {absolute}\ntrain: {{epochs: 3}}\n",
    )
    bare = _write(folder / "bare.yaml", HEAD)
    up = _write(folder / "up.yaml", "model: yolo26n.yaml\ndata: ../datasets/x/data.yaml\n")
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "coco8.yaml", "# a file in the cwd must not capture the bare name\n")

    recipe = load_recipe(recipe_file)
    assert recipe.model == str(
        (folder / "models" / "custom.yaml").resolve()
    )  # looks like a path: resolved even if absent
    assert recipe.data == str(absolute)
    bare_recipe = load_recipe(bare)
    assert (bare_recipe.model, bare_recipe.data) == ("yolo26n.yaml", "coco8.yaml")  # left for Ultralytics to resolve
    assert load_recipe(up).data == str((tmp_path / "datasets" / "x" / "data.yaml").resolve())


def test_relative_paths_through_cli_from_other_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = _dataset(tmp_path / "proj" / "recipes" / "data")
    recipe_file = _write(
        tmp_path / "proj" / "recipes" / "r.yaml",
        f"model: yolo26n.yaml\ndata: data/{dataset.name}\ntrain: {{epochs: 3}}\n"
        "features:\n  class_weights:\n    weights: {dog: 2.0}\n",
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(APP, ["validate-config", "proj/recipes/r.yaml", "--check-data"])
    assert result.exit_code == 0, result.stdout
    assert result.stdout == "proj/recipes/r.yaml: ok\n"
    assert recipe_file.exists()


# -- feature switches --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "on"),
    [
        ("f1_logging:", True),
        ("f1_logging: null", True),
        ("f1_logging: true", True),
        ("f1_logging: {}", True),
        ("f1_logging: {per_class: false}", True),
        ("f1_logging: false", False),
        ("f1_logging: {enabled: false}", False),
        ("f1_logging: {enabled: false, per_class: false}", False),
    ],
)
def test_feature_switch_forms(tmp_path: Path, block: str, on: bool) -> None:
    recipe = load_recipe(_write(tmp_path / "r.yaml", HEAD + f"features:\n  {block}\n"))
    assert ("f1_logging" in recipe.features.enabled()) is on


@pytest.mark.parametrize(
    "block",
    ["freeze: false", "freeze: {enabled: false}", "layer_lr: false", "layer_lr: {enabled: false}",
     "class_weights: false", "fitness: {enabled: false}"],
)  # fmt: skip
def test_switched_off_blocks_need_not_be_complete(tmp_path: Path, block: str) -> None:
    recipe = load_recipe(_write(tmp_path / "r.yaml", HEAD + f"features:\n  {block}\n"))
    assert recipe.features.enabled() == {}
    again = load_recipe(_write(tmp_path / "again.yaml", yaml.safe_dump(recipe.resolved_dict())))
    assert again.digest() == recipe.digest()


def test_switched_off_blocks_still_reject_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"6:5: features.freeze.epoch: unknown key 'epoch'; did you mean 'epochs'\?"):
        load_recipe(_write(tmp_path / "r.yaml", HEAD + "features:\n  freeze:\n    enabled: false\n    epoch: 3\n"))


def test_disabled_blocks_skip_their_checks(tmp_path: Path) -> None:
    text = HEAD + (
        "train:\n  epochs: 3\n  freeze: 5\n  cls_pw: 0.5\n"
        "features:\n"
        "  class_weights: {enabled: false}\n"  # neither weights nor auto: fine while off
        "  fitness: {enabled: false}\n"
        "  freeze: {enabled: false, epochs: 10}\n"  # epochs >= train.epochs: fine while off
    )
    recipe = load_recipe(_write(tmp_path / "r.yaml", text))
    assert recipe.features.enabled() == {}
    assert recipe.train["freeze"] == 5 and recipe.train["cls_pw"] == 0.5


def test_valid_device_forms(tmp_path: Path) -> None:
    expected = {"cpu": "cpu", "mps": "mps", "auto": None, "0": "0", "[0, 1]": "0,1", "'0,1'": "0,1", "'0, 1'": "0,1"}
    for text, device in expected.items():
        recipe = load_recipe(_write(tmp_path / "r.yaml", HEAD + f"device: {text}\n"))
        assert recipe.ultralytics_device() == device, text


def test_null_train_and_features_mean_empty(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path / "r.yaml", HEAD + "train:\nfeatures:\n  # f1_logging:\n"))
    assert recipe.train == {} and recipe.features.enabled() == {}
    assert recipe.train_epochs() == 100  # Ultralytics' default.yaml


def test_freeze_epochs_just_below_train_epochs(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path / "r.yaml", HEAD + "train: {epochs: 5}\nfeatures:\n  freeze: {epochs: 4}\n"))
    assert recipe.features.freeze is not None and recipe.features.freeze.epochs == 4


def test_recipe_is_frozen(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path / "r.yaml", HEAD))
    with pytest.raises(Exception, match="frozen"):
        recipe.model = "other.yaml"
    assert isinstance(recipe, Recipe)


# -- validate-config ---------------------------------------------------------------------------------------------------


def test_validate_several_files(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.yaml", HEAD + "train: {epochs: 3}\n")
    bad = _write(tmp_path / "bad.yaml", HEAD + "train:\n  epoch: 3\n")
    also_good = _write(tmp_path / "also_good.yaml", HEAD)

    mixed = CliRunner().invoke(APP, ["validate-config", str(good), str(bad), str(also_good)])
    assert mixed.exit_code == 1
    assert mixed.stdout.splitlines() == [
        f"{good}: ok",
        f"{bad}:4:3: train.epoch: unknown Ultralytics train argument 'epoch'; did you mean 'epochs'?",
        f"{also_good}: ok",
    ]
    all_good = CliRunner().invoke(APP, ["validate-config", str(good), str(also_good)])
    assert all_good.exit_code == 0
    assert all_good.stdout.splitlines() == [f"{good}: ok", f"{also_good}: ok"]


def test_validate_needs_a_file() -> None:
    result = CliRunner().invoke(APP, ["validate-config"])
    assert result.exit_code == 2  # usage error from Typer, not a crash


def _dataset(folder: Path, names: Any = None) -> Path:
    """A tiny dataset YAML with existing (empty) image folders."""
    for split in ("train", "val"):
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
    names = names if names is not None else {0: "person", 1: "dog", 2: "traffic light"}
    data = {"path": str(folder.resolve()), "train": "images/train", "val": "images/val", "names": names}
    return _write(folder / "tiny.yaml", yaml.safe_dump(data, sort_keys=False))


def test_check_data_unknown_class_name(tmp_path: Path) -> None:
    pytest.importorskip("yolocustom.datasets", reason="yolocustom.datasets (used by --check-data) is not written yet")
    dataset = _dataset(tmp_path / "ds")
    recipe_file = _write(
        tmp_path / "r.yaml",
        f"model: yolo26n.yaml\ndata: {dataset}\ntrain: {{epochs: 3}}\n"
        "features:\n  class_weights:\n    weights:\n      person: 1.5\n      dgo: 2.0\n",
    )
    plain = CliRunner().invoke(APP, ["validate-config", str(recipe_file)])
    assert plain.exit_code == 0, plain.stdout  # names are only checked against the dataset with --check-data

    result = CliRunner().invoke(APP, ["validate-config", "--check-data", str(recipe_file)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == (
        f"{recipe_file}:8:7: features.class_weights.weights: class 'dgo' is not in the dataset's names; "
        "did you mean 'dog'?\n"
    )


def test_check_data_class_id_out_of_range_and_ok(tmp_path: Path) -> None:
    pytest.importorskip("yolocustom.datasets", reason="yolocustom.datasets (used by --check-data) is not written yet")
    dataset = _dataset(tmp_path / "ds", names=["person", "dog"])
    bad = _write(
        tmp_path / "bad.yaml",
        f"model: yolo26n.yaml\ndata: {dataset}\nfeatures:\n  class_weights: {{weights: {{0: 1.0, 5: 2.0}}}}\n",
    )
    good = _write(
        tmp_path / "good.yaml",
        f"model: yolo26n.yaml\ndata: {dataset}\nfeatures:\n  class_weights: {{weights: {{1: 3.0, person: 0.5}}}}\n",
    )
    result = CliRunner().invoke(APP, ["validate-config", "--check-data", str(bad), str(good)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{bad}:4:37: features.class_weights.weights: class id 5 is not in the dataset")
    assert "expected 0..1" in lines[0]
    assert lines[1] == f"{good}: ok"


def test_check_data_override_is_named(tmp_path: Path) -> None:
    pytest.importorskip("yolocustom.datasets", reason="yolocustom.datasets (used by --check-data) is not written yet")
    dataset = _dataset(tmp_path / "ds")
    recipe_file = _write(tmp_path / "r.yaml", f"model: yolo26n.yaml\ndata: {dataset}\n")
    override = "features.class_weights.weights={persn: 2}"
    result = CliRunner().invoke(APP, ["validate-config", "--check-data", str(recipe_file), "--set", override])
    assert result.exit_code == 1
    assert f"--set {override}: features.class_weights.weights: class 'persn'" in result.stdout
    assert "did you mean 'person'?" in result.stdout


def test_check_data_missing_dataset(tmp_path: Path) -> None:
    pytest.importorskip("yolocustom.datasets", reason="yolocustom.datasets (used by --check-data) is not written yet")
    recipe_file = _write(tmp_path / "r.yaml", "model: yolo26n.yaml\ndata: nowhere/data.yaml\n")
    assert CliRunner().invoke(APP, ["validate-config", str(recipe_file)]).exit_code == 0
    result = CliRunner().invoke(APP, ["validate-config", "--check-data", str(recipe_file)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stdout.startswith(f"{recipe_file}:2:1: data: ") and "nowhere" in result.stdout
    assert result.stdout.count("\n") == 1


def test_load_recipe_reports_all_problems_at_once(tmp_path: Path) -> None:
    text = HEAD + "device: gpu\ntrain:\n  epochs: ten\nfeatures:\n  fitness: {metric: F1}\n"
    with pytest.raises(RecipeError) as info:
        load_recipe(_write(tmp_path / "r.yaml", text))
    assert len(info.value.problems) == 3
    lines = str(info.value).split("\n")
    assert [line.split(": ")[0] for line in lines] == [f"{tmp_path / 'r.yaml'}:{n}" for n in ("3:1", "5:3", "7:13")]
    assert [(p.line, p.col, p.field) for p in info.value.problems] == [  # in file order, each one structured
        (3, 1, "device"),
        (5, 3, "train.epochs"),
        (7, 13, "features.fitness.metric"),
    ]


# -- start-up weight ---------------------------------------------------------------------------------------------------

IMPORT_PROBE = """
import sys
from typer.testing import CliRunner
from yolocustom.cli import app

runner = CliRunner()
for args in (["--help"], ["validate-config", *sys.argv[1:]], ["validate-config", "--check-data", sys.argv[-1]]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and result.exception is None, (args, result.output, result.exception)
print(",".join(m for m in ("torch", "ultralytics", "cv2", "numpy", "polars", "matplotlib", "ray") if m in sys.modules))
"""


def test_cli_does_not_import_heavy_packages(tmp_path: Path) -> None:
    """`--help`, `validate-config` and `validate-config --check-data` run without torch/ultralytics/numpy/ray."""
    try:
        import yolocustom.cli  # noqa: F401
    except Exception as e:
        pytest.skip(f"yolocustom.cli does not import yet: {e}")
    dataset = _dataset(tmp_path / "ds")
    with_data = _write(
        tmp_path / "with_data.yaml",
        f"model: yolo26n.yaml\ndata: {dataset}\nfeatures:\n  class_weights: {{weights: {{dog: 2}}}}\n",
    )
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, *[str(p) for p in CONFIGS], str(with_data)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "", f"heavy modules imported at start-up: {proc.stdout.strip()}"


def test_yaml12_exponent_floats_are_numbers(tmp_path: Path) -> None:
    """YAML 1.1 would read ``1e-3`` as a string and fail the type check; recipes read it as 0.001."""
    path = tmp_path / "r.yaml"
    path.write_text("model: yolo26n.yaml\ndata: coco8.yaml\ntrain: {lr0: 1e-3, weight_decay: 5.0E-4, name: 1e3x}\n")
    recipe = load_recipe(path, ["train.lrf=2e-2"])
    assert recipe.train == {"lr0": 0.001, "weight_decay": 0.0005, "name": "1e3x", "lrf": 0.02}
