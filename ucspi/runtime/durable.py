"""Durable writes: the one helper every program uses to replace a file safely.

The pattern (docs/architecture.md, "Queue and durability"): write a temporary file, fsync it, rename it over the
target, fsync the directory. A crash at any point leaves either the old file or the
complete new one, never a partial one. write_all is the loop every write to a descriptor
goes through.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing would add 1 MiB to every warm-starting parent
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO


def write_all(fd: int, data: bytes) -> None:
    """Write all of data to fd (short writes continued). Raises OSError.

    os.write itself retries a write a signal interrupted (PEP 475), so no
    InterruptedError reaches a caller."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_dir(path: str) -> None:
    """fsync the directory holding path, so a rename or link into it survives a crash.

    The directory is named as the rename named it (no folding of `..` by text), so the
    kernel finds the same one."""
    fd = os.open(os.path.dirname(path.rstrip("/")) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(path: str, tmp: str, write: Callable[[BinaryIO], None], mode: int = 0o644) -> None:
    """Write tmp with write(fileobj), fsync it, rename it onto path, fsync the directory.

    tmp is destroyed first if it exists. On any failure tmp is removed, path is left
    alone, and the OSError propagates.
    """
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the new contents are on disk before they get the name
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path)  # the rename itself is on disk


def write_bytes(path: str, data: bytes, tmp: str | None = None, mode: int = 0o644) -> None:
    """replace() with a fixed content; tmp defaults to path + ".new"."""
    replace(path, tmp or path + ".new", lambda f: f.write(data), mode)
