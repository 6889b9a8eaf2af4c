"""The search-space file of ``yolocustom tune``: dotted recipe paths mapped to Ray Tune domains, checked like a recipe.

A space file reads::

    features.class_weights.auto: {choice: [inverse, sqrt_inverse, effective_number]}
    features.freeze.epochs: {randint: [1, 6]}        # Ray's convention: the upper bound is excluded
    train.lr0: {loguniform: [1.0e-4, 1.0e-2]}

Validation runs in three passes, each reported with ``file:line:col`` and the field path:

1. structure: every key names a recipe field (walked through the pydantic models and Ultralytics' ``train`` catalogue,
   with "did you mean"), every value is one known domain with well-formed bounds, and the domain's type fits the
   field (no float range on an integer field, no range on a ``Literal``);
2. values: every listed value and every range bound is checked by the field's own validator;
3. combinations: every grid point, each with a seeded sample of the random domains (Ray's own sampling, plus each
   domain's extremes), is validated as a complete recipe, so a forbidden combination (``features.freeze.epochs`` >=
   ``train.epochs``) is reported before a trial starts.

Passes 1 and 2 need no Ray; pass 3 and :meth:`Space.ray_space` import it.
"""

from __future__ import annotations

import copy
import itertools
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from yolocustom.errors import Problem, RecipeError
from yolocustom.recipe import (
    OWNED_TRAIN_KEYS,
    Features,
    Recipe,
    _format_pydantic_error,
    set_override,
    suggest,
    validate_recipe,
)
from yolocustom.ultralytics_cfg import check_train_value, load_ultralytics_cfg
from yolocustom.yaml_source import PathKey, Position, YamlSourceError, parse_document, read_text

# domain name -> what its arguments look like (for messages)
DOMAINS = {
    "choice": "a non-empty list of values",
    "grid": "a non-empty list of values (every one is run)",
    "uniform": "[low, high]",
    "loguniform": "[low, high] with 0 < low",
    "randint": "[low, high] integers, high excluded",
    "quniform": "[low, high, q] with q > 0",
}
FLOAT_DOMAINS = ("uniform", "loguniform", "quniform")
# Per-trial placement is owned by the sweep; sweeping these would put trials on top of each other.
TUNE_OWNED_TRAIN_KEYS = {"project", "name", "exist_ok"}
MAX_COMBINATIONS = 4000  # bound on full-recipe validations in pass 3 (each is ~0.1 ms)


@dataclass(frozen=True)
class Param:
    """One swept recipe value.

    Attributes:
        path (str): Dotted recipe path, e.g. ``features.freeze.epochs``.
        domain (str): One of :data:`DOMAINS`.
        args (list): The domain's arguments as written.
        position (Position | None): Where the key is in the space file.
        arg_positions (tuple): Position of each argument.
    """

    path: str
    domain: str
    args: list[Any]
    position: Position | None
    arg_positions: tuple[Position | None, ...]

    @property
    def keys(self) -> PathKey:
        """The path as a recipe field path tuple."""
        return tuple(self.path.split("."))

    def edge_values(self) -> list[tuple[Any, Position | None]]:
        """Every value a choice/grid can take, or the values at the ends of a range, with their positions."""
        if self.domain in ("choice", "grid"):
            return list(zip(self.args, self.arg_positions))
        low, high = self.args[0], self.args[1]
        if self.domain == "randint":
            high -= 1  # Ray's randint excludes the upper bound
        elif self.domain == "quniform":  # Ray rounds each sample to a multiple of q
            q = self.args[2]
            low, high = round(low / q) * q, round(high / q) * q
        return [(low, self.arg_positions[0]), (high, self.arg_positions[1])]

    def ray_domain(self) -> Any:
        """The Ray Tune domain object (imports ``ray.tune``)."""
        from ray import tune

        if self.domain == "grid":
            return tune.grid_search(list(self.args))
        if self.domain == "choice":
            return tune.choice(list(self.args))
        return getattr(tune, self.domain)(*self.args)


@dataclass(frozen=True)
class Space:
    """A validated-structure search space read from ``source``."""

    source: str
    params: tuple[Param, ...]

    def ray_space(self) -> dict[str, Any]:
        """``param_space`` for ``ray.tune.Tuner``: flat, keyed by dotted recipe path."""
        return {p.path: p.ray_domain() for p in self.params}

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of the grid domains (one empty point when there are none)."""
        grids = [p for p in self.params if p.domain == "grid"]
        return [dict(zip((p.path for p in grids), values)) for values in itertools.product(*(p.args for p in grids))]

    def trial_count(self, samples: int) -> int:
        """Trials Ray Tune will run for ``num_samples=samples``: each sample runs the whole grid."""
        return samples * len(self.grid_points())

    def to_data(self) -> dict[str, Any]:
        """The space as plain data (as written in the file), for the sweep record."""
        return {p.path: {p.domain: list(p.args)} for p in self.params}


def apply_config(base: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Recipe data ``base`` with each dotted path in ``config`` set (the same setter as ``--set``); base unchanged."""
    data = copy.deepcopy(base)
    for path, value in config.items():
        set_override(data, path, _plain(value))
    return data


def _plain(value: Any) -> Any:
    """NumPy scalars from Ray's samplers as Python values (recipes are validated strictly)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, list | dict | str) else value


# -- pass 1: structure ---------------------------------------------------------------------------------------------


def _kinds(annotation: Any) -> tuple[set[str], list[Any]]:
    """The kinds of value a field annotation accepts (int, float, bool, str, literal, list, mapping, any)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kinds(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        kinds: set[str] = set()
        options: list[Any] = []
        for member in typing.get_args(annotation):
            k, o = _kinds(member)
            kinds |= k
            options += o
        return kinds, options
    if origin is typing.Literal:
        return {"literal"}, list(typing.get_args(annotation))
    if annotation is type(None):
        return set(), []
    for kind in (bool, int, float, str):
        if annotation is kind:
            return {kind.__name__}, []
    if origin is list or annotation is list:
        return {"list"}, []
    if origin is dict or annotation is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return {"mapping"}, []
    return {"any"}, []


def _train_kinds(key: str) -> set[str]:
    cfg = load_ultralytics_cfg()
    if key in cfg.int_keys:
        return {"int"}
    if key in cfg.float_keys or key in cfg.fraction_keys:
        return {"float", "int"}
    if key in cfg.bool_keys:
        return {"bool"} | ({"str"} if key == "amp" else set())
    if key in cfg.str_keys:
        return {"str"}
    default = cfg.defaults.get(key)
    if default is None:
        return {"any"}
    kind = type(default).__name__
    return {kind, "list"} if key == "imgsz" else {kind}


def field_kinds(keys: PathKey) -> tuple[set[str], list[Any]]:
    """Resolve a dotted recipe path to the kinds of value it accepts.

    Raises:
        ValueError: The path names no recipe field; the message says where it went wrong, with "did you mean".
    """
    model: type[BaseModel] = Recipe
    for depth, key in enumerate(keys):
        here = ".".join(map(str, keys[: depth + 1]))
        if depth == 1 and keys[0] == "train":
            cfg = load_ultralytics_cfg()
            if key in OWNED_TRAIN_KEYS:
                raise ValueError(f"'{here}' is owned by yolocustom: {OWNED_TRAIN_KEYS[str(key)]}")
            if key in TUNE_OWNED_TRAIN_KEYS:
                raise ValueError(f"'{here}' is set per trial by yolocustom tune (runs/tune/<name>/trials/<trial>)")
            if key not in cfg.defaults:
                raise ValueError(f"unknown Ultralytics train argument '{key}'{suggest(str(key), list(cfg.defaults))}")
            if len(keys) > 2:
                raise ValueError(f"'{here}' is a single value, so '{'.'.join(map(str, keys))}' does not exist")
            return _train_kinds(str(key)), []
        fields = model.model_fields
        if key not in fields:
            parent = ".".join(map(str, keys[:depth])) or "the recipe"
            options = list(fields)
            raise ValueError(
                f"unknown key '{key}' in {parent}{suggest(str(key), options)} (expected one of: {', '.join(options)})"
            )
        annotation = fields[str(key)].annotation
        kinds, options = _kinds(annotation)
        if depth == len(keys) - 1:
            return kinds, options
        members = typing.get_args(annotation) or (annotation,)
        nested = [c for c in members if isinstance(c, type) and typing.get_origin(c) is None]
        models = [c for c in nested if issubclass(c, BaseModel)]
        if models:
            model = models[0]
            continue
        if key == "train" or "mapping" in kinds:
            if key == "train":
                continue
            if depth == len(keys) - 2:  # one key into a mapping field (class_weights.weights.dog)
                return {"any"}, []
        raise ValueError(f"'{here}' is a single value, so '{'.'.join(map(str, keys))}' does not exist")
    return {"mapping"}, []


def _domain_fits(domain: str, kinds: set[str], options: list[Any]) -> str | None:
    """Why ``domain`` cannot produce values of the field's kinds, or None when it can."""
    if "any" in kinds or domain in ("choice", "grid"):
        return None
    if domain in FLOAT_DOMAINS and "float" not in kinds:
        if "int" in kinds:
            return (
                f"expected an integer domain (randint, or choice/grid of integers) for this integer field, "
                f"found {domain}, which samples floats"
            )
        if "literal" in kinds:
            return f"expected choice or grid over {', '.join(map(repr, options))}, found {domain} (numbers)"
        return f"expected choice or grid for this field ({' or '.join(sorted(kinds))}), found {domain} (numbers)"
    if domain == "randint" and not kinds & {"int", "float"}:
        if "literal" in kinds:
            return f"expected choice or grid over {', '.join(map(repr, options))}, found randint (integers)"
        return f"expected choice or grid for this field ({' or '.join(sorted(kinds))}), found randint (integers)"
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_args(domain: str, args: Any) -> str | None:
    """Why a domain's arguments are malformed, or None."""
    expected = f"expected {domain}: {DOMAINS[domain]}"
    if not isinstance(args, list) or not args:
        return f"{expected}, found {args!r}"
    if domain in ("choice", "grid"):
        return None
    size = 3 if domain == "quniform" else 2
    if len(args) != size or not all(_is_number(a) for a in args):
        return f"{expected}, found {args!r}"
    if domain == "randint" and not all(isinstance(a, int) for a in args):
        return f"{expected}, found {args!r}"
    low, high = args[0], args[1]
    if low >= high:
        return f"{expected}, found low {low!r} >= high {high!r}"
    if domain == "loguniform" and low <= 0:
        return f"{expected}, found low {low!r}: a log scale needs positive bounds"
    if domain == "quniform" and args[2] <= 0:
        return f"{expected}, found q {args[2]!r}"
    return None


def load_space(path: str | Path) -> Space:
    """Read a space file and check its structure (pass 1).

    Raises:
        RecipeError: Every problem found, each with ``line:col`` and the swept path.
    """
    path = Path(path)
    source = str(path)
    try:
        data, positions = parse_document(read_text(path))
    except YamlSourceError as e:
        raise RecipeError(source, [Problem.at(e.position, "", e.message)]) from None
    if not isinstance(data, dict) or not data:
        raise RecipeError(
            source,
            [
                Problem.at(
                    positions.get(()),
                    "",
                    "expected a mapping of dotted recipe paths to domains, e.g. "
                    f"'train.lr0: {{loguniform: [1.0e-4, 1.0e-2]}}', found {data!r}",
                )
            ],
        )
    problems: list[Problem] = []
    params: list[Param] = []
    for key, spec in data.items():
        pos = positions.get((key,))
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            problems.append(Problem.at(pos, "", f"expected a dotted recipe path such as train.lr0, found {key!r}"))
            continue
        if not isinstance(spec, dict) or len(spec) != 1:
            problems.append(
                Problem.at(
                    pos,
                    key,
                    f"expected one domain, e.g. {{choice: [a, b]}} or {{loguniform: [1.0e-4, 0.1]}}, found {spec!r}; "
                    "a fixed value belongs in the recipe",
                )
            )
            continue
        domain, args = next(iter(spec.items()))
        dpos = positions.get((key, domain))
        if domain not in DOMAINS:
            problems.append(
                Problem.at(
                    dpos,
                    key,
                    f"unknown domain '{domain}'{suggest(str(domain), list(DOMAINS))} "
                    f"(expected one of: {', '.join(DOMAINS)})",
                )
            )
            continue
        if (message := _check_args(domain, args)) is not None:
            problems.append(Problem.at(dpos, key, message))
            continue
        try:
            kinds, options = field_kinds(tuple(key.split(".")))
        except ValueError as e:
            problems.append(Problem.at(pos, key, str(e)))
            continue
        if (message := _domain_fits(domain, kinds, options)) is not None:
            problems.append(Problem.at(dpos, key, message))
            continue
        arg_positions = tuple(positions.get((key, domain, i), dpos) for i in range(len(args)))
        params.append(Param(key, domain, list(args), pos, arg_positions))
    for a, b in itertools.permutations(params, 2):
        if b.path.startswith(a.path + "."):
            problems.append(Problem.at(b.position, b.path, f"overlaps '{a.path}', which is swept as a whole"))
    if problems:
        raise RecipeError(source, problems)
    return Space(source, tuple(params))


# -- pass 2: values ------------------------------------------------------------------------------------------------


def _value_problem(param: Param, value: Any, base: dict[str, Any]) -> str | None:
    """Check one value with the swept field's own validator, apart from cross-field rules (pass 3 does those)."""
    keys = param.keys
    if keys[0] == "train":
        return check_train_value(str(keys[1]), value)
    if keys[0] == "features":
        block_name = str(keys[1])
        block_model = _block_model(block_name)
        block = (base.get("features") or {}).get(block_name) if isinstance(base.get("features"), dict) else None
        if len(keys) == 2:
            candidate: Any = value
        else:
            candidate = copy.deepcopy(block) if isinstance(block, dict) else {}
            set_override(candidate, ".".join(map(str, keys[2:])), value)
        try:
            block_model.model_validate(candidate)
        except ValidationError as e:
            loc, message = _format_pydantic_error(dict(e.errors(include_url=False)[0]))
            return message
        return None
    try:
        validate_recipe(apply_config(base, {param.path: value}))
    except RecipeError as e:
        mine = [p for p in e.problems if p.field.split(".")[0] == keys[0]]
        return mine[0].message if mine else None
    return None


def _ignored_by_auto_optimizer(space: Space, base: dict[str, Any]) -> list[Problem]:
    """Ultralytics' ``optimizer: auto`` picks its own lr0 and momentum, so sweeping them would compare equal runs."""
    swept = {p.path: p for p in space.params}
    optimizer = swept.get("train.optimizer")
    if optimizer is not None:
        values = [v for v, _ in optimizer.edge_values()]
    else:
        values = [(base.get("train") or {}).get("optimizer", load_ultralytics_cfg().defaults.get("optimizer"))]
    if "auto" not in values:
        return []
    return [
        Problem.at(
            swept[path].position,
            path,
            "swept, but train.optimizer 'auto' picks its own learning rate and momentum and ignores "
            f"'{path.split('.')[1]}'; set train.optimizer in the recipe (e.g. SGD or AdamW)",
        )
        for path in ("train.lr0", "train.momentum")
        if path in swept
    ]


def _block_model(name: str) -> type[BaseModel]:
    annotation = Features.model_fields[name].annotation
    return next(c for c in typing.get_args(annotation) if isinstance(c, type) and issubclass(c, BaseModel))


# -- pass 3: combinations ------------------------------------------------------------------------------------------


def combinations(space: Space, samples: int, seed: int = 0) -> list[dict[str, Any]]:
    """Configurations to validate: each grid point with ``samples`` seeded random draws of the other domains (Ray's
    own samplers), plus each random domain at each of its extremes."""
    import numpy as np

    randoms = [p for p in space.params if p.domain != "grid"]
    domains = {p.path: p.ray_domain() for p in randoms}
    rng = np.random.default_rng(seed)

    def draw() -> dict[str, Any]:
        return {path: _plain(d.sample(random_state=rng)) for path, d in domains.items()}

    points = space.grid_points()
    per_point = max(1, min(samples, MAX_COMBINATIONS // max(1, len(points))))
    configs = []
    for point in points:
        for _ in range(per_point if randoms else 1):
            configs.append({**point, **draw()})
        for p in randoms:
            for value, _ in p.edge_values():
                configs.append({**point, **draw(), p.path: value})
    return configs


def check_space(space: Space, base: dict[str, Any], samples: int, seed: int = 0) -> int:
    """Passes 2 and 3: every value and range bound, then every grid point with random draws, as complete recipes.

    Args:
        space (Space): From :func:`load_space`.
        base (dict): The recipe's data (as parsed, model/data resolved).
        samples (int): Random draws per grid point (at least the sweep's sample count).
        seed (int): Seed of the draws.

    Returns:
        (int): How many complete recipes were validated.

    Raises:
        RecipeError: Against the space file, with the position of the offending value or of the swept key.
    """
    problems = _ignored_by_auto_optimizer(space, base)
    for param in space.params:
        for value, pos in param.edge_values():
            if (message := _value_problem(param, value, base)) is not None:
                problems.append(Problem.at(pos, param.path, f"value {value!r}: {message}"))
    if problems:
        raise RecipeError(space.source, problems)
    configs = combinations(space, samples, seed)
    by_path = {p.path: p for p in space.params}
    for config in configs:
        try:
            validate_recipe(apply_config(base, config))
        except RecipeError as e:
            combo = ", ".join(f"{k}={v!r}" for k, v in config.items())
            for problem in e.problems:  # validated without positions: the swept key's place stands in
                field, message = problem.field, problem.message
                culprit = next(
                    (p for path, p in by_path.items() if field == path or field.startswith(path + ".")),
                    space.params[0],
                )
                problems.append(Problem.at(culprit.position, field, f"forbidden combination ({combo}): {message}"))
            raise RecipeError(space.source, problems) from None
    return len(configs)
