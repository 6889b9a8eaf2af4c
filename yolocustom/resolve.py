"""Where a recipe's model and dataset come from: resolved, and downloaded when missing, the way Ultralytics does it.

* Models resolve as ``YOLO(...)`` resolves them: a model YAML is built by Ultralytics (nothing to fetch); a ``.pt`` is
  a local path, else a bare name in Ultralytics' ``weights_dir`` setting, else an official asset name
  (``yolo26n.pt``...) fetched by ``attempt_download_asset``; an ``http(s)://`` URL is fetched by ``check_file`` into
  ``weights_dir``. Once downloaded, the file is found locally and reused.
* Datasets resolve offline through :mod:`yolocustom.datasets` (same rules as ``check_det_dataset``); only when a split
  is missing and the YAML has ``download:`` does Ultralytics' ``check_det_dataset`` run, so preflight,
  ``compute-weights`` and the trainer read the same folder.

A download that cannot happen (no network, a host that does not answer, a 404) fails within seconds, with one
paragraph naming what was looked for, where, and the URL tried, instead of Ultralytics' retry ladder and traceback.
Importing this module is light (no torch/ultralytics): ``validate-config`` uses the offline parts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from yolocustom.datasets import resolve_dataset, ultralytics_root
from yolocustom.errors import DataError, UserError

if TYPE_CHECKING:
    from yolocustom.datasets import DatasetSpec
    from yolocustom.recipe import Recipe

MODEL_SUFFIXES = (".yaml", ".yml", ".pt")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".xz", ".bz2", ".txz", ".tbz2")
PROBE_TIMEOUT_S = 5.0


def is_url(value: str) -> bool:
    """Whether ``value`` is an ``http(s)://`` URL (any letter case, as Ultralytics checks)."""
    return value.lower().startswith(("http://", "https://"))


def _url_suffix(value: str) -> str:
    """The file suffix of a path or URL (query strings and fragments ignored), lower case."""
    return Path(unquote(urlparse(value).path) if is_url(value) else value).suffix.lower()


def is_pretrained(model: str) -> bool:
    """Whether ``model`` names trained weights (a ``.pt``) rather than an architecture YAML (random weights)."""
    return _url_suffix(model) == ".pt"


def weights_source(recipe: Recipe) -> str | None:
    """The checkpoint a new run's weights start from, chosen as Ultralytics' trainer chooses it, or None (random).

    ``train.pretrained`` given as a checkpoint (path, name or URL) wins: the model is built from its YAML (or the
    ``.pt``'s architecture) and every tensor whose name and shape match is loaded from it. ``pretrained: false``
    makes even a ``.pt`` model start random. Otherwise a ``.pt`` model starts from itself; a model YAML starts random
    (``pretrained: true``, the default, loads nothing into a YAML: there is no checkpoint to load).
    """
    pretrained = recipe.train.get("pretrained", True)
    if isinstance(pretrained, str):
        return pretrained
    if pretrained is False or not is_pretrained(recipe.model):
        return None
    return recipe.model


def finetune_warnings(recipe: Recipe) -> list[tuple[tuple[str, ...], str]]:
    """Warnings for fine-tuning features on a model whose weights start random, as ``(field path, message)`` pairs.

    ``freeze`` and ``layer_lr`` exist to protect pretrained backbone features. On a model YAML without a
    ``train.pretrained`` checkpoint the backbone is random: frozen, it never learns (16 epochs on the demo shapes set
    with freeze, layer_lr and class weights gave mAP50 0.000 at every epoch, plain training 0.964); slowed down, it
    learns late.
    """
    if weights_source(recipe) is not None:
        return []
    feats = recipe.features.enabled()
    pretrained = recipe.train.get("pretrained")
    if pretrained is not None:  # false on a .pt, or true on a YAML (which names no checkpoint to load)
        flag = str(pretrained).lower()
        why = f"model {recipe.model!r} with train.pretrained: {flag} loads no weights, so its backbone starts random"
    else:
        why = f"model {recipe.model!r} is built from a YAML, so its backbone starts random"
    fix = (
        "set model to a pretrained .pt such as yolo26n.pt (see configs/finetune.yaml), or train.pretrained to a .pt "
        "whose matching tensors are loaded into the YAML model, or drop"
    )
    out: list[tuple[tuple[str, ...], str]] = []
    if "freeze" in feats:
        out.append(
            (
                ("features", "freeze"),
                f"{why}: frozen, it stays random and the head learns from noise (demo shapes set: mAP50 0.000 over 16 "
                f"epochs, 0.964 without freeze). freeze is for fine-tuning: {fix} features.freeze",
            )
        )
    if "layer_lr" in feats:
        out.append(
            (
                ("features", "layer_lr"),
                f"{why}: a lower backbone LR slows the part with the most to learn. layer_lr is for fine-tuning: {fix} "
                "features.layer_lr",
            )
        )
    return out


# -- network ----------------------------------------------------------------------------------------------------------


def _offline_note() -> str:
    return " (YOLO_OFFLINE is set)" if os.getenv("YOLO_OFFLINE", "").lower() in {"1", "true", "yes", "on"} else ""


def probe(url: str) -> str | None:
    """Return why ``url``'s host cannot be reached within a few seconds, or None when it answers (or a proxy is set).

    A TCP connect to the host: an offline machine fails in milliseconds (no DNS), a black-holed route in
    ``PROBE_TIMEOUT_S``, instead of Ultralytics' 30 s connect timeout and 5/10/20 s retries. Behind a proxy the
    host is not reachable directly, so the download itself decides.
    """
    import urllib.request  # here, not at the top: validate-config imports this module and never probes

    parts = urlparse(url)
    host = parts.hostname or ""
    scheme = parts.scheme.lower()
    if scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host):
        return None
    try:
        port = parts.port or (443 if scheme == "https" else 80)
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return None
    except (OSError, ValueError) as e:
        return f"cannot reach {host}:{parts.port or (443 if scheme == 'https' else 80)} ({e})"


@contextlib.contextmanager
def ultralytics_output_to_stderr(level: int = logging.INFO) -> Iterator[None]:
    """Keep stdout for yolocustom's own output (a plan, JSON) while Ultralytics works: its log records below ``level``
    are dropped, the rest go to stderr, and anything else printed meanwhile (progress bars) goes to stderr too."""
    from ultralytics.utils import LOGGER

    previous = LOGGER.level
    streams = [(h, h.setStream(sys.stderr)) for h in LOGGER.handlers if isinstance(h, logging.StreamHandler)]
    LOGGER.setLevel(max(level, previous))
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        LOGGER.setLevel(previous)
        for handler, stream in streams:
            if stream is not None:
                handler.setStream(stream)


# -- models -----------------------------------------------------------------------------------------------------------


def check_model_reference(model: str) -> None:
    """Refuse, before any import, a model that is neither a model YAML nor a ``.pt`` (path, name or URL)."""
    if _url_suffix(model) not in MODEL_SUFFIXES:
        raise UserError(
            f"model: expected a model YAML (e.g. yolo26n.yaml), a .pt checkpoint (path, name such as yolo26n.pt, or "
            f"http(s) URL), found {model!r}"
        )


def resolve_pretrained(recipe: Recipe) -> str | None:
    """The local path of the recipe's ``train.pretrained`` checkpoint, found or downloaded as a ``.pt`` model is
    (``resolve_model``), so a missing file is a clear error before any compute; None when it names no checkpoint."""
    pretrained = recipe.train.get("pretrained")
    if not isinstance(pretrained, str):
        return None
    if not is_pretrained(pretrained):  # recipe validation refuses it too; a guard for recipes built in code
        raise UserError(f"train.pretrained: expected true, false or a .pt checkpoint, found {pretrained!r}")
    return resolve_model(pretrained, "train.pretrained")


def resolve_model(model: str, field: str = "model") -> str:
    """Return what to pass to ``YOLO()``: the model YAML as given, or the local ``.pt`` path, downloaded if needed.

    Args:
        model (str): The recipe's ``model`` (or another checkpoint reference, e.g. ``train.pretrained``).
        field (str): The recipe field ``model`` comes from, for messages.

    Returns:
        (str): A model YAML name/path, or an existing local ``.pt`` path.

    Raises:
        UserError: For a model that is not a YAML or a ``.pt``, a missing file that is no official asset, or a download
            that failed (one paragraph: the name, the places looked in, the URL tried, how to place the file by hand).
    """
    check_model_reference(model)
    if not is_pretrained(model):
        return model  # Ultralytics builds it from its YAML (bundled or local): nothing to fetch
    from ultralytics.utils import SETTINGS
    from ultralytics.utils.checks import check_file, check_yolov5u_filename
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES, attempt_download_asset, url2file

    weights_dir = Path(SETTINGS["weights_dir"])
    if is_url(model):
        target = weights_dir / url2file(model)
        if not target.is_file():
            _download(model, model, [target], lambda: check_file(model, download_dir=weights_dir), field)
        return str(target)

    name = check_yolov5u_filename(model.strip(), verbose=False)
    local, in_weights = Path(name), weights_dir / name
    for candidate in (local, in_weights):
        if candidate.is_file():
            return str(candidate)
    places = list(dict.fromkeys([local.absolute(), in_weights]))  # one place for an absolute path
    base = Path(name).name
    if base != name or name not in GITHUB_ASSETS_NAMES:
        why = (
            f"only the bare name '{field}: {base}' downloads the official asset"
            if base in GITHUB_ASSETS_NAMES
            else "it is not an official Ultralytics asset name either (such as yolo26n.pt or yolo11s.pt), so there "
            "is nothing to download"
        )
        raise UserError(
            f"{field}: checkpoint {model!r} not found: looked for {_places(places)}; {why}. Give the path of a local "
            f".pt or an http(s) URL, or {_scratch(field)}"
        )
    release = _asset_release()
    url = f"https://github.com/ultralytics/assets/releases/download/{release}/{name}"
    _download(model, url, places, lambda: attempt_download_asset(name, release=release), field)
    return str(local)


def _asset_release() -> str:
    """The asset release ``attempt_download_asset`` downloads from by default (its ``release`` argument)."""
    import inspect

    from ultralytics.utils.downloads import attempt_download_asset

    return str(inspect.signature(attempt_download_asset).parameters["release"].default)


def _reason(e: BaseException) -> str:
    """One line saying why a download failed, with the underlying error (Ultralytics wraps e.g. an HTTP 404 in a
    generic "Download failure ... may be offline" ConnectionError)."""
    text = " ".join(str(e).replace("❌", "").split()) or type(e).__name__
    cause = e.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {' '.join(str(cause).split())})"
    return text


def _scratch(field: str) -> str:
    """How to do without the checkpoint named by ``field``."""
    if field == "model":
        return "train from scratch with a model YAML such as yolo26n.yaml"
    return f"drop {field} to train from scratch"


def _places(places: list[Path]) -> str:
    return ", then ".join(f"'{p}'" for p in places)


def _download(model: str, url: str, places: list[Path], fetch: Any, field: str = "model") -> None:
    """Run ``fetch`` (Ultralytics' downloader, progress bar included) after a quick reachability probe; turn any
    failure into one paragraph."""
    reason = probe(url)
    if reason is None:
        try:
            with ultralytics_output_to_stderr():
                fetch()
        except Exception as e:  # ConnectionError, HTTP 4xx, disk full...: the message, not a traceback
            reason = _reason(e)
        else:
            if any(p.is_file() for p in places):
                return
            reason = "the download produced no file"
    where = "the working directory's copy, then Ultralytics' weights_dir" if len(places) > 1 else "weights_dir"
    raise UserError(
        f"{field}: cannot download {model!r} from {url}: {reason}{_offline_note()}. Looked first for {_places(places)} "
        f"({where}); not there. To place it by hand, download {url} where there is network and copy it to "
        f"'{places[-1]}' (or anywhere, then set '{field}:' to that path); or {_scratch(field)}"
    )


# -- datasets ---------------------------------------------------------------------------------------------------------


def dataset_download(spec: DatasetSpec) -> str | None:
    """The YAML's ``download:`` if it is one yolocustom lets Ultralytics run, else None (absent).

    Raises:
        DataError: For a ``download:`` that is code (a Python or bash script) in a YAML not bundled with Ultralytics:
            a recipe never makes yolocustom execute code; or an http(s) URL that is not an archive (Ultralytics would
            execute it as Python).
    """
    value = spec.raw.get("download")
    if not value:
        return None
    text = str(value).strip()
    if is_url(text):
        if not _url_suffix(text).endswith(ARCHIVE_SUFFIXES):
            raise DataError(
                f"{spec.source}: 'download: {text}' is not an archive URL (expected one of "
                f"{', '.join(ARCHIVE_SUFFIXES)}); download and extract it by hand into '{spec.root}'"
            )
        return text
    root = ultralytics_root()
    if spec.yaml_path is not None and root is not None and spec.yaml_path.is_relative_to(root.resolve()):
        return text  # the download script of a YAML shipped with Ultralytics: its own code, as its trainer runs it
    raise DataError(
        f"{spec.source}: 'download:' holds a script, and yolocustom runs download scripts only from the dataset YAMLs "
        f"bundled with Ultralytics, never from a user file; run it yourself, or use an http(s) archive URL, so that "
        f"'{spec.root}' holds the data"
    )


def dataset_status(data: str) -> tuple[DatasetSpec, str]:
    """Resolve a dataset offline and say how its data will be found, without downloading (``validate-config``).

    Returns:
        (tuple[DatasetSpec, str]): The spec and a note ("" when the data is on disk; else that the first train will
            download it, and from where).

    Raises:
        DataError: If the YAML is invalid, or data is missing with no usable ``download:``.
    """
    spec = resolve_dataset(data)
    missing = spec.missing_paths()
    if not missing:
        return spec, ""
    url = dataset_download(spec)
    if url is None:
        raise spec.missing_error(*missing[0])
    how = f"from {url}" if is_url(url) else "with the download script of Ultralytics' bundled YAML"
    return spec, (
        f"dataset {data!r} is not on disk yet (missing '{missing[0][1]}'); the first train (or compute-weights) will "
        f"download it {how} into Ultralytics' datasets_dir '{spec.datasets_dir}'"
    )


def ensure_dataset(data: str) -> DatasetSpec:
    """Resolve a dataset, downloading it through Ultralytics' ``check_det_dataset`` when its data is missing.

    When the data is already on disk nothing heavy is imported (``compute-weights`` stays fast). A failed download
    leaves ``datasets_dir`` as it was: whatever the attempt created there (archive, half-extracted folder) is removed.

    Args:
        data (str): The dataset YAML path or bundled name.

    Returns:
        (DatasetSpec): The resolved dataset, its train and val sources present.

    Raises:
        DataError: If the data is missing and cannot be downloaded (with the URL, the folder and the reason).
    """
    spec = resolve_dataset(data)
    missing = spec.missing_paths()
    if not missing:
        return spec
    url = dataset_download(spec)
    if url is None:
        raise spec.missing_error(*missing[0])
    if is_url(url) and (reason := probe(url)) is not None:
        raise DataError(
            f"{spec.source}: dataset not on disk (missing '{missing[0][1]}') and cannot be downloaded from {url}: "
            f"{reason}{_offline_note()}. To work offline, download that archive elsewhere and extract it into "
            f"Ultralytics' datasets_dir '{spec.datasets_dir}' so that '{missing[0][1]}' exists{spec.path_hint()}"
        )

    from ultralytics.data.utils import check_det_dataset
    from ultralytics.utils import DATASETS_DIR

    target = Path(DATASETS_DIR)
    if target.resolve() != spec.datasets_dir.resolve():  # both read the same settings.json; a guard, not a fallback
        raise DataError(
            f"{spec.source}: Ultralytics' datasets_dir '{target}' differs from the one yolocustom read "
            f"('{spec.datasets_dir}'); check YOLO_CONFIG_DIR and Ultralytics' settings.json"
        )
    existed, before = target.is_dir(), set(os.listdir(target)) if target.is_dir() else set()
    try:
        with ultralytics_output_to_stderr():  # progress on stderr: stdout may be compute-weights' JSON
            info = check_det_dataset(str(spec.yaml_path or data), autodownload=True)
    except Exception as e:  # BadZipFile, ConnectionError, script errors: one paragraph, not a traceback
        removed = _remove_new_entries(target, before, existed)
        reason = _reason(e)
        raise DataError(
            f"{spec.source}: downloading the dataset from {url} failed: {type(e).__name__}: {reason}. "
            f"Removed what the attempt left in '{target}': {_names(removed)}"
        ) from None
    except BaseException:  # Ctrl-C mid-download or mid-extraction: no half-extracted folder left behind either
        _remove_new_entries(target, before, existed)
        raise
    spec = resolve_dataset(data)
    still = spec.missing_paths()
    if still or Path(info["path"]).resolve() != spec.root:
        removed = _remove_new_entries(target, before, existed)
        problem = (
            f"'{still[0][1]}' is still missing (a corrupt archive, or one laid out differently from the YAML's "
            "path:/train:/val:)"
            if still
            else f"Ultralytics reads the data from '{info['path']}' but yolocustom from '{spec.root}'"
        )
        raise DataError(
            f"{spec.source}: after downloading {url} into '{target}', {problem}. Removed what the attempt left: "
            f"{_names(removed)}{spec.path_hint()}"
        )
    return spec


def _names(created: list[Path]) -> str:
    return ", ".join(f"'{p.name}'" for p in created) or "nothing"


def _remove_new_entries(folder: Path, before: set[str], existed: bool) -> list[Path]:
    """Delete the entries of ``folder`` that are not in ``before`` (and ``folder`` itself if it did not exist).

    Only names that appeared during the failed attempt are touched, so data already in ``datasets_dir`` is never
    removed. Returns what was removed, for the message.
    """
    if not folder.is_dir():
        return []
    created = sorted(folder / n for n in set(os.listdir(folder)) - before)
    for path in created:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    if not existed:
        with contextlib.suppress(OSError):
            folder.rmdir()
    return created
