"""bouncesaying: bounce each incoming message (bouncesaying(1)).

Synopsis:
    bouncesaying error [ program [ arg ... ] ]

Without program: prints error and exits 100, so qmail-local bounces the message with
error as the reason. With program: runs it first; bounces only if it exits 0, does
nothing (exit 0) if it exits non-zero, and defers (111, `bouncesaying: fatal: temporary
child error`) if it exits 111.

Exit codes: 0, 100, 111 as above; 100 usage.
"""

import sys

from qmail.delivery import except_
from ucspi.runtime import exitcodes, sgetopt

PROG = "bouncesaying"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    sgetopt.operands(argv, 1, PROG, "bouncesaying error [ program [ arg ... ] ]")
    if len(argv) > 2 and except_.run_judged(PROG, argv[2:]) != 0:
        return 0
    exitcodes.say(argv[1])
    return 100
