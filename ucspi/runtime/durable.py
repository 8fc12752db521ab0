"""Durable writes: the one helper every program uses to replace a file safely.

The pattern (DESIGN.md section 5): write a temporary file, fsync it, rename it over the
target, fsync the directory. A crash at any point leaves either the old file or the
complete new one, never a partial one.
"""

import os
from typing import Callable, BinaryIO


def fsync_dir(path: str) -> None:
    """fsync the directory holding path, so a rename or link into it survives a crash."""
    fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY | os.O_DIRECTORY)
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
