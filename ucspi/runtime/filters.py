"""The copy loop of the stream filters (addcr, delcr, tai64n, tai64nlocal): stdin to stdout."""

from __future__ import annotations

import os

from ucspi.runtime.durable import write_all

TYPE_CHECKING = False  # typing would add 1 MiB to every warm-starting parent
if TYPE_CHECKING:
    from collections.abc import Callable


def copy(convert: Callable[[bytes, bool], bytes], bufsize: int = 65536) -> None:
    """Read fd 0 to its end, write convert(chunk, is_final) to fd 1. Raises OSError.

    Each piece is written before the next read, so a filter in a pipeline passes
    lines on as they come."""
    while True:
        chunk = os.read(0, bufsize)
        write_all(1, convert(chunk, not chunk))
        if not chunk:
            return


def feed(fd: int, head: bytes = b"", bufsize: int = 65536) -> None:
    """Write head, then everything on stdin, to fd (a child's pipe). Stops quietly when
    the child stops reading or stdin fails: the child's exit status tells the rest."""
    try:
        write_all(fd, head)
        while True:
            data = os.read(0, bufsize)
            if not data:
                return
            write_all(fd, data)
    except OSError:
        return
