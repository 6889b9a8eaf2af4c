"""Count instances per class over YOLO label files, exactly as Ultralytics' ``YOLODataset`` would load them.

Only the label text files are read; images are never decoded. The per-file rules are those of Ultralytics 8.4's
``ultralytics.data.utils.verify_image_label``. They are the same for detect, segment and obb (``use_keypoints`` is
False; a polygon row becomes its box, a 9-value obb row is a 4-point polygon); for pose (``task="pose"``) every row
must hold ``5 + nkpt * ndim`` values and there is no polygon handling. For a box task:

* an image without a label file, or with an empty one, is a *background* (kept, no instances);
* rows are whitespace-split lines of the UTF-8 file (a byte-order mark, CRLF endings and blank lines are fine);
* with a ``kpt_shape`` in the dataset YAML, pose rows (``5 + nkpt * ndim`` values) keep their first 5 values;
* a file with any row of more than 6 values is in segment format: each row is one instance (its polygon becomes a box);
* a file is *rejected* as corrupt (its image is dropped from training) when a row has the wrong number of values,
  a value is not a number, a class id is negative, fractional or ``>= nc``, or a coordinate is beyond the 1 % tolerance
  (``> 1.01`` or ``< -0.01``, and no negative width/height);
* duplicate rows (equal as float32) are dropped.

The fast path reads a chunk of files, finds the line structure of all ASCII files at once with NumPy, converts every
value with one NumPy call (the same string-to-float32 conversion Ultralytics uses) and checks them vectorised. Any file
it cannot vouch for is re-checked by :func:`verify_label_file`, a line-by-line port of Ultralytics' code, which is
authoritative and also supplies the rejection reason in Ultralytics' words. Polygon rows (segment, obb) and keypoint
rows (pose) get the same treatment in :func:`_count_rows`: one conversion per chunk, each polygon reduced to its box
with Ultralytics' float32 arithmetic, then the same vectorised checks; files with a repeated class and box go to the
exact checker, which compares their polygons as Ultralytics does.

When a valid Ultralytics label cache (``labels/<split>.cache``) exists for the same files, its labels are used instead
(same version and hash checks as ``YOLODataset.get_labels``). Cache files are NumPy pickles, loaded exactly as
Ultralytics loads them, so the same trust applies.

Segment and obb datasets must give a polygon for every instance: Ultralytics refuses the whole dataset otherwise
(``YOLODataset.verify_labels``), so the scan also records which kept files hold plain box rows
(:attr:`LabelCounts.box_files`); :func:`check_task_labels` turns that, a pose dataset without ``kpt_shape`` and keypoint
rows of the wrong width into one clear error before any model is built.

Known divergence from Ultralytics when scanning (not when a valid cache is used): images are not opened, so an image
that exists but is corrupt (a zero-byte file included), not an image, or smaller than 10 pixels is counted here while
Ultralytics would drop it. A listed image that does not exist, or is a folder, is rejected as Ultralytics rejects it.

Large scans run in a process pool ('forkserver', else 'spawn'; never 'fork', as the caller may be a trainer with live
threads). Those workers import the caller's ``__main__`` module, so automatic parallelism is only used when that is
harmless (see ``_main_is_reimport_safe``); otherwise, or if the pool breaks, the scan runs in-process.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolocustom.datasets import img2label_paths, ultralytics_root
from yolocustom.tasks import TASKS, article

if TYPE_CHECKING:
    import numpy as np

    from yolocustom.datasets import DatasetSpec

CHUNK_SIZE = 2000
"""Label files per unit of work (one NumPy conversion, one progress step)."""
SCAN_SECONDS_PER_FILE = 12e-6
"""Rough in-process scan cost per label file (measured on a 2-core VM), for the automatic worker choice."""
POOL_STARTUP_SECONDS = 0.5
"""Rough cost of starting a worker pool from a fresh process; automatic parallelism must save more than this."""
_READ_SIZE = 1 << 16
BOX_FILES_KEPT = 5
"""Box-format label files named in :class:`LabelCounts` (the count is exact; names are for messages)."""


@dataclass
class LabelCounts:
    """Per-class instance counts of one split, as ``YOLODataset(...).labels`` would hold them.

    Attributes:
        counts (list[int]): Instances per class id, ``len == nc``, after dropping rejected files and duplicate rows.
        images (int): Images kept (including backgrounds): ``len(YOLODataset(...).labels)``.
        backgrounds (int): Kept images with no instance (no label file, or an empty one).
        instances (int): ``sum(counts)``.
        rejected (list[tuple[str, str]]): ``(label file, reason)`` for every image Ultralytics would drop as corrupt.
        label_files (int): Label files found for kept images.
        duplicates (int): Duplicate rows dropped.
        source (str): ``"scan"`` or ``"cache"`` (a valid Ultralytics ``.cache`` file was used).
        cache_file (str | None): The Ultralytics cache file that was used, if any.
        box_files (list[str]): Up to :data:`BOX_FILES_KEPT` kept label files whose instances are plain boxes (no
            polygon), which a segment or obb dataset may not have.
        box_file_count (int): How many such files there are.
    """

    counts: list[int]
    images: int = 0
    backgrounds: int = 0
    instances: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    label_files: int = 0
    duplicates: int = 0
    source: str = "scan"
    cache_file: str | None = None
    box_files: list[str] = field(default_factory=list)
    box_file_count: int = 0


@dataclass
class _Partial:
    """The picklable result of scanning one chunk (plain Python types keep inter-process traffic small)."""

    counts: list[int]
    images: int = 0
    backgrounds: int = 0
    label_files: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    box_files: list[str] = field(default_factory=list)
    box_file_count: int = 0

    def add_box_file(self, lb_file: str) -> None:
        """Record a kept file of plain box rows (keeping only the first few names)."""
        self.box_file_count += 1
        if len(self.box_files) < BOX_FILES_KEPT:
            self.box_files.append(lb_file)


def count_labels(
    image_files: Sequence[str | os.PathLike[str]],
    nc: int,
    workers: int | None = None,
    progress: bool | Callable[[int, int], None] = False,
    *,
    kpt_shape: Sequence[int] | None = None,
    use_cache: bool = True,
    task: str = "detect",
) -> LabelCounts:
    """Count instances per class over the label files of ``image_files``.

    Args:
        image_files (Sequence[str | os.PathLike]): The split's images, as listed by
            :func:`yolocustom.datasets.split_image_paths` (pass those exact strings to match Ultralytics' cache hash).
        nc (int): Number of classes; a class id ``>= nc`` makes its file corrupt.
        workers (int | None): Worker processes. ``None`` (auto) uses up to 8, no more than the CPUs not already
            busy (load average), when the scan is long enough to repay starting them (about 85k files on 2 idle
            CPUs) and the main module can be re-imported safely; otherwise it scans in this process. ``0`` or ``1``
            always scans in this process. Explicit values above 1 need the usual ``if __name__ == "__main__":``
            guard in the calling script, as any multiprocessing does.
        progress (bool | Callable[[int, int], None]): ``True`` shows a progress bar on stderr when stderr is a terminal
            and the scan is long; a callable receives ``(files done, total)`` after each chunk instead.
        kpt_shape (Sequence[int] | None): The dataset's ``kpt_shape``; pose rows are trimmed to their box as
            Ultralytics does for a box task. Also part of the cache hash.
        use_cache (bool): Use Ultralytics' ``labels/*.cache`` when it is valid for these files.
        task (str): ``detect``, ``segment``, ``obb`` (the same per-file rules) or ``pose`` (keypoint rows of
            ``kpt_shape``'s width; its cache is separate, as in Ultralytics).

    Returns:
        (LabelCounts): Counts, image and background totals, and the rejected label files with reasons.

    Raises:
        ValueError: If ``nc < 1``.
    """
    if nc < 1:
        raise ValueError(f"nc must be >= 1, got {nc}")
    keypoint = TASKS[task].keypoints
    if keypoint and (kpt_shape is None or len(kpt_shape) < 2):
        raise ValueError("task 'pose' needs the dataset's kpt_shape")
    im_files = [os.fspath(p) for p in image_files]
    lb_files = img2label_paths(im_files)
    kpt = (int(kpt_shape[0]), int(kpt_shape[1])) if kpt_shape is not None and len(kpt_shape) >= 2 else (0, 0)
    if not im_files:
        return LabelCounts(counts=[0] * nc)
    if use_cache:
        cached = _counts_from_cache(
            im_files, lb_files, nc, list(kpt_shape) if kpt_shape is not None else None, keypoint
        )
        if cached is not None:
            return cached

    total = _Partial(counts=[0] * nc)
    bad_images = _image_problems(im_files)
    if bad_images:
        total.rejected.extend((lb_files[i], reason) for i, reason in bad_images.items())
        lb_files = [lb for i, lb in enumerate(lb_files) if i not in bad_images]
    chunks = [(i, min(i + CHUNK_SIZE, len(lb_files))) for i in range(0, len(lb_files), CHUNK_SIZE)]
    n_workers = _pick_workers(workers, len(lb_files), len(chunks))
    with _progress_reporter(progress, len(lb_files)) as report:
        done = 0
        for part, size in _run_chunks(lb_files, chunks, nc, kpt, n_workers, keypoint):
            _merge(total, part)
            done += size
            report(done, len(lb_files))
    total.rejected.sort()
    return LabelCounts(
        counts=total.counts,
        images=total.images,
        backgrounds=total.backgrounds,
        instances=sum(total.counts),
        rejected=total.rejected,
        label_files=total.label_files,
        duplicates=total.duplicates,
        box_files=total.box_files,
        box_file_count=total.box_file_count,
    )


def verify_label_file(
    lb_file: str, nc: int, kpt_shape: Sequence[int] | None = None, keypoint: bool = False
) -> tuple[list[int] | None, str]:
    """Check one label file with Ultralytics' exact rules (a port of ``verify_image_label``'s label part).

    Args:
        lb_file (str): Label file path.
        nc (int): Number of classes.
        kpt_shape (Sequence[int] | None): The dataset's ``kpt_shape``, if any.
        keypoint (bool): Read it for the pose task (rows of ``5 + nkpt * ndim`` values).

    Returns:
        (tuple[list[int] | None, str]): The class id of each kept instance (empty for a background) and a note (the
            duplicate-rows message, or ``"missing"`` when there is no label file); or ``None`` and the reason
            Ultralytics gives when it rejects the file as corrupt.
    """
    classes, note, _ = verify_label(lb_file, nc, kpt_shape, keypoint)
    return classes, note


def verify_label(
    lb_file: str, nc: int, kpt_shape: Sequence[int] | None = None, keypoint: bool = False
) -> tuple[list[int] | None, str, bool]:
    """:func:`verify_label_file`, also saying whether the kept instances carry polygons (segment format)."""
    import contextvars

    # Ultralytics runs this check in ThreadPool workers, whose fresh context holds NumPy's default print options
    # (Ultralytics changes them for the main thread). Messages show arrays, so run in a fresh context too.
    return contextvars.Context().run(_verify_label_file, lb_file, nc, kpt_shape, keypoint)


def _verify_label_file(
    lb_file: str, nc: int, kpt_shape: Sequence[int] | None, keypoint: bool
) -> tuple[list[int] | None, str, bool]:
    """Implement :func:`verify_label`."""
    import numpy as np

    nkpt, ndim = (int(kpt_shape[0]), int(kpt_shape[1])) if kpt_shape is not None and len(kpt_shape) >= 2 else (0, 0)
    segments: list[Any] = []
    try:
        if not os.path.isfile(lb_file):
            return [], "missing", False
        with open(lb_file, encoding="utf-8-sig") as f, np.errstate(over="ignore"):  # '1e40' -> inf, then rejected
            lb: Any = [x.split() for x in f.read().strip().splitlines() if x.strip()]
            if nkpt and not keypoint:  # pose labels for a box task: keep the box, drop the keypoints
                lb = [x[:5] if len(x) == 5 + nkpt * ndim else x for x in lb]
            if any(len(x) > 6 for x in lb) and not keypoint:  # segment format
                assert not any(len(x) == 5 for x in lb), "labels mix segment and detection rows"
                classes = np.array([x[0] for x in lb], dtype=np.float32)
                segments = [np.array(x[1:], dtype=np.float32).reshape(-1, 2) for x in lb]
                lb = np.concatenate((classes.reshape(-1, 1), _segments2boxes(segments)), 1)
            lb = np.array(lb, dtype=np.float32)
        note = ""
        if nl := len(lb):
            if keypoint:
                assert lb.shape[1] == (5 + nkpt * ndim), f"labels require {(5 + nkpt * ndim)} columns each"
                points = lb[:, 5:].reshape(-1, ndim)[:, :2]
            else:
                assert lb.shape[1] == 5, f"labels require 5 columns, {lb.shape[1]} columns detected"
                points = lb[:, 1:]
            assert points.max() <= 1.01, f"non-normalized or out of bounds coordinates {points[points > 1.01]}"
            lb_min = lb.min()
            assert lb_min >= 0 or (lb_min >= -0.01 and lb[:, 3:5].min() >= 0), f"negative label values {lb[lb < 0]}"
            assert (lb[:, 0] % 1 == 0).all(), f"non-integer class labels {lb[:, 0][lb[:, 0] % 1 != 0]}"
            max_cls = lb[:, 0].max()
            assert max_cls < nc, (
                f"Label class {int(max_cls)} exceeds dataset class count {nc}. Possible class labels are 0-{nc - 1}"
            )
            _, i = np.unique(lb, axis=0, return_index=True)
            if len(i) < nl and segments:  # distinct polygons can share a class and box
                rows = np.array(
                    [c.tobytes() + s.tobytes() for c, s in zip(lb[:, 0], segments, strict=True)], dtype=object
                )
                _, i = np.unique(rows, return_index=True)
            if len(i) < nl:
                lb = lb[i]
                note = f"{nl - len(i)} duplicate labels removed"
        return ([int(c) for c in lb[:, 0]] if len(lb) else []), note, bool(segments)
    except Exception as e:  # Ultralytics rejects the image on any error here, and so do we
        return None, str(e), False


def _segments2boxes(segments: list[np.ndarray]) -> np.ndarray:
    """Return xywh boxes of polygons, with the dtypes of Ultralytics' ``segments2boxes`` + ``xyxy2xywh``."""
    import numpy as np

    boxes = []
    for s in segments:
        x, y = s.T
        boxes.append([x.min(), y.min(), x.max(), y.max()])
    xyxy = np.array(boxes).reshape(-1, 4)
    out = np.empty_like(xyxy)
    out[..., 0] = (xyxy[..., 0] + xyxy[..., 2]) / 2
    out[..., 1] = (xyxy[..., 1] + xyxy[..., 3]) / 2
    out[..., 2] = xyxy[..., 2] - xyxy[..., 0]
    out[..., 3] = xyxy[..., 3] - xyxy[..., 1]
    return out


def _image_problems(im_files: list[str]) -> dict[int, str]:
    """Return ``{index: reason}`` for images Ultralytics could not open because they are missing or not files.

    Each folder is listed once (much cheaper than one ``stat`` per image); only the images absent from their folder's
    listing are examined one by one, for an error message worded like Ultralytics' (PIL's ``open`` error).
    """
    by_dir: dict[str, set[str]] = {}
    problems: dict[int, str] = {}
    sep, alt = os.sep, os.altsep
    last_folder, names = None, set()
    for i, im in enumerate(im_files):
        folder, _, name = im.rpartition(sep)
        if alt and alt in name:
            folder, name = os.path.split(im)
        if folder != last_folder:
            cached = by_dir.get(folder)
            if cached is None:
                try:
                    with os.scandir(folder or ("." if not im.startswith(sep) else sep)) as it:
                        cached = {e.name for e in it if e.is_file()}
                except OSError:
                    cached = set()
                by_dir[folder] = cached
            last_folder, names = folder, cached
        if name not in names:
            problems[i] = _image_error(im)
    return problems


def _image_error(im_file: str) -> str:
    """Return the error opening ``im_file`` would raise (as PIL reports it), for an image that is not a plain file."""
    try:
        st = os.stat(im_file)
    except OSError as e:
        return str(e)
    if stat.S_ISDIR(st.st_mode):
        return f"[Errno 21] Is a directory: '{im_file}'"
    return f"cannot identify image file '{im_file}'"


def _scan_chunk(lb_files: list[str], nc: int, kpt: tuple[int, int], keypoint: bool = False) -> _Partial:
    """Scan one chunk of label files (their images already checked); see the module docstring for the rules.

    Args:
        lb_files (list[str]): Label paths.
        nc (int): Number of classes.
        kpt (tuple[int, int]): ``(nkpt, ndim)``, ``(0, 0)`` without keypoints.
        keypoint (bool): Pose task: every file goes to the exact checker (rows of ``5 + nkpt * ndim`` values).

    Returns:
        (_Partial): This chunk's totals.
    """
    import numpy as np

    out = _Partial(counts=[0] * nc)
    nkpt = kpt[0]
    slow: list[int] = []  # files the exact checker must decide
    plain_idx: list[int] = []  # ASCII files, tokenised together with NumPy
    plain: list[bytes] = []
    other: list[tuple[int, bytes]] = []  # everything else (BOM, other UTF-8, keypoints): tokenised file by file
    rows_fixed: list[tuple[int, bytes]] = []  # pose task: keypoint rows, checked by _count_rows
    backgrounds = 0
    os_open, os_read, os_close, rdonly, size = os.open, os.read, os.close, os.O_RDONLY, _READ_SIZE  # hot loop
    for i, lb in enumerate(lb_files):
        try:
            fd = os_open(lb, rdonly)
        except (FileNotFoundError, NotADirectoryError):  # no label file: background
            backgrounds += 1
            continue
        except OSError:
            slow.append(i)
            continue
        try:
            data = os_read(fd, size)
            if len(data) == size:
                data = _read_rest(fd, data)
        except IsADirectoryError:  # not a file: Ultralytics' isfile() says missing, a background
            backgrounds += 1
            continue
        except OSError:
            slow.append(i)
            continue
        finally:
            os_close(fd)
        if keypoint:
            rows_fixed.append((i, data))
        elif data.isascii() and not nkpt:
            plain_idx.append(i)
            plain.append(data)
        else:
            other.append((i, data))
    out.images += backgrounds
    out.backgrounds += backgrounds

    fast: list[int] = []  # chunk indices of files with only 5-value rows, in token order
    nrows: list[int] = []
    tokens: list[str] = []
    if plain:
        _tokenize_ascii(plain_idx, plain, out, fast, nrows, tokens, slow)
    if other:
        _tokenize_text(other, kpt, out, fast, nrows, tokens, slow)
    if rows_fixed:
        _count_rows(rows_fixed, nc, out, slow, pose_width=5 + kpt[0] * kpt[1], ndim=kpt[1])
    elif slow and not nkpt:  # files that are not 5-value rows: polygon rows get a vectorised check too
        raw = dict(zip(plain_idx, plain, strict=True))
        raw.update(other)
        tried = [(i, raw[i]) for i in slow if i in raw]
        slow = [i for i in slow if i not in raw]
        _count_rows(tried, nc, out, slow)

    if fast:
        arr = _to_float32(tokens, nrows)
        if arr is None:  # some value is not a number: find the files one by one
            ok_idx, ok_rows, parts = [], [], []
            offset = 0
            for i, n in zip(fast, nrows, strict=True):
                part = _to_float32(tokens[offset : offset + 5 * n], [n])
                offset += 5 * n
                if part is None:
                    slow.append(i)
                else:
                    ok_idx.append(i)
                    ok_rows.append(n)
                    parts.append(part)
            fast, nrows = ok_idx, ok_rows
            arr = np.concatenate(parts) if parts else np.zeros((0, 5), np.float32)
        if fast:
            n_slow = len(slow)
            _count_fast(arr, np.asarray(fast), np.asarray(nrows), nc, out, slow)
            failed = set(slow[n_slow:])
            for i in fast:  # every row of a fast file is a box row
                if i not in failed:
                    out.add_box_file(lb_files[i])

    for i in slow:
        classes, note, polygons = verify_label(lb_files[i], nc, kpt if nkpt else None, keypoint)
        if classes is None:
            out.rejected.append((lb_files[i], note))
            continue
        out.images += 1
        if note != "missing":
            out.label_files += 1
        if classes and not polygons:
            out.add_box_file(lb_files[i])
        if not classes:
            out.backgrounds += 1
        for c in classes:
            out.counts[c] += 1
        if note.endswith("duplicate labels removed"):
            out.duplicates += int(note.split()[0])
    return out


# ASCII bytes that str.split() treats as whitespace, and those str.splitlines() treats as line breaks.
_ASCII_SPACE = b" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"
_ASCII_BREAK = b"\n\x0b\x0c\r\x1c\x1d\x1e"
_ASCII_RARE_SPACE = tuple(bytes([c]) for c in _ASCII_SPACE if c not in b" \n")


def _tokenize_ascii(
    index: list[int],
    files: list[bytes],
    out: _Partial,
    fast: list[int],
    nrows: list[int],
    tokens: list[str],
    slow: list[int],
) -> None:
    """Tokenise many ASCII label files at once; files whose non-blank lines all hold 5 values go to ``fast``.

    Line structure is found with NumPy on the joined bytes (one pass instead of a Python loop over lines); the values
    themselves come from one ``str.split`` of the joined text, so they are the exact strings Ultralytics converts.

    Args:
        index (list[int]): Chunk index of each file.
        files (list[bytes]): File contents (ASCII).
        out (_Partial): Receives the empty files as backgrounds.
        fast (list[int]): Receives the chunk index of each file of 5-value rows.
        nrows (list[int]): Receives the row count of each such file.
        tokens (list[str]): Receives their values, 5 per row.
        slow (list[int]): Receives the chunk index of every other file.
    """
    import numpy as np

    text = b"\n".join(files)
    buf = np.frombuffer(text, dtype=np.uint8)
    if any(c in text for c in _ASCII_RARE_SPACE):  # tabs, CR, form feeds...: look every byte up
        space = np.zeros(256, dtype=bool)
        space[list(_ASCII_SPACE)] = True
        brk = np.zeros(256, dtype=bool)
        brk[list(_ASCII_BREAK)] = True
        is_space, is_break = space[buf], brk[buf]
    else:  # only ' ' and '\n': two vectorised comparisons are much cheaper than a table lookup
        is_break = buf == 10
        is_space = is_break | (buf == 32)
    starts = ~is_space
    starts[1:] &= is_space[:-1]
    tok_pos = np.flatnonzero(starts)
    words = text.decode("ascii").split()
    if len(words) != len(tok_pos):  # cannot happen for ASCII; stay exact if it ever does
        _tokenize_text(list(zip(index, files, strict=True)), (0, 0), out, fast, nrows, tokens, slow)
        return
    lengths = np.fromiter(map(len, files), dtype=np.int64, count=len(files))
    file_start = np.zeros(len(files), dtype=np.int64)
    np.cumsum(lengths[:-1] + 1, out=file_start[1:])
    # Tokens per line: count token starts between consecutive line breaks (the joins are breaks too).
    breaks = np.flatnonzero(is_break)
    edges = np.concatenate((breaks, [len(buf)]))
    per_line = np.diff(np.searchsorted(tok_pos, edges), prepend=0)
    line_file = np.searchsorted(file_start, edges, side="right") - 1
    bad = np.zeros(len(files), dtype=bool)
    bad[line_file[(per_line != 0) & (per_line != 5)]] = True
    per_file = np.diff(np.searchsorted(tok_pos, np.append(file_start, len(buf))))
    empty = per_file == 0
    good = ~empty & ~bad
    idx = np.asarray(index, dtype=np.int64)
    n_empty = int(empty.sum())
    out.images += n_empty
    out.backgrounds += n_empty
    out.label_files += n_empty
    slow.extend(idx[bad & ~empty].tolist())
    fast.extend(idx[good].tolist())
    nrows.extend((per_file[good] // 5).tolist())
    if good.all() or not (bad & ~empty).any():
        tokens.extend(words)
    else:
        offsets = np.concatenate(([0], np.cumsum(per_file))).tolist()
        for k in np.flatnonzero(good).tolist():
            tokens.extend(words[offsets[k] : offsets[k + 1]])


def _count_background(out: _Partial) -> None:
    """Count a kept image whose label file holds no instance (a background)."""
    out.images += 1
    out.backgrounds += 1
    out.label_files += 1


def _split_rows(
    files: list[tuple[int, bytes]], out: _Partial, slow: list[int]
) -> Iterator[tuple[int, list[list[str]]]]:
    """Yield ``(index, rows of tokens)`` of each label file with at least one row (UTF-8 with or without BOM, any line
    breaks); empty files are counted as backgrounds and undecodable ones left to the exact checker (``slow``)."""
    bom = b"\xef\xbb\xbf"
    for i, raw in files:
        data = raw[3:] if raw.startswith(bom) else raw  # what decoding as 'utf-8-sig' does
        try:
            text = data.decode()
        except UnicodeDecodeError:
            slow.append(i)
            continue
        rows = [r for x in text.splitlines() if (r := x.split())]
        if rows:
            yield i, rows
        else:
            _count_background(out)


def _tokenize_text(
    files: list[tuple[int, bytes]],
    kpt: tuple[int, int],
    out: _Partial,
    fast: list[int],
    nrows: list[int],
    tokens: list[str],
    slow: list[int],
) -> None:
    """Tokenise label files one by one (UTF-8 with or without BOM, any line breaks, optional keypoint rows)."""
    nkpt, ndim = kpt
    pose_len = 5 + nkpt * ndim
    for i, rows in _split_rows(files, out, slow):
        if nkpt:  # pose rows for a box task keep their box
            rows = [r[:5] if len(r) == pose_len else r for r in rows]
        if all(len(r) == 5 for r in rows):
            fast.append(i)
            nrows.append(len(rows))
            for r in rows:
                tokens.extend(r)
        else:
            slow.append(i)


def _count_rows(
    files: list[tuple[int, bytes]], nc: int, out: _Partial, slow: list[int], pose_width: int = 0, ndim: int = 0
) -> None:
    """Vectorised check of polygon rows (a box task) or keypoint rows (pose, ``pose_width`` values each).

    A file qualifies when every row is a polygon (more than 6 values, an odd count: class + x, y pairs) or, for pose,
    holds exactly ``pose_width`` values. Each polygon becomes its box with Ultralytics' float32 arithmetic
    (``segments2boxes`` then ``xyxy2xywh``), then the rows go through :func:`_count_fast`. Anything else, a value
    that is not a number included, is left to the exact checker.
    """
    import numpy as np

    idx: list[int] = []
    nrows: list[int] = []
    cls_tok: list[str] = []
    val_tok: list[str] = []
    npts: list[int] = []
    for i, rows in _split_rows(files, out, slow):
        polygon_rows = all(len(r) > 6 and len(r) % 2 for r in rows)  # class + (x, y) pairs, more than 6 values
        if not (all(len(r) == pose_width for r in rows) if pose_width else polygon_rows):
            slow.append(i)
            continue
        idx.append(i)
        nrows.append(len(rows))
        for r in rows:
            cls_tok.append(r[0])
            val_tok.extend(r[1:])
            npts.append((len(r) - 1) // 2)
    if not idx:
        return
    try:
        with np.errstate(all="ignore"):  # '1e40' overflows to inf and is then rejected, silently as in Ultralytics
            cls = np.array(cls_tok, dtype=np.float32)
            vals = np.array(val_tok, dtype=np.float32)
    except (ValueError, TypeError, OverflowError):
        slow.extend(idx)
        return
    if pose_width:
        arr = np.concatenate((cls[:, None], vals.reshape(len(cls), pose_width - 1)), axis=1)
    else:
        starts = np.zeros(len(npts), dtype=np.int64)
        np.cumsum(npts[:-1], out=starts[1:])
        xs, ys = vals[0::2], vals[1::2]
        with np.errstate(invalid="ignore"):
            x1, x2 = np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts)
            y1, y2 = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts)
            arr = np.stack((cls, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), axis=1)
    _count_fast(
        arr,
        np.asarray(idx),
        np.asarray(nrows),
        nc,
        out,
        slow,
        kpt_ndim=ndim if pose_width else 0,
        polygons=not pose_width,
    )


def _read_rest(fd: int, head: bytes) -> bytes:
    """Read the rest of a file whose first ``_READ_SIZE`` bytes are ``head``."""
    parts = [head]
    while chunk := os.read(fd, _READ_SIZE):
        parts.append(chunk)
    return b"".join(parts)


def _to_float32(tokens: list[str], nrows: list[int]) -> np.ndarray | None:
    """Convert value strings to an ``(n, 5)`` float32 array as ``np.array(rows, dtype=np.float32)`` does, or None."""
    import numpy as np

    try:
        with np.errstate(all="ignore"):  # '1e40' overflows to inf and is then rejected, silently as in Ultralytics
            return np.array(tokens, dtype=np.float32).reshape(sum(nrows), 5)
    except (ValueError, TypeError, OverflowError):
        return None


def _count_fast(
    arr: np.ndarray,
    fast: np.ndarray,
    nrows: np.ndarray,
    nc: int,
    out: _Partial,
    slow: list[int],
    *,
    kpt_ndim: int = 0,
    polygons: bool = False,
) -> None:
    """Check label rows of many files at once and add the valid files' classes to ``out``.

    Files that fail any check are appended to ``slow`` so the exact checker rejects them with Ultralytics' message.

    Args:
        arr (np.ndarray): ``(rows, 5)`` float32 ``cls x y w h`` (boxes, or the boxes of polygons), or pose rows
            ``(rows, 5 + nkpt * ndim)``.
        fast (np.ndarray): Chunk index of each file.
        nrows (np.ndarray): Rows of each file.
        nc (int): Number of classes.
        out (_Partial): Receives the counts.
        slow (list[int]): Receives the files the exact checker must decide.
        kpt_ndim (int): Pose rows: the coordinate check covers the keypoints' x, y (as Ultralytics), not the box.
        polygons (bool): Rows are polygons' boxes: a repeated box may come from distinct polygons, so files with one
            go to the exact checker.
    """
    import numpy as np

    starts = np.zeros(len(nrows), dtype=np.int64)
    np.cumsum(nrows[:-1], out=starts[1:])
    points = arr[:, 5:].reshape(len(arr), -1, kpt_ndim)[:, :, :2].reshape(len(arr), -1) if kpt_ndim else arr[:, 1:]
    with np.errstate(invalid="ignore"):
        pmax = np.maximum.reduceat(points.max(axis=1), starts)
        lmin = np.minimum.reduceat(arr.min(axis=1), starts)
        whmin = np.minimum.reduceat(arr[:, 3:5].min(axis=1), starts)
        cls = arr[:, 0]
        int_ok = np.logical_and.reduceat(cls % 1 == 0, starts)
        cmax = np.maximum.reduceat(cls, starts)
        good = (pmax <= 1.01) & ((lmin >= 0) | ((lmin >= -0.01) & (whmin >= 0))) & int_ok & (cmax < nc)
    if not good.all():
        slow.extend(int(i) for i in fast[~good])
        keep_rows = np.repeat(good, nrows)
        arr = arr[keep_rows]
        nrows = nrows[good]
        fast = fast[good]
    if not len(nrows):
        return
    file_of_row = np.repeat(np.arange(len(nrows), dtype=np.uint64), nrows)
    dup_rows = _duplicate_rows(arr, file_of_row)
    if polygons and len(dup_rows):  # same class and box: the exact checker compares the polygons
        files = np.unique(file_of_row[dup_rows])
        slow.extend(int(i) for i in fast[files.astype(np.int64)])
        keep = ~np.isin(file_of_row, files)
        arr, nrows = arr[keep], np.delete(nrows, files.astype(np.int64))
        dup_rows = dup_rows[:0]
        if not len(nrows):
            return
    dup_cls = arr[dup_rows, 0].astype(np.int64)
    classes = arr[:, 0].astype(np.int64)
    counts = np.bincount(classes, minlength=nc)
    if len(dup_cls):
        counts -= np.bincount(dup_cls, minlength=nc)
        out.duplicates += len(dup_cls)
    for c, n in enumerate(counts.tolist()):
        out.counts[c] += n
    out.images += len(nrows)
    out.label_files += len(nrows)


def _duplicate_rows(arr: np.ndarray, file_of_row: np.ndarray) -> np.ndarray:
    """Return the index of every row that repeats an earlier row of the same file (equal as float32 values)."""
    import numpy as np

    norm = arr + np.float32(0.0)  # -0.0 becomes 0.0: NumPy's unique() treats them as equal
    words = np.ascontiguousarray(norm).view(np.uint32).astype(np.uint64)
    h = file_of_row * np.uint64(0x9E3779B97F4A7C15)
    for k in range(arr.shape[1]):
        h = (h ^ words[:, k]) * np.uint64(0x100000001B3)
    order = np.argsort(h, kind="stable")
    hs = h[order]
    same = hs[1:] == hs[:-1]
    if not same.any():
        return np.zeros(0, dtype=np.int64)
    # Rows sharing a hash are candidates; decide exactly with Python tuples (float equality, so 0.0 == -0.0).
    cand = np.unique(np.concatenate((order[1:][same], order[:-1][same])))
    seen: set[tuple[Any, ...]] = set()
    dups: list[int] = []
    for r in sorted(cand.tolist()):
        key = (int(file_of_row[r]), *norm[r].tolist())
        if key in seen:
            dups.append(r)
        else:
            seen.add(key)
    return np.asarray(dups, dtype=np.int64)


def _merge(total: _Partial, part: _Partial) -> None:
    """Add one chunk's totals into ``total``."""
    for c, n in enumerate(part.counts):
        total.counts[c] += n
    total.images += part.images
    total.backgrounds += part.backgrounds
    total.label_files += part.label_files
    total.duplicates += part.duplicates
    total.rejected.extend(part.rejected)
    total.box_file_count += part.box_file_count
    total.box_files.extend(part.box_files[: BOX_FILES_KEPT - len(total.box_files)])


def _pick_workers(workers: int | None, n_files: int, n_chunks: int) -> int:
    """Return how many worker processes to use (0 means scan in this process)."""
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        idle = cpus - os.getloadavg()[0] if hasattr(os, "getloadavg") else float(cpus)
        workers = min(cpus, 8, n_chunks, int(idle + 0.5))  # CPUs busy with other jobs would only be contended for
        if workers < 2 or n_files * SCAN_SECONDS_PER_FILE * (1 - 1 / workers) < POOL_STARTUP_SECONDS:
            return 0
        if not _main_is_reimport_safe():
            return 0
    workers = min(workers, n_chunks)
    return workers if workers > 1 else 0


def _main_is_reimport_safe() -> bool:
    """Return True when worker processes may import ``__main__`` without re-running the caller's program.

    'forkserver' and 'spawn' workers import the main module. That is harmless for ``python -m ...``, interactive
    sessions and scripts with an ``if __name__ == "__main__":`` guard (the ``yolocustom`` and ``pytest`` entry points),
    but would re-run an unguarded user script, training included. Automatic parallelism is only used when safe.
    """
    main = sys.modules.get("__main__")
    spec_name = getattr(getattr(main, "__spec__", None), "name", "") or ""
    if spec_name == "__main__" or spec_name.endswith(".__main__"):
        return True
    file = getattr(main, "__file__", None)
    if not file:
        return True
    try:
        with open(file, encoding="utf-8", errors="ignore") as f:
            source = f.read()
    except OSError:
        return False
    return re.search(r"""^if\s+__name__\s*==\s*["']__main__["']\s*:""", source, re.MULTILINE) is not None


def _run_chunks(
    lb_files: list[str],
    chunks: list[tuple[int, int]],
    nc: int,
    kpt: tuple[int, int],
    n_workers: int,
    keypoint: bool = False,
) -> Iterator[tuple[_Partial, int]]:
    """Yield ``(partial result, files in chunk)`` for every chunk, in a process pool when ``n_workers > 1``.

    If the pool breaks (for example a worker could not import the caller's main module), the chunks it did not finish
    are scanned in this process instead.
    """
    pending = dict.fromkeys(range(len(chunks)))
    if n_workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        # Never 'fork': the caller may be a trainer with live torch/OpenMP threads. The fork server (if this call
        # starts it) preloads NumPy and this module, so each worker starts in milliseconds instead of importing them.
        ctx: Any
        if "forkserver" in mp.get_all_start_methods():
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["__main__", "numpy", __name__])
        else:
            ctx = mp.get_context("spawn")
        try:
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
                futures = {
                    pool.submit(_scan_chunk, lb_files[a:b], nc, kpt, keypoint): k for k, (a, b) in enumerate(chunks)
                }
                for fut in as_completed(futures):
                    k = futures[fut]
                    part = fut.result()
                    del pending[k]
                    yield part, chunks[k][1] - chunks[k][0]
        except (BrokenProcessPool, OSError, RuntimeError):
            pass  # fall through: scan what is left here
    for k in list(pending):
        a, b = chunks[k]
        yield _scan_chunk(lb_files[a:b], nc, kpt, keypoint), b - a


class _progress_reporter:  # noqa: N801 - used like a function in a with-statement
    """Context manager yielding a ``report(done, total)`` callable: a rich bar on a terminal, a callback, or nothing."""

    def __init__(self, progress: bool | Callable[[int, int], None], total: int):
        self.progress = progress
        self.total = total
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[int, int], None]:
        if callable(self.progress):
            return self.progress
        if not self.progress or self.total < 2 * CHUNK_SIZE or not sys.stderr.isatty():
            return lambda done, total: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("counting labels"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("labels", total=self.total)
        return lambda done, total: self._bar.update(self._task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


# --------------------------------------------------------------------------------------------------- Ultralytics cache


def ultralytics_cache_version() -> str | None:
    """Return ``DATASET_CACHE_VERSION`` of the installed Ultralytics, read from its source without importing it."""
    root = ultralytics_root()
    if root is None:
        return None
    try:
        text = (root / "data" / "dataset.py").read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(r"""^DATASET_CACHE_VERSION\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    return m.group(1) if m else None


def cache_path_for(label_files: Sequence[str]) -> Path:
    """Return where Ultralytics keeps the label cache of a split: the first label file's folder plus ``.cache``."""
    return Path(label_files[0]).parent.with_suffix(".cache")


def cache_hash(
    im_files: Sequence[str], lb_files: Sequence[str], nc: int, kpt_shape: list[int] | None, keypoint: bool = False
) -> str:
    """Return the hash ``YOLODataset.get_cache_hash`` computes (``single_cls=False``).

    Args:
        im_files (Sequence[str]): Image paths.
        lb_files (Sequence[str]): Label paths.
        nc (int): Number of classes.
        kpt_shape (list[int] | None): The dataset YAML's ``kpt_shape``.
        keypoint (bool): ``use_keypoints`` (the pose task); detect, segment and obb share one cache.

    Returns:
        (str): Hex SHA-256 over paths, sizes and modification times, plus the scan settings.
    """
    import hashlib

    h = hashlib.sha256()
    for p in [*lb_files, *im_files, str((keypoint, nc, kpt_shape, False))]:
        h.update(os.fsencode(p))
        h.update(b"\0")
        try:
            st = os.stat(p)
        except OSError:
            h.update(b"\0")
            continue
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        h.update(b"\0")
    return h.hexdigest()


_CORRUPT_MARK = ": ignoring corrupt image/label: "
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _counts_from_cache(
    im_files: list[str], lb_files: list[str], nc: int, kpt_shape: list[int] | None, keypoint: bool = False
) -> LabelCounts | None:
    """Return counts from a valid Ultralytics label cache for exactly these files, or None."""
    path = cache_path_for(lb_files)
    if not path.is_file():
        return None
    version = ultralytics_cache_version()
    if version is None:
        return None
    import gc

    import numpy as np

    try:
        gc.disable()  # as Ultralytics does: much faster unpickling of many small objects
        try:
            cache = np.load(str(path), allow_pickle=True).item()
        finally:
            gc.enable()
        if cache["version"] != version or cache["hash"] != cache_hash(im_files, lb_files, nc, kpt_shape, keypoint):
            return None
        labels = cache["labels"]
        per_image = [np.asarray(lb["cls"]).reshape(-1) for lb in labels]
        backgrounds = sum(1 for c in per_image if not len(c))
        classes = np.concatenate(per_image).astype(np.int64) if per_image else np.zeros(0, np.int64)
        counts = np.bincount(classes, minlength=nc)[:nc]
        found = int(cache.get("results", (0,))[0])
        box_files = [lb["im_file"] for lb in labels if len(lb["cls"]) and not len(lb.get("segments") or [])]
    except Exception:  # unreadable, stale or foreign: Ultralytics would rescan, so do we
        return None
    lb_of_im = dict(zip(im_files, lb_files, strict=True))
    box_lb = [lb_of_im.get(im, im) for im in box_files]
    rejected = []
    for msg in cache.get("msgs", []):
        head, mark, reason = str(msg).partition(_CORRUPT_MARK)
        if mark:
            rejected.append((_label_from_message(_ANSI.sub("", head), lb_of_im), reason))
    return LabelCounts(
        counts=[int(c) for c in counts],
        images=len(labels),
        backgrounds=backgrounds,
        instances=int(counts.sum()),
        rejected=sorted(rejected),
        label_files=found,
        source="cache",
        cache_file=str(path),
        box_files=box_lb[:BOX_FILES_KEPT],
        box_file_count=len(box_lb),
    )


def _label_from_message(head: str, lb_of_im: dict[str, str]) -> str:
    """Return the label file of the image named at the end of an Ultralytics warning's head (``prefix + im_file``)."""
    for k in range(len(head)):
        if head[k:] in lb_of_im:
            return lb_of_im[head[k:]]
    return head


# ------------------------------------------------------------------------------------------------ task format checks


def check_task_labels(
    spec: DatasetSpec,
    image_files: Sequence[str | os.PathLike[str]],
    task: str,
    strict_rows: bool = True,
    **kwargs: Any,
) -> LabelCounts:
    """Count a split for ``task`` and refuse, with one clear error naming a file, data that task cannot train on.

    Ultralytics would only fail once the model is built and the data loaders start (or silently drop every file):

    * pose: the dataset YAML has no valid ``kpt_shape`` (``YOLODataset`` raises); a label row whose width is not
      ``5 + nkpt * ndim`` (Ultralytics drops the file as corrupt; here it is an error, since it means the labels are
      not this dataset's keypoints);
    * segment, obb: a label file of plain box rows (``verify_labels`` refuses the whole dataset: "requires equal
      numbers of boxes and segments").

    Args:
        spec (DatasetSpec): The dataset.
        image_files (Sequence[str | os.PathLike]): The split's images.
        task (str): A key of ``tasks.TASKS``.
        strict_rows (bool): Refuse pose rows of the wrong width (training); ``False`` counts them as Ultralytics does,
            dropping their files (``compute-weights``).
        **kwargs: Passed on to :func:`count_labels`.

    Returns:
        (LabelCounts): The split's counts, for the task.

    Raises:
        DataError: Naming the file (the label file, or the dataset YAML for ``kpt_shape``) and the expected format.
    """
    from yolocustom.errors import DataError
    from yolocustom.tasks import TASKS

    info = TASKS[task]
    kpt = spec.kpt_shape
    if info.keypoints and not _valid_kpt_shape(kpt):
        raise DataError(
            f"{spec.source}: a {task} model needs 'kpt_shape: [keypoints, dims]' (dims 2 for x,y or 3 for x,y,visible)"
            f" in the dataset YAML, e.g. 'kpt_shape: [17, 3]', found {'none' if kpt is None else kpt}"
        )
    counts = count_labels(image_files, spec.nc, kpt_shape=kpt, task=task, **kwargs)
    if info.segments and counts.box_file_count:
        a = article(task)
        raise DataError(
            f"{counts.box_files[0]}: {a} {task} model needs rows {info.label_format}, but this file holds "
            f"box rows 'class cx cy w h' ({counts.box_file_count} such label file(s) in {spec.source}); Ultralytics "
            f"would stop with '{task} dataset requires equal numbers of boxes and segments'. Use {a} {task} "
            "dataset, or a detect model"
        )
    if info.keypoints and strict_rows:
        assert kpt is not None
        width = 5 + int(kpt[0]) * int(kpt[1])
        for file, _ in counts.rejected:
            bad = _first_bad_width(file, width)
            if bad is not None:
                line, found = bad
                raise DataError(
                    f"{file}:{line}: a pose model with kpt_shape {list(kpt)} ({spec.source}) needs rows of "
                    f"5 + {kpt[0]}x{kpt[1]} = {width} values ('class cx cy w h' then the keypoints), found {found}"
                )
    return counts


def _valid_kpt_shape(kpt: Any) -> bool:
    """Ultralytics' own test (``YOLODataset.__init__``): ``[nkpt > 0, ndim in {2, 3}]``."""
    try:
        nkpt, ndim = kpt
        return int(nkpt) > 0 and int(ndim) in {2, 3}
    except (TypeError, ValueError):
        return False


def _first_bad_width(lb_file: str, width: int) -> tuple[int, int] | None:
    """``(line number, values)`` of the first non-blank row of ``lb_file`` that does not hold ``width`` values."""
    try:
        with open(lb_file, encoding="utf-8-sig") as f:
            for n, line in enumerate(f.read().splitlines(), 1):
                values = len(line.split())
                if values and values != width:
                    return n, values
    except (OSError, UnicodeDecodeError):
        return None
    return None
