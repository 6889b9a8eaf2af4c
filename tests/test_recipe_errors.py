"""Malformed recipes: every one is refused precisely, as ``path:line:col: field.path: expected ..., found ...``.

Each case runs through ``validate-config`` in-process (Typer's CliRunner: exit code 1, one line per problem, each in
the ``path:line:col:`` form editors jump to, no traceback); the
hostile files are also timed and memory-checked through ``load_recipe``, and a handful go through the real console
entry in a subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from conftest import median_seconds
from typer.testing import CliRunner

from yolocustom import cli
from yolocustom.errors import RecipeError
from yolocustom.recipe import load_recipe

HEAD = "model: yolo26n.yaml\ndata: coco8.yaml\n"  # lines 1-2 of most cases, so `train:`/`features:` sit on line 3

ALIAS_BOMB = textwrap.dedent(
    """\
    model: yolo26n.yaml
    data: coco8.yaml
    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
    """
)
DEEP_FLOW = "[" * 10_000 + "]" * 10_000 + "\n"
DEEP_BLOCK = "- " * 10_000 + "x\n"
BIG_FILE = HEAD + ("# padding padding padding padding padding padding padding padding padding padding\n" * 26_000)
BINARY_NUL = bytes(range(256)) * 64
NOT_UTF8 = b"model: yolo26n.yaml\ndata: caf\xe9.yaml\n"  # Latin-1 e-acute on line 2
CONTROL_CHARS = HEAD + "device: cpu\x07\n"


def y(text: str) -> str:
    """Dedent a case's YAML (written indented in the table for readability)."""
    return textwrap.dedent(text).lstrip("\n")


def case(
    case_id: str,
    text: str | bytes,
    *fragments: str,
    where: str | None,
    path: str | None = None,
    sets: tuple[str, ...] = (),
) -> Any:
    """One malformed recipe.

    Args:
        text: the file's content.
        fragments: substrings of the expected/found part of the message.
        where: ``line:col`` of the offending node, ``--set ...`` for override errors, or None for whole-file problems.
        path: the dotted field path the message names (None for YAML-level problems).
        sets: ``--set`` overrides.
    """
    return pytest.param(text, sets, where, path, fragments, id=case_id)


CASES = [
    # -- reading and YAML ---------------------------------------------------------------------------------------------
    case("empty-file", "", "file is empty", where=None),
    case("only-comments", "# nothing here yet\n\n   \n", "file is empty", "only whitespace or comments", where=None),
    case("null-top-level", "null\n", "expected a mapping at the top level", "found null", where="1:1"),
    case("list-top-level", "# a list\n- model: a\n- data: b\n", "expected a mapping", "found a list", where="2:1"),
    case("scalar-top-level", "yolo26n.yaml\n", "expected a mapping", "found a string", where="1:1"),
    case(
        "yaml-unclosed-bracket",
        "model: yolo26n.yaml\ndata: [coco8.yaml\ntrain: {}\n",
        "YAML syntax error",
        "expected ',' or ']'",
        where="3:6",
    ),
    case(
        "yaml-bad-indent",
        HEAD + "train:\n  epochs: 3\n imgsz: 64\n",
        "YAML syntax error",
        "expected <block end>",
        where="5:2",
    ),
    case("tab-indent", HEAD + "train:\n\tepochs: 3\n", "found character '\\t'", "not allow tabs", where="4:1"),
    case(
        "multiple-documents",
        HEAD + "---\nmodel: yolo26s.yaml\n",
        "several YAML documents",
        "a recipe is one document",
        where="3:1",
    ),
    case(
        "duplicate-top-level-key",
        HEAD + "model: yolo26s.yaml\n",
        "duplicate key 'model'",
        "first defined at line 1",
        where="3:1",
    ),
    case(
        "duplicate-nested-key",
        HEAD + "train:\n  epochs: 3\n  imgsz: 64\n  epochs: 5\n",
        "duplicate key 'epochs'",
        "first defined at line 4",
        where="6:3",
    ),
    case(
        "python-object-tag",
        "model: !!python/object/apply:os.system ['echo pwned']\ndata: coco8.yaml\n",
        "tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed",
        where="1:8",
    ),
    case("custom-tag", HEAD + "train: !include train.yaml\n", "tag '!include' is not allowed", where="3:8"),
    case(
        "merge-key",
        HEAD + "base: &base {epochs: 3}\ntrain:\n  <<: *base\n",
        "merge keys ('<<') are not supported",
        where="5:3",
    ),
    case("recursive-alias", HEAD + "loop: &loop [*loop]\n", "recursive alias", where="3:7"),
    case("alias-bomb", ALIAS_BOMB, "aliases expand to more than 100,000 nodes", "alias bomb", where="7:4"),
    case("deep-flow-nesting", DEEP_FLOW, "nesting is deeper than the 64-level limit", where="1:65"),
    case("deep-block-nesting", DEEP_BLOCK, "nesting is deeper than the 64-level limit", where="1:129"),
    case("file-over-1mib", BIG_FILE, "larger than the 1,048,576-byte limit", where=None),
    case("binary-nul-bytes", BINARY_NUL, "NUL bytes", "binary", where=None),
    case("not-utf8", NOT_UTF8, "not valid UTF-8", "byte 0xe9 at line 2", where=None),
    case("control-characters", CONTROL_CHARS, "unacceptable character #x0007", where="3:12"),
    # -- top level ----------------------------------------------------------------------------------------------------
    case("version-2", "version: 2\n" + HEAD, "expected 1, found 2", where="1:1", path="version"),
    case("version-true", "version: true\n" + HEAD, "expected 1, found True", where="1:1", path="version"),
    case("missing-model", "data: coco8.yaml\n", "required key 'model' is missing", where="1:1", path="model"),
    case(
        "unknown-top-level-key",
        HEAD + "modle: yolo26s.yaml\n",
        "unknown key 'modle'",
        "did you mean 'model'?",
        where="3:1",
        path="modle",
    ),
    case(
        "model-not-a-string",
        "model: 5\ndata: coco8.yaml\n",
        "expected a valid string",
        "found 5",
        where="1:1",
        path="model",
    ),
    case("model-empty", "model: ''\ndata: coco8.yaml\n", "at least 1 character", "found ''", where="1:1", path="model"),
    case("device-typo", HEAD + "device: atuo\n", "found 'atuo'", "did you mean 'auto'?", where="3:1", path="device"),
    case("device-negative", HEAD + "device: -1\n", "expected a GPU index >= 0, found -1", where="3:1", path="device"),
    case("device-bool", HEAD + "device: true\n", "a list of indices, found True", where="3:1", path="device"),
    case("device-float", HEAD + "device: 0.5\n", "found 0.5", where="3:1", path="device"),
    case("device-cuda-prefix", HEAD + "device: cuda:0\n", "'0,1', found 'cuda:0'", where="3:1", path="device"),
    case(
        "device-list-duplicates",
        HEAD + "device: [0, 0]\n",
        "distinct GPU indices, found [0, 0]",
        where="3:1",
        path="device",
    ),
    case("device-list-negative", HEAD + "device: [0, -1]\n", "integers >= 0, found -1", where="3:1", path="device"),
    # -- train --------------------------------------------------------------------------------------------------------
    case("train-not-a-mapping", HEAD + "train: [epochs, 5]\n", "expected a mapping", where="3:1", path="train"),
    case(
        "epochs-string",
        HEAD + "train:\n  epochs: ten\n",
        "expected an integer, found 'ten' (str)",
        where="4:3",
        path="train.epochs",
    ),
    case(
        "epochs-float",
        HEAD + "train:\n  epochs: 5.5\n",
        "expected an integer, found 5.5 (float)",
        where="4:3",
        path="train.epochs",
    ),
    case(
        "epochs-negative",
        HEAD + "train:\n  epochs: -3\n",
        "expected an integer >= 1, found -3",
        where="4:3",
        path="train.epochs",
    ),
    case("epochs-null", HEAD + "train:\n  epochs:\n", "expected a value, found null", where="4:3", path="train.epochs"),
    case(
        "lr0-bool",
        HEAD + "train:\n  lr0: true\n",
        "expected a number between 0.0 and 1.0, found True (bool)",
        where="4:3",
        path="train.lr0",
    ),
    case(
        "fraction-key-out-of-range",
        HEAD + "train:\n  epochs: 5\n  hsv_s: 1.5\n",
        "expected a number between 0.0 and 1.0, found 1.5",
        where="5:3",
        path="train.hsv_s",
    ),
    case(
        "dataset-fraction-negative",
        HEAD + "train:\n  fraction: -0.5\n",
        "expected a ratio in (0, 1]",
        "found -0.5",
        where="4:3",
        path="train.fraction",
    ),
    case(
        "batch-string",
        HEAD + "train:\n  batch: big\n",
        "expected a number, found 'big' (str)",
        where="4:3",
        path="train.batch",
    ),
    case(
        "imgsz-negative",
        HEAD + "train:\n  imgsz: -64\n",
        "expected a positive integer",
        "found -64",
        where="4:3",
        path="train.imgsz",
    ),
    case(
        "amp-bad-string", HEAD + "train:\n  amp: fp8\n", "'bf16' or 'fp32', found 'fp8'", where="4:3", path="train.amp"
    ),
    case(
        "task-segment",
        HEAD + "train:\n  task: segment\n",
        "'task' is owned by yolocustom",
        "set the top-level 'task' key instead",
        where="4:3",
        path="train.task",
    ),
    case(
        "train-unknown-key",
        HEAD + "train:\n  epoch: 3\n",
        "unknown Ultralytics train argument 'epoch'",
        "did you mean 'epochs'?",
        where="4:3",
        path="train.epoch",
    ),
    case(
        "train-non-string-key",
        HEAD + "train:\n  1: 2\n",
        "expected a valid string, found 1",
        where="4:3",
        path="train.1",
    ),
    case(
        "owned-model",
        HEAD + "train:\n  model: yolo26s.pt\n",
        "'model' is owned by yolocustom",
        "set the top-level 'model' key instead",
        where="4:3",
        path="train.model",
    ),
    case(
        "owned-data",
        HEAD + "train:\n  data: coco128.yaml\n",
        "'data' is owned by yolocustom",
        "top-level 'data' key",
        where="4:3",
        path="train.data",
    ),
    case(
        "owned-device",
        HEAD + "train:\n  device: cpu\n",
        "'device' is owned by yolocustom",
        "top-level 'device' key",
        where="4:3",
        path="train.device",
    ),
    case(
        "owned-trainer",
        HEAD + "train:\n  trainer: x\n",
        "'trainer' is owned by yolocustom",
        "builds the trainer from 'features'",
        where="4:3",
        path="train.trainer",
    ),
    case(
        "owned-resume",
        HEAD + "train:\n  resume: true\n",
        "'resume' is owned by yolocustom",
        "yolocustom train --resume",
        where="4:3",
        path="train.resume",
    ),
    case(
        "owned-mode",
        HEAD + "train:\n  mode: val\n",
        "'mode' is owned by yolocustom",
        "always trains",
        where="4:3",
        path="train.mode",
    ),
    case(
        "owned-cfg",
        HEAD + "train:\n  cfg: other.yaml\n",
        "'cfg' is owned by yolocustom",
        "put the arguments in 'train' directly",
        where="4:3",
        path="train.cfg",
    ),
    case(
        "train-freeze-with-freeze-feature",
        HEAD + "train:\n  epochs: 10\n  freeze: 10\nfeatures:\n  freeze: {epochs: 2}\n",
        "conflicts with features.freeze",
        where="5:3",
        path="train.freeze",
    ),
    case(
        "cls-pw-with-class-weights",
        HEAD + "train:\n  cls_pw: 0.5\nfeatures:\n  class_weights: {auto: inverse}\n",
        "both set model.class_weights",
        "remove cls_pw",
        where="4:3",
        path="train.cls_pw",
    ),
    case(
        "two-problems-at-once",
        HEAD + "train:\n  epochs: ten\n  lr0: 2\n",
        "train.epochs: expected an integer, found 'ten'",
        ":5:3: train.lr0: expected a number between 0.0 and 1.0, found 2",  # the second problem, on its own line
        where="4:3",
        path="train.epochs",
    ),
    # -- features -----------------------------------------------------------------------------------------------------
    case(
        "features-not-a-mapping",
        HEAD + "features: [f1_logging]\n",
        "expected a mapping",
        "found ['f1_logging']",
        where="3:1",
        path="features",
    ),
    case(
        "unknown-feature",
        HEAD + "features:\n  f1_loging: {}\n",
        "unknown key 'f1_loging'",
        "did you mean 'f1_logging'?",
        where="4:3",
        path="features.f1_loging",
    ),
    case(
        "unknown-key-in-feature",
        HEAD + "features:\n  f1_logging:\n    perclass: true\n",
        "unknown key 'perclass'",
        "did you mean 'per_class'?",
        where="5:5",
        path="features.f1_logging.perclass",
    ),
    case(
        "feature-block-string",
        HEAD + "features:\n  f1_logging: please\n",
        "expected a mapping",
        "found 'please'",
        where="4:3",
        path="features.f1_logging",
    ),
    case(
        "per-class-quoted-yes",
        HEAD + "features:\n  f1_logging:\n    per_class: 'yes'\n",
        "expected a valid boolean, found 'yes'",
        where="5:5",
        path="features.f1_logging.per_class",
    ),
    case(
        "enabled-not-bool",
        HEAD + "features:\n  fitness:\n    enabled: 0\n    metric: f1\n",
        "expected a valid boolean, found 0",
        where="5:5",
        path="features.fitness.enabled",
    ),
    case(
        "class-weights-both-sources",
        HEAD + "features:\n  class_weights:\n    auto: inverse\n    weights: {0: 2.0}\n",
        "expected exactly one of 'weights'",
        "found both",
        where="4:3",
        path="features.class_weights",
    ),
    case(
        "class-weights-no-source",
        HEAD + "features:\n  class_weights:\n    normalize: mean\n",
        "expected exactly one of 'weights'",
        "found neither",
        where="4:3",
        path="features.class_weights",
    ),
    case(
        "class-weights-beta-without-effective-number",
        HEAD + "features:\n  class_weights:\n    auto: inverse\n    beta: 0.99\n",
        "'beta' only applies to auto: effective_number, found auto: inverse",
        where="4:3",
        path="features.class_weights",
    ),
    case(
        "class-weights-beta-one",
        HEAD + "features:\n  class_weights:\n    auto: effective_number\n    beta: 1.0\n",
        "expected a value less than 1, found 1.0",
        where="6:5",
        path="features.class_weights.beta",
    ),
    case(
        "class-weights-beta-zero",
        HEAD + "features:\n  class_weights:\n    auto: effective_number\n    beta: 0\n",
        "expected a value greater than 0, found 0",
        where="6:5",
        path="features.class_weights.beta",
    ),
    case(
        "class-weights-normalize-typo",
        HEAD + "features:\n  class_weights:\n    auto: inverse\n    normalize: meen\n",
        "expected 'mean' or 'none', found 'meen'",
        "did you mean 'mean'?",
        where="6:5",
        path="features.class_weights.normalize",
    ),
    case(
        "class-weights-max-weight-zero",
        HEAD + "features:\n  class_weights:\n    auto: inverse\n    max_weight: 0\n",
        "expected a value greater than 0, found 0",
        where="6:5",
        path="features.class_weights.max_weight",
    ),
    case(
        "class-weights-auto-typo",
        HEAD + "features:\n  class_weights:\n    auto: sqrt_invers\n",
        "found 'sqrt_invers'",
        "did you mean 'sqrt_inverse'?",
        where="5:5",
        path="features.class_weights.auto",
    ),
    case(
        "class-weights-negative-weight",
        HEAD + "features:\n  class_weights:\n    weights:\n      dog: -1\n",
        "expected a value greater than 0, found -1",
        where="6:7",
        path="features.class_weights.weights.dog",
    ),
    case(
        "class-weights-bool-weight",
        HEAD + "features:\n  class_weights:\n    weights:\n      dog: yes\n",
        "expected a valid number, found True",
        where="6:7",
        path="features.class_weights.weights.dog",
    ),
    case(
        "class-weights-negative-class-id",
        HEAD + "features:\n  class_weights:\n    weights: {-1: 2.0}\n",
        "expected class ids >= 0, found -1",
        where="5:5",
        path="features.class_weights.weights",
    ),
    case(
        "class-weights-empty-mapping",
        HEAD + "features:\n  class_weights:\n    weights: {}\n",
        "expected at least one 'class: weight' entry, found {}",
        where="5:5",
        path="features.class_weights.weights",
    ),
    case(
        "fitness-both",
        HEAD + "features:\n  fitness:\n    metric: f1\n    weights: {f1: 1}\n",
        "expected exactly one of 'metric' or 'weights', found both",
        where="4:3",
        path="features.fitness",
    ),
    case(
        "fitness-neither",
        HEAD + "features:\n  fitness: {}\n",
        "expected exactly one of 'metric' or 'weights', found neither",
        where="4:3",
        path="features.fitness",
    ),
    case(
        "fitness-metric-case",
        HEAD + "features:\n  fitness:\n    metric: map50\n",
        "found 'map50'",
        "did you mean 'mAP50'?",
        where="5:5",
        path="features.fitness.metric",
    ),
    case(
        "fitness-weights-unknown-metric",
        HEAD + "features:\n  fitness:\n    weights:\n      f1: 0.5\n      mAP5: 0.5\n",
        "found 'mAP5'",
        "did you mean 'mAP50'?",
        where="7:7",
        path="features.fitness.weights.mAP5",
    ),
    case(
        "fitness-weights-negative",
        HEAD + "features:\n  fitness:\n    weights:\n      f1: -1\n",
        "expected a value greater than or equal to 0, found -1",
        where="6:7",
        path="features.fitness.weights.f1",
    ),
    case(
        "fitness-weights-sum-zero",
        HEAD + "features:\n  fitness:\n    weights: {f1: 0, mAP50: 0}\n",
        "expected weights with a positive sum",
        where="4:3",
        path="features.fitness",
    ),
    case(
        "freeze-layers-typo",
        HEAD + "features:\n  freeze:\n    layers: backbon\n    epochs: 2\n",
        "found 'backbon'",
        "did you mean 'backbone'?",
        where="5:5",
        path="features.freeze.layers",
    ),
    case(
        "freeze-layers-zero",
        HEAD + "features:\n  freeze:\n    layers: 0\n    epochs: 2\n",
        "expected N >= 1",
        "found 0",
        where="5:5",
        path="features.freeze.layers",
    ),
    case(
        "freeze-layers-empty-list",
        HEAD + "features:\n  freeze:\n    layers: []\n    epochs: 2\n",
        "expected a non-empty list of layer indices, found []",
        where="5:5",
        path="features.freeze.layers",
    ),
    case(
        "freeze-layers-duplicates",
        HEAD + "features:\n  freeze:\n    layers: [0, 1, 1]\n    epochs: 2\n",
        "expected unique layer indices",
        "[0, 1, 1]",
        where="5:5",
        path="features.freeze.layers",
    ),
    case(
        "freeze-layers-negative-index",
        HEAD + "features:\n  freeze:\n    layers: [0, -2]\n    epochs: 2\n",
        "expected layer indices as integers >= 0, found -2",
        where="5:5",
        path="features.freeze.layers",
    ),
    case(
        "freeze-layers-bool",
        HEAD + "features:\n  freeze:\n    layers: true\n    epochs: 2\n",
        "found True",
        where="5:5",
        path="features.freeze.layers",
    ),
    case(
        "freeze-epochs-zero",
        HEAD + "features:\n  freeze:\n    epochs: 0\n",
        "expected a value greater than or equal to 1, found 0",
        where="5:5",
        path="features.freeze.epochs",
    ),
    case(
        "freeze-epochs-bool",
        HEAD + "features:\n  freeze:\n    epochs: yes\n",
        "expected a valid integer, found True",
        where="5:5",
        path="features.freeze.epochs",
    ),
    case(
        "freeze-epochs-quoted",
        HEAD + "features:\n  freeze:\n    epochs: '2'\n",
        "expected a valid integer, found '2'",
        where="5:5",
        path="features.freeze.epochs",
    ),
    case(
        "freeze-epochs-missing",
        HEAD + "features:\n  freeze:\n    layers: 10\n",
        "required key 'epochs' is missing",
        where="4:3",
        path="features.freeze.epochs",
    ),
    case(
        "freeze-epochs-not-below-train-epochs",
        HEAD + "train:\n  epochs: 5\nfeatures:\n  freeze:\n    epochs: 5\n",
        "expected fewer than train.epochs (5), found 5",
        "never reaches, so they would stay frozen",
        where="7:5",
        path="features.freeze.epochs",
    ),
    case(
        "freeze-epochs-not-below-default-epochs",
        HEAD + "features:\n  freeze:\n    epochs: 150\n",
        "expected fewer than train.epochs (100), found 150",
        where="5:5",
        path="features.freeze.epochs",
    ),
    case(
        "layer-lr-ratio-zero",
        HEAD + "features:\n  layer_lr:\n    backbone_ratio: 0\n",
        "expected a value greater than 0, found 0",
        where="5:5",
        path="features.layer_lr.backbone_ratio",
    ),
    case(
        "layer-lr-ratio-string",
        HEAD + "features:\n  layer_lr:\n    backbone_ratio: '0.1'\n",
        "expected a valid number, found '0.1'",
        where="5:5",
        path="features.layer_lr.backbone_ratio",
    ),
    case(
        "layer-lr-ratio-missing",
        HEAD + "features:\n  layer_lr: {backbone_layers: 10}\n",
        "required key 'backbone_ratio' is missing",
        where="4:3",
        path="features.layer_lr.backbone_ratio",
    ),
    case(
        "layer-lr-layers-head",
        HEAD + "features:\n  layer_lr:\n    backbone_ratio: 0.1\n    backbone_layers: head\n",
        "expected 'backbone', an int N or a list of indices, found 'head'",
        where="6:5",
        path="features.layer_lr.backbone_layers",
    ),
    # -- --set overrides ----------------------------------------------------------------------------------------------
    case("set-without-equals", HEAD, "expected dotted.key=value", where="--set 'train.epochs'", sets=("train.epochs",)),
    case(
        "set-empty-segment",
        HEAD,
        "expected dotted.key=value",
        where="--set 'train..epochs=5'",
        sets=("train..epochs=5",),
    ),
    case("set-bad-yaml-value", HEAD, "YAML syntax error", where="--set train.epochs=[1,", sets=("train.epochs=[1,",)),
    case(
        "set-python-tag",
        HEAD,
        "is not allowed",
        where="--set train.name=!!python/name:os.system",
        sets=("train.name=!!python/name:os.system",),
    ),
    case(
        "set-into-a-scalar",
        HEAD,
        "'model' is not a mapping, so 'model.x' cannot be set",
        where="--set model.x=5",
        sets=("model.x=5",),
    ),
    case(
        "set-invalid-value",
        HEAD,
        "expected an integer >= 1, found -1",
        where="--set train.epochs=-1",
        path="train.epochs",
        sets=("train.epochs=-1",),
    ),
    case(
        "set-wrong-type",
        HEAD + "train:\n  lr0: 0.01\n",
        "expected a number between 0.0 and 1.0, found 'fast'",
        where="--set train.lr0=fast",
        path="train.lr0",
        sets=("train.lr0=fast",),
    ),
    case(
        "set-unknown-train-key",
        HEAD,
        "did you mean 'epochs'?",
        where="--set train.epoch=5",
        path="train.epoch",
        sets=("train.epoch=5",),
    ),
    case(
        "set-unknown-feature",
        HEAD,
        "did you mean 'f1_logging'?",
        where="--set features.f1_loging=true",
        path="features.f1_loging",
        sets=("features.f1_loging=true",),
    ),
    case(
        "set-freeze-beyond-epochs",
        HEAD + "train:\n  epochs: 3\n",
        "expected fewer than train.epochs (3), found 5",
        where="--set features.freeze.epochs=5",
        path="features.freeze.epochs",
        sets=("train.epochs=3", "features.freeze.epochs=5"),
    ),
]

HOSTILE: dict[str, str | bytes] = {
    "alias-bomb": ALIAS_BOMB,
    "deep-flow-nesting": DEEP_FLOW,
    "deep-block-nesting": DEEP_BLOCK,
    "python-object-tag": "model: !!python/object/apply:os.system ['echo pwned']\ndata: coco8.yaml\n",
    "file-over-1mib": BIG_FILE,
    "binary-nul-bytes": BINARY_NUL,
    "not-utf8": NOT_UTF8,
    "control-characters": CONTROL_CHARS,
}


APP = cli.app  # the real CLI, as the console script runs it


def _write(folder: Path, text: str | bytes, name: str = "recipe.yaml") -> Path:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _prefix(recipe: Path, where: str | None, path: str | None) -> str:
    """The exact start of a diagnostic: ``path:line:col: field: `` (no space after the path, as ruff/mypy/gcc print),
    ``path: --set k=v: field: `` for an override, ``path: `` for a whole-file problem."""
    if where is None:
        location = f"{recipe}: "
    elif where.startswith("--set "):
        location = f"{recipe}: {where}: "
    else:
        assert re.fullmatch(r"\d+:\d+", where), where
        location = f"{recipe}:{where}: "
    return location + (f"{path}: " if path is not None else "")


def _assert_precise(
    message: str, recipe: Path, where: str | None, path: str | None, fragments: tuple[str, ...]
) -> None:
    """The message starts with the file, the location and the field, and says what was expected/found; every further
    line (one per extra problem) is in the same ``path:`` form."""
    lines = message.split("\n")
    assert lines[0].startswith(_prefix(recipe, where, path)), message
    assert all(line.startswith(f"{recipe}:") for line in lines), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def _validate_args(recipe: Path, sets: tuple[str, ...]) -> list[str]:
    """``validate-config RECIPE --set ...`` arguments for one case."""
    return ["validate-config", str(recipe), *(arg for item in sets for arg in ("--set", item))]


def test_enough_cases() -> None:
    assert len(CASES) >= 45
    assert len({p.id for p in CASES}) == len(CASES)


@pytest.mark.parametrize(("text", "sets", "where", "path", "fragments"), CASES)
def test_malformed_recipe_cli(
    tmp_path: Path,
    text: str | bytes,
    sets: tuple[str, ...],
    where: str | None,
    path: str | None,
    fragments: tuple[str, ...],
) -> None:
    recipe = _write(tmp_path, text)
    args = _validate_args(recipe, sets)
    result = CliRunner().invoke(APP, args)
    output = result.stdout + result.stderr
    assert result.exit_code == 1, output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # a crash would also give exit code 1
    assert "Traceback" not in output
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe, list(sets))
    lines = result.stdout.splitlines()
    assert len(lines) == len(info.value.problems), f"expected one line per problem, got {lines}"  # no blank lines
    _assert_precise(result.stdout.rstrip("\n"), recipe, where, path, fragments)
    assert not result.stdout.endswith("ok\n")


@pytest.mark.parametrize(("text", "sets", "where", "path", "fragments"), CASES)
def test_malformed_recipe_load(
    tmp_path: Path,
    text: str | bytes,
    sets: tuple[str, ...],
    where: str | None,
    path: str | None,
    fragments: tuple[str, ...],
) -> None:
    recipe = _write(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe, list(sets))
    err = info.value
    assert err.source == str(recipe)
    assert err.problems and all("\n" not in p.format(err.source) for p in err.problems)
    _assert_precise(str(err), recipe, where, path, fragments)


# Refusing a hostile file may cost this many minimal recipes through the same path, measured in the same test (deep
# flow nesting, the slowest, costs ~3300 loads and ~50 CLI runs: PyYAML's scanner looks ahead over every open bracket);
# an alias bomb expanded or a file read whole would cost millions. Relative, so a loaded machine slows both sides.
HOSTILE_LOADS, HOSTILE_CLI_RUNS, HOSTILE_SLACK_S = 10_000, 300, 0.25


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_fast_and_bounded(tmp_path: Path, name: str) -> None:
    minimal = _write(tmp_path, HEAD, "minimal.yaml")
    recipe = _write(tmp_path, HOSTILE[name])
    base = median_seconds(lambda: load_recipe(minimal), 20)
    start = time.perf_counter()
    with pytest.raises(RecipeError):
        load_recipe(recipe)
    elapsed = time.perf_counter() - start
    assert elapsed <= HOSTILE_LOADS * base + HOSTILE_SLACK_S, f"{name}: {elapsed:.2f}s to refuse, minimal {base:.5f}s"

    base = median_seconds(lambda: CliRunner().invoke(APP, ["validate-config", str(minimal)]), 5)
    start = time.perf_counter()
    result = CliRunner().invoke(APP, ["validate-config", str(recipe)])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 1 and "Traceback" not in result.stdout + result.stderr
    assert elapsed <= HOSTILE_CLI_RUNS * base + HOSTILE_SLACK_S, (
        f"{name}: {elapsed:.2f}s via the CLI, minimal {base:.4f}s"
    )

    tracemalloc.start()
    try:
        with pytest.raises(RecipeError):
            load_recipe(recipe)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{name} peaked at {peak / 2**20:.1f} MiB"


def test_unreadable_paths(tmp_path: Path) -> None:
    result = CliRunner().invoke(APP, ["validate-config", str(tmp_path / "missing.yaml"), str(tmp_path)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines == [
        f"{tmp_path / 'missing.yaml'}: file not found",
        f"{tmp_path}: is a directory, expected a recipe YAML file",
    ]


@pytest.mark.skipif(not Path("/dev/zero").exists() or sys.platform == "win32", reason="needs /dev/zero and rlimits")
def test_endless_device_file_refused(tmp_path: Path) -> None:
    """stat() says /dev/zero is 0 bytes; reading it whole would never end. Run capped, so a regression can't eat RAM."""
    code = (
        "import resource, sys, time\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))\n"
        "from yolocustom.recipe import load_recipe\n"
        "from yolocustom.errors import RecipeError\n"
        "def once():\n"
        "    start = time.perf_counter()\n"
        "    load_recipe(sys.argv[1])\n"
        "    return time.perf_counter() - start\n"
        "base = sorted(once() for _ in range(20))[10]  # a minimal recipe: the baseline\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    load_recipe('/dev/zero')\n"
        "except RecipeError as e:\n"
        "    print(f'{time.perf_counter() - start:.6f} {base:.6f}', e)\n"
    )
    minimal = _write(tmp_path, HEAD, "minimal.yaml")
    proc = subprocess.run([sys.executable, "-c", code, str(minimal)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    elapsed, base, message = proc.stdout.split(" ", 2)
    assert float(elapsed) <= HOSTILE_LOADS * float(base) + HOSTILE_SLACK_S  # bounded, relative to a minimal recipe
    assert message.startswith("/dev/zero: ") and ("NUL bytes" in message or "larger than" in message)


def test_newline_in_key_stays_one_paragraph(tmp_path: Path) -> None:
    recipe = _write(tmp_path, HEAD + '"bad\\n\\nkey": 1\n')
    result = CliRunner().invoke(APP, ["validate-config", str(recipe)])
    assert result.exit_code == 1
    assert result.stdout.count("\n") == 1 and "3:1: bad\\n\\nkey: unknown key" in result.stdout


# -- the real console entry --------------------------------------------------------------------------------------------


def _real_cli_available() -> bool:
    try:
        import yolocustom.cli  # noqa: F401
    except Exception:
        return False
    return True


real_cli = pytest.mark.skipif(not _real_cli_available(), reason="yolocustom.cli does not import (commands in progress)")


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
    return subprocess.run(
        [sys.executable, "-m", "yolocustom", *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )


SUBPROCESS_CASES = [
    "empty-file",
    "alias-bomb",
    "deep-flow-nesting",
    "python-object-tag",
    "binary-nul-bytes",
    "freeze-epochs-not-below-train-epochs",
    "set-freeze-beyond-epochs",
]


@real_cli
def test_malformed_recipe_real_cli(tmp_path: Path) -> None:
    """Each case through the console entry point, in a fresh interpreter: exit 1, one precise line on stdout, nothing
    on stderr. Its time is bounded relative to ``validate-config`` of a valid two-line recipe run first (interpreter
    start included in both; the refusal itself is timed in-process above)."""
    minimal = _write(tmp_path, HEAD, "minimal.yaml")
    start = time.perf_counter()
    proc = _run("validate-config", str(minimal))
    base = time.perf_counter() - start
    assert proc.returncode == 0 and proc.stdout == f"{minimal}: ok\n", proc.stdout + proc.stderr
    cases = [p for p in CASES if p.id in SUBPROCESS_CASES]
    assert len(cases) == len(SUBPROCESS_CASES)
    for case in cases:
        text, sets, where, path, fragments = case.values
        (tmp_path / str(case.id)).mkdir()
        recipe = _write(tmp_path / str(case.id), text)  # type: ignore[arg-type]
        start = time.perf_counter()
        proc = _run(*_validate_args(recipe, sets))  # type: ignore[arg-type]
        elapsed = time.perf_counter() - start
        assert proc.returncode == 1, (case.id, proc.stdout + proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr, case.id
        assert proc.stderr == "", case.id
        lines = proc.stdout.splitlines()
        assert len(lines) == 1, (case.id, lines)
        _assert_precise(lines[0], recipe, where, path, fragments)  # type: ignore[arg-type]
        assert elapsed <= 3 * base + 1.0, f"{case.id}: {elapsed:.2f}s, a valid recipe {base:.2f}s"


@real_cli
def test_real_cli_several_files_one_line_each(tmp_path: Path) -> None:
    good = _write(tmp_path, HEAD + "train:\n  epochs: 3\n", "good.yaml")
    bad = _write(tmp_path, HEAD + "train:\n  epochs: ten\n", "bad.yaml")
    bomb = _write(tmp_path, ALIAS_BOMB, "bomb.yaml")
    proc = _run("validate-config", str(good), str(bad), str(bomb))
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{good}: ok"
    assert lines[1] == f"{bad}:4:3: train.epochs: expected an integer, found 'ten' (str)"
    assert re.match(rf"{re.escape(str(bomb))}:\d+:\d+: aliases expand to more than", lines[2])
    assert len(lines) == 3
