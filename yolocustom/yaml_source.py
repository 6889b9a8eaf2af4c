"""Strict, position-aware YAML reading for recipes.

PyYAML's ``safe_load`` is the only construction used (no Python tags, nothing executed), but on its own it is too
forgiving for a config format: it keeps the last of two duplicate keys silently, expands alias bombs into gigabytes
and forgets where each value came from. This module composes the node graph first, checks it, records the
``line:col`` of every key and item, and only then constructs plain Python data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1 << 20  # 1 MiB: a recipe is a page of text, anything larger is a mistake or an attack
MAX_EXPANDED_NODES = 100_000  # bound on nodes after alias expansion (billion-laughs guard)
MAX_DEPTH = 64

PathKey = tuple[str | int, ...]


class RecipeLoader(yaml.SafeLoader):
    """``SafeLoader`` that also reads YAML 1.2 floats such as ``1e-3`` (YAML 1.1 makes them strings: ``lr0: 1e-3``)."""


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass(frozen=True)
class Position:
    """A 1-based location in a source file."""

    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


class YamlSourceError(Exception):
    """A file cannot be read as a recipe document; ``position`` is set when the problem has a location."""

    def __init__(self, message: str, position: Position | None = None):
        super().__init__(message)
        self.message = message
        self.position = position


def _position(mark: Any) -> Position | None:
    return Position(mark.line + 1, mark.column + 1) if mark is not None else None


def read_text(path: Path) -> str:
    """Read a recipe file as UTF-8, refusing missing, oversized, binary and non-UTF-8 files with clear reasons."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise YamlSourceError("file not found") from None
    except OSError as e:
        raise YamlSourceError(f"cannot read file: {e.strerror}") from None
    if path.is_dir():
        raise YamlSourceError("is a directory, expected a recipe YAML file")
    if size > MAX_FILE_BYTES:
        raise YamlSourceError(f"file is {size:,} bytes, larger than the {MAX_FILE_BYTES:,}-byte limit for a recipe")
    try:  # bounded read: stat() says 0 bytes for /dev/zero, FIFOs and the like
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise YamlSourceError(f"cannot read file: {e.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise YamlSourceError(f"file is larger than the {MAX_FILE_BYTES:,}-byte limit for a recipe")
    if b"\x00" in raw:
        raise YamlSourceError("file contains NUL bytes: it is binary, not a YAML recipe")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise YamlSourceError(f"file is not valid UTF-8 (byte 0x{raw[e.start]:02x} at line {line})") from None
    return text


def parse_document(text: str) -> tuple[Any, dict[PathKey, Position]]:
    """Parse one YAML document safely and return its data with a map from field path to source position.

    Args:
        text (str): The YAML text.

    Returns:
        (tuple): ``(data, positions)``; ``positions[("features", "freeze", "epochs")]`` is where that key appears.

    Raises:
        YamlSourceError: For empty documents, syntax errors, several documents, duplicate keys, unsafe tags, alias
            bombs, recursive aliases and excessive nesting.
    """
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise YamlSourceError("file is empty (only whitespace or comments): expected a mapping with at least 'model'")
    try:
        _check_depth(text)  # PyYAML's composer recurses (and its scanner slows down) on deep nesting: refuse it first
        loader = RecipeLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.composer.ComposerError as e:
        if "expected a single document" in str(e.context):
            raise YamlSourceError(
                "file holds several YAML documents ('---'); a recipe is one document", _position(e.problem_mark)
            ) from None
        raise YamlSourceError(str(e.problem), _position(e.problem_mark)) from None
    except yaml.MarkedYAMLError as e:
        hint = "; indent with spaces, YAML does not allow tabs there" if "'\\t'" in str(e.problem) else ""
        raise YamlSourceError(f"YAML syntax error: {e.problem}{hint}", _position(e.problem_mark)) from None
    except yaml.reader.ReaderError as e:  # control characters: not a MarkedYAMLError, so it needs its own branch
        before = text[: e.position]
        where = Position(before.count("\n") + 1, e.position - before.rfind("\n"))
        raise YamlSourceError(
            f"unacceptable character #x{e.character:04x} ({e.reason}): the file looks binary, not a YAML recipe", where
        ) from None
    except RecursionError:
        raise YamlSourceError(f"nesting is deeper than the {MAX_DEPTH}-level limit") from None
    if node is None:
        raise YamlSourceError("file is empty: expected a mapping with at least 'model'")
    positions: dict[PathKey, Position] = {(): _position(node.start_mark)}  # type: ignore[dict-item]
    _check(node, (), positions, {}, set())
    try:
        data = RecipeLoader("").construct_document(node)
    except yaml.constructor.ConstructorError as e:
        raise YamlSourceError(f"unsupported value: {e.problem}", _position(e.problem_mark)) from None
    return data, positions


# MAX_DEPTH + 1 flow collections opened in a row on one line ('[[[[...'): PyYAML's scanner keeps a possible simple key
# per open bracket and re-checks them all for every token, so refusing 10,000 of them from the event stream alone takes
# about a second. The text up to the first such run holds the same events up to there, and is short: checked first.
_FLOW_RUN = re.compile(rf"[\[{{](?:[ \t]*[\[{{]){{{MAX_DEPTH}}}")


def _check_depth(text: str) -> None:
    """Refuse documents nested deeper than ``MAX_DEPTH`` from the (iterative) event stream, before composing."""
    run = _FLOW_RUN.search(text)
    if run is not None:
        try:
            _event_depth(text[: run.end()])
        except YamlSourceError:
            raise
        except yaml.YAMLError:
            pass  # e.g. the run sits inside a quoted string cut short here: the whole text decides
    _event_depth(text)


def _event_depth(text: str) -> None:
    loader = RecipeLoader(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlSourceError(
                        f"nesting is deeper than the {MAX_DEPTH}-level limit", _position(event.start_mark)
                    )
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def _scalar_key(node: yaml.Node) -> Any:
    """Construct a mapping key the way SafeLoader would (``0`` is int, ``"0"`` is str)."""
    return RecipeLoader("").construct_object(node, deep=True)


def _check(
    node: yaml.Node,
    path: PathKey,
    positions: dict[PathKey, Position],
    sizes: dict[int, int],
    active: set[int],
) -> int:
    """Walk the node graph: record positions, reject duplicates/bad tags/bombs; return the expanded node count."""
    if id(node) in sizes:  # an alias to an already-measured anchor: reuse its size, don't re-walk it
        return sizes[id(node)]
    if id(node) in active:
        raise YamlSourceError("recursive alias: an anchor refers to itself", _position(node.start_mark))
    if len(path) > MAX_DEPTH:
        raise YamlSourceError(f"nesting is deeper than the {MAX_DEPTH}-level limit", _position(node.start_mark))
    if node.tag.startswith("tag:yaml.org,2002:python/") or not node.tag.startswith("tag:yaml.org,2002:"):
        raise YamlSourceError(
            f"tag '{node.tag}' is not allowed: recipes hold plain data only", _position(node.start_mark)
        )
    active.add(id(node))
    total = 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlSourceError("merge keys ('<<') are not supported in recipes", _position(key_node.start_mark))
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlSourceError("mapping keys must be plain scalars", _position(key_node.start_mark))
            key = _scalar_key(key_node)
            if key in seen:
                first = _position(seen[key].start_mark)
                raise YamlSourceError(
                    f"duplicate key '{key}' (first defined at line {first.line if first else '?'}); "
                    "YAML would silently keep only the last one",
                    _position(key_node.start_mark),
                )
            seen[key] = key_node
            child = (*path, key)
            positions[child] = _position(key_node.start_mark)  # type: ignore[assignment]
            total += 1 + _check(value_node, child, positions, sizes, active)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, i)
            positions[child] = _position(item.start_mark)  # type: ignore[assignment]
            total += _check(item, child, positions, sizes, active)
    active.discard(id(node))
    if total > MAX_EXPANDED_NODES:
        raise YamlSourceError(
            f"aliases expand to more than {MAX_EXPANDED_NODES:,} nodes (an alias bomb?); refusing to expand",
            _position(node.start_mark),
        )
    sizes[id(node)] = total
    return total


def parse_scalar(text: str) -> Any:
    """Parse a ``--set`` value with the same safe rules as a recipe value (``5`` -> int, ``[0, 1]`` -> list)."""
    if not text.strip():
        return None
    data, _ = parse_document(f"v: {text}") if "\n" not in text else (None, {})
    if not isinstance(data, dict):
        raise YamlSourceError(f"cannot parse value {text!r}")
    return data["v"]
