"""delcr: remove the CR at the end of each line (ucspi-tcp 0.88).

Synopsis: delcr < input > output
Copies standard input to standard output, removing a CR that comes right before an LF
(a CR at the very end of the input stays, as the C delcr leaves it). Arguments are ignored.
Exit codes: 0; 111 on read or write trouble.
"""

import sys

from ucspi.runtime import exitcodes, filters

PROG = "delcr"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    held = [b""]  # a CR at the end of a chunk waits to see what follows it

    def convert(chunk: bytes, final: bool) -> bytes:
        data = held[0] + chunk
        held[0] = b""
        if data.endswith(b"\r") and not final:
            data = data[:-1]
            held[0] = b"\r"
        return data.replace(b"\r\n", b"\n")

    try:
        filters.copy(convert)
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to copy", err)
    return 0
