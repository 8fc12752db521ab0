"""Reading input to its end: the copy loop of the stream filters (addcr, delcr, tai64n,
tai64nlocal), feeding a child, and chunks for programs that read requests from stdin."""

from __future__ import annotations

import os

from ucspi.runtime.durable import write_all

TYPE_CHECKING = False  # typing would add 1 MiB to every warm-starting parent
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def copy(convert: Callable[[bytes, bool], bytes], bufsize: int = 65536) -> None:
    """Read fd 0 to its end, write convert(chunk, is_final) to fd 1. Raises OSError.

    Each piece is written before the next read, so a filter in a pipeline passes
    lines on as they come."""
    while True:
        chunk = os.read(0, bufsize)
        write_all(1, convert(chunk, not chunk))
        if not chunk:
            return


def chunks(fd: int = 0, bufsize: int = 65536) -> Iterator[bytes]:
    """What fd holds, piece by piece as read, until its end; a read error ends it too
    (as a C tool's loop on read() <= 0)."""
    while True:
        try:
            data = os.read(fd, bufsize)
        except OSError:
            return
        if not data:
            return
        yield data


def feed(fd: int, head: bytes = b"", bufsize: int = 65536) -> None:
    """Write head, then everything on stdin, to fd (a child's pipe). Stops quietly when
    the child stops reading or stdin fails: the child's exit status tells the rest."""
    try:
        write_all(fd, head)
        for data in chunks(0, bufsize):
            write_all(fd, data)
    except OSError:
        return
