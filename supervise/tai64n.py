"""tai64n: put a precise timestamp on each line.

Synopsis: tai64n

Reads lines from stdin and writes each to stdout preceded by `@`, a TAI64N label
(24 hex digits, see supervise.tai64) taken when the line's first byte was read, and a
space. A partial last line is copied without adding a newline. Output is flushed
before every read, so tai64n can sit in a live pipeline.

Exit codes: 0 at the end of stdin; 111 if stdin cannot be read or stdout written.
Files and environment: none.
"""

import signal
import sys

from supervise import tai64
from ucspi.runtime import filters

READ_SIZE = 65536


def stamp(data: bytes, at_line_start: bool, label: bytes) -> tuple[bytes, bool]:
    """data with `label ` before each line that starts in it; returns the output and
    whether the next byte starts a line."""
    prefix = label + b" "
    lines = data.split(b"\n")
    last = lines.pop()
    body = (b"\n" + prefix).join(lines) + b"\n" if lines else b""
    if lines:
        body = (prefix if at_line_start else b"") + body
        if last:
            body += prefix + last
        return body, not last
    return (prefix if at_line_start else b"") + last, False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # a closed reader ends us, as it ends C
    at_line_start = True

    def convert(data: bytes, final: bool) -> bytes:
        nonlocal at_line_start
        if final:
            return b""
        out, at_line_start = stamp(data, at_line_start, tai64.now())
        return out

    try:
        filters.copy(convert, READ_SIZE)
    except OSError:
        return 111
    return 0
