"""addcr: add a CR before each LF (ucspi-tcp 0.88).

Synopsis: addcr < input > output
Copies standard input to standard output, inserting CR before every LF. Arguments are
ignored. Exit codes: 0; 111 on read or write trouble.
"""

import sys

from ucspi.runtime import exitcodes, filters

PROG = "addcr"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    try:
        filters.copy(lambda chunk, final: chunk.replace(b"\n", b"\r\n"))
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to copy", err)
    return 0
