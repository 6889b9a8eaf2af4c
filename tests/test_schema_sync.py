"""The committed JSON Schema matches the code, and the committed recipes point at it and validate."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from yolocustom.commands import schema, validate
from yolocustom.commands.schema import schema_text
from yolocustom.recipe import FITNESS_METRICS, Features, Recipe

REPO = Path(__file__).resolve().parents[1]
SCHEMA_FILE = REPO / "configs" / "recipe.schema.json"
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=recipe.schema.json"
REGENERATE = (
    ".venv/bin/python -c \"from yolocustom.commands.schema import schema_text; print(schema_text(), end='')\" "
    "> configs/recipe.schema.json"
)


def _app() -> typer.Typer:
    app = typer.Typer()
    validate.register(app)
    schema.register(app)
    return app


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.is_file(), f"configs/recipe.schema.json is missing; generate it with: {REGENERATE}"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), f"schema is stale; regenerate with: {REGENERATE}"


def test_schema_command_prints_it() -> None:
    result = CliRunner().invoke(_app(), ["schema"])
    assert result.exit_code == 0, result.output
    assert result.stdout == schema_text()
    assert json.loads(result.stdout)["title"] == "yolocustom recipe"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_schema_matches_the_models() -> None:
    doc = json.loads(schema_text())
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(doc["properties"]) == set(Recipe.model_fields)
    assert doc["required"] == ["model", "data"]
    assert doc["additionalProperties"] is False
    for ref in _refs(doc):
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in doc["$defs"], ref
    for name, definition in doc["$defs"].items():
        assert definition["additionalProperties"] is False, name  # extra keys forbidden everywhere
        for field, prop in definition["properties"].items():
            assert prop.get("description") or "$ref" in str(prop) or name == "Features", (name, field)
    features = doc["$defs"]["Features"]["properties"]
    assert set(features) == set(Features.model_fields)
    for block in features.values():  # `freeze: false`, `f1_logging:` (null) and `f1_logging: {...}` are all valid
        assert {"type": "null"} in block["anyOf"] and {"type": "boolean"} in block["anyOf"]
    metric = doc["$defs"]["FitnessFeature"]["properties"]["metric"]["anyOf"][0]
    assert tuple(metric["enum"]) == FITNESS_METRICS
    assert "required" not in doc["$defs"]["FreezeFeature"]  # 'epochs' or 'schedule': checked by the validator
    assert doc["properties"]["version"]["const"] == 1


def test_every_model_is_in_the_schema() -> None:
    doc = json.loads(schema_text())

    def models_in(annotation: Any) -> list[type[BaseModel]]:  # through unions and list[...]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [m for arg in getattr(annotation, "__args__", ()) for m in models_in(arg)]

    def nested(model: type[BaseModel]) -> set[str]:
        found = {model.__name__}
        for field in model.model_fields.values():
            for arg in models_in(field.annotation):
                found |= nested(arg)
        return found

    assert nested(Recipe) - {"Recipe"} == set(doc["$defs"])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_starts_with_schema_modeline(config: Path) -> None:
    first_line = config.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == MODELINE
    assert (config.parent / "recipe.schema.json").is_file()  # the modeline's path is relative to the recipe


def test_configs_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(CONFIGS) >= 2
    monkeypatch.chdir(REPO)
    args = ["validate-config", *[str(p.relative_to(REPO)) for p in CONFIGS]]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.stdout
    _assert_ok_with_only_finetune_warnings(result.stdout, [str(p.relative_to(REPO)) for p in CONFIGS])


def _assert_ok_with_only_finetune_warnings(stdout: str, configs: list[str]) -> None:
    """Every config is ok; the only warnings are the fine-tuning guard's (freeze/layer_lr on a model YAML), and
    configs/finetune.yaml (a pretrained .pt, not downloaded by validate-config) has none."""
    lines = stdout.splitlines()
    assert [line for line in lines if ": warning: " not in line] == [f"{c}: ok" for c in configs]
    warnings = [line for line in lines if ": warning: " in line]
    assert all(re.search(r"\.yaml:\d+:\d+: warning: features\.(freeze|layer_lr): model '", w) for w in warnings)
    assert not any(w.startswith("configs/finetune.yaml") for w in warnings)


def _real_cli_available() -> bool:
    try:
        import yolocustom.cli  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _real_cli_available(), reason="yolocustom.cli does not import (commands in progress)")
def test_real_cli_configs_and_schema() -> None:
    """`yolocustom validate-config configs/*.yaml` exits 0 and `yolocustom schema` prints the committed file."""
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
    configs = [str(p.relative_to(REPO)) for p in CONFIGS]
    proc = subprocess.run(
        [sys.executable, "-m", "yolocustom", "validate-config", *configs],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _assert_ok_with_only_finetune_warnings(proc.stdout, configs)
    assert proc.stderr == ""
    proc = subprocess.run(
        [sys.executable, "-m", "yolocustom", "schema"], capture_output=True, text=True, timeout=60, cwd=REPO, env=env
    )
    assert proc.returncode == 0 and proc.stdout == SCHEMA_FILE.read_text(encoding="utf-8")
