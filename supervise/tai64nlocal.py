"""tai64nlocal: convert TAI64N labels at line starts to local time.

Synopsis: tai64nlocal

Reads lines from stdin. A line starting with `@` has the lowercase hex digits after the
`@` replaced by the local time they encode, `YYYY-MM-DD HH:MM:SS.nnnnnnnnn` (the label
as daemontools 0.76 reads it: see supervise.tai64.scan); every other byte is copied
unchanged. Output is flushed before every read.

Exit codes: 0 at the end of stdin; 111 if stdin cannot be read or stdout written.
Environment: TZ (through the C library's localtime).
"""

import signal
import sys
import time

from supervise import tai64
from ucspi.runtime import filters

READ_SIZE = 65536

LINE_START, IN_LABEL, MID_LINE = range(3)


def _render(digits: bytes) -> bytes:
    try:
        return tai64.format_local(*tai64.scan(digits))
    except (OverflowError, OSError, ValueError):
        # C's localtime gives NULL here and tai64nlocal crashes; we keep the label.
        return b"@" + digits


class Converter:
    """The conversion as a state machine over chunks (a label may span two reads)."""

    def __init__(self):
        self.state = LINE_START
        self.digits = b""

    def feed(self, data: bytes) -> bytes:
        out = []
        pos, end = 0, len(data)
        while pos < end:
            if self.state == MID_LINE:
                nl = data.find(b"\n", pos)
                if nl < 0:
                    out.append(data[pos:])
                    break
                out.append(data[pos:nl + 1])
                pos = nl + 1
                self.state = LINE_START
            elif self.state == LINE_START:
                if data[pos] == 0x40:  # "@"
                    self.state = IN_LABEL
                    self.digits = b""
                    pos += 1
                else:
                    self.state = MID_LINE
            else:
                nl = data.find(b"\n", pos)
                stop = end if nl < 0 else nl
                segment = data[pos:stop]
                rest = segment.lstrip(tai64.HEX_DIGITS)
                taken = len(segment) - len(rest)
                self.digits += segment[:taken]
                pos += taken
                if pos == end:
                    break  # the label may go on in the next read
                out.append(_render(self.digits))
                self.state = MID_LINE
        return b"".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # a closed reader ends us, as it ends C
    time.tzset()  # TZ as this process's environment says, even when started warm
    converter = Converter()
    try:
        filters.copy(lambda data, final: b"" if final else converter.feed(data), READ_SIZE)
    except OSError:
        return 111
    return 0
