"""The copy loop of the small stream filters (addcr, delcr): stdin to stdout, chunked."""

import os
from typing import Callable


def copy(convert: Callable[[bytes, bool], bytes], bufsize: int = 65536) -> None:
    """Read fd 0 to its end, write convert(chunk, is_final) to fd 1. Raises OSError."""
    while True:
        chunk = os.read(0, bufsize)
        out = convert(chunk, not chunk)
        view = memoryview(out)
        while view:
            view = view[os.write(1, view):]
        if not chunk:
            return
