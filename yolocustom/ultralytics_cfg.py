"""Ultralytics' training-argument catalogue, read from the installed package's files without importing it.

``import ultralytics`` costs over a second (torch, cv2, polars); ``validate-config`` must answer in a fraction of that.
So the defaults come from ``ultralytics/cfg/default.yaml`` and the type sets (``CFG_FLOAT_KEYS`` ...) are read out of
``ultralytics/cfg/__init__.py`` with ``ast``, which keeps yolocustom in step with whichever 8.4.x is installed.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

_TYPE_SETS = ("CFG_FLOAT_KEYS", "CFG_FRACTION_KEYS", "CFG_INT_KEYS", "CFG_BOOL_KEYS", "CFG_STR_KEYS")


@dataclass(frozen=True)
class UltralyticsCfg:
    """Defaults and type rules of Ultralytics' ``train()`` arguments.

    Attributes:
        package_dir (Path): The installed ``ultralytics`` package folder.
        defaults (dict[str, Any]): ``cfg/default.yaml``.
        float_keys, fraction_keys, int_keys, bool_keys, str_keys (frozenset[str]): Ultralytics' type sets.
        int_min (dict[str, int]): Lower bounds for integer keys (``CFG_INT_MIN``).
    """

    package_dir: Path
    defaults: dict[str, Any]
    float_keys: frozenset[str]
    fraction_keys: frozenset[str]
    int_keys: frozenset[str]
    bool_keys: frozenset[str]
    str_keys: frozenset[str]
    int_min: dict[str, int]


def ultralytics_dir() -> Path:
    """Locate the installed ultralytics package without executing its ``__init__``."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("ultralytics is not installed; install yolocustom's dependencies (make install)")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def load_ultralytics_cfg() -> UltralyticsCfg:
    """Read and cache the argument catalogue of the installed Ultralytics."""
    pkg = ultralytics_dir()
    defaults = yaml.safe_load((pkg / "cfg" / "default.yaml").read_text(encoding="utf-8"))
    sets: dict[str, Any] = {}
    tree = ast.parse((pkg / "cfg" / "__init__.py").read_text(encoding="utf-8"))
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            if name in _TYPE_SETS and isinstance(stmt.value, ast.Call) and stmt.value.args:
                sets[name] = frozenset(ast.literal_eval(stmt.value.args[0]))
            elif name == "CFG_INT_MIN":
                sets[name] = ast.literal_eval(stmt.value)
    return UltralyticsCfg(
        package_dir=pkg,
        defaults=defaults,
        float_keys=sets.get("CFG_FLOAT_KEYS", frozenset()),
        fraction_keys=sets.get("CFG_FRACTION_KEYS", frozenset()),
        int_keys=sets.get("CFG_INT_KEYS", frozenset()),
        bool_keys=sets.get("CFG_BOOL_KEYS", frozenset()),
        str_keys=sets.get("CFG_STR_KEYS", frozenset()),
        int_min=sets.get("CFG_INT_MIN", {}),
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_train_value(key: str, value: Any) -> str | None:
    """Check one ``train`` value the way Ultralytics' ``check_cfg(hard=True)`` would, but without coercion.

    Booleans are not accepted as numbers (YAML's ``yes`` for ``epochs`` is a mistake worth reporting).

    Returns:
        (str | None): ``None`` when valid, else "expected ..., found ..." text.
    """
    cfg = load_ultralytics_cfg()
    found = f"found {value!r} ({type(value).__name__})"
    if value is None:
        typed = cfg.float_keys | cfg.fraction_keys | cfg.int_keys | cfg.bool_keys | cfg.str_keys
        if key == "amp" or (key in typed and cfg.defaults.get(key) is not None):
            return f"expected a value, found null ('{key}' must not be null; remove the key to use the default)"
        return None
    if key in cfg.float_keys and not _is_number(value):
        return f"expected a number, {found}"
    if key in cfg.fraction_keys:
        if key == "fraction" and isinstance(value, list):
            return (
                None
                if 2 <= len(value) <= 3 and all(_is_number(x) and x >= 0 for x in value)
                else (f"expected [train, val] or [train, val, test] counts/ratios, {found}")
            )
        if not _is_number(value):
            return f"expected a number between 0.0 and 1.0, {found}"
        if key == "fraction":
            return (
                None
                if 0.0 < value <= 1.0 or (isinstance(value, int) and value > 1)
                else (f"expected a ratio in (0, 1] or an image count > 1, {found}")
            )
        if not 0.0 <= value <= 1.0:
            return f"expected a number between 0.0 and 1.0, {found}"
    if key in cfg.int_keys:
        if not (isinstance(value, int) and not isinstance(value, bool)):
            return f"expected an integer, {found}"
        if key in cfg.int_min and value < cfg.int_min[key]:
            return f"expected an integer >= {cfg.int_min[key]}, {found}"
    if key in cfg.bool_keys and not isinstance(value, bool):
        return f"expected true or false, {found}"
    if key in cfg.str_keys and not isinstance(value, str):
        return f"expected a string, {found}"
    if key == "amp" and not (isinstance(value, bool) or str(value).lower() in {"fp16", "bf16", "fp32"}):
        return f"expected true, false, 'fp16', 'bf16' or 'fp32', {found}"
    if key == "imgsz" and not (
        (_is_number(value) and value > 0) or (isinstance(value, list) and all(_is_number(x) and x > 0 for x in value))
    ):
        return f"expected a positive integer (or [h, w]), {found}"
    return None
