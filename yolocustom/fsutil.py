"""File-system helpers shared by commands and features: one way to replace a file atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def replace_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Create or replace ``path`` through a temporary file in the same folder that ``write`` fills, then ``os.replace``.

    The data is flushed and fsynced before the rename, the new file keeps the mode of the file it replaces (else
    0o666 minus the umask, as ``open`` would give), and on any failure, ``KeyboardInterrupt`` included, the temporary
    file is removed and ``path`` is left as it was: readers see the old file or the new one, never half of one.

    Args:
        path (Path): Target file; its folder must exist.
        write (Callable[[IO[bytes]], None]): Writes the content into the binary file object it is given.

    Raises:
        OSError: If the temporary file cannot be created or written, or the rename fails.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`replace_atomically`)."""
    payload = text.encode("utf-8")

    def write(f: IO[bytes]) -> None:
        f.write(payload)

    replace_atomically(path, write)


def _new_file_mode(path: Path) -> int:
    """Return the mode for a new output file: the replaced file's mode, else 0o666 minus the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
