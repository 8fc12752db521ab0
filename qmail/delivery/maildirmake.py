"""maildirmake: create a directory for qmail-local's Maildir deliveries (maildirmake(1)).

Synopsis:
    maildirmake dir

Creates dir and its tmp, new and cur subdirectories, mode 0700.

Exit codes: 0 done; 100 usage; 111 a directory could not be made.
"""

import os
import sys

from ucspi.runtime import exitcodes, sgetopt

PROG = "maildirmake"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    sgetopt.operands(argv, 1, PROG, "maildirmake name")
    os.umask(0o077)
    name = argv[1]
    try:
        os.mkdir(name, 0o700)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to mkdir {name}", err)
    for sub in ("tmp", "new", "cur"):
        try:
            os.mkdir(os.path.join(name, sub), 0o700)
        except OSError as err:
            exitcodes.fatal_sys(PROG, f"unable to mkdir {name}/{sub}", err)
    return 0
