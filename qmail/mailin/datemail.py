"""datemail: sendmail, with a Date: line in local time added first (qmail's datemail).

    datemail [ sendmail options and arguments ]

The same as `predate sendmail ARGS`, with ROOT/bin's predate and sendmail (this suite's
when ROOT/bin has none). Exit codes: sendmail's; 111 when predate cannot be run.
Environment: QMAIL_ROOT.
"""

import sys

from qmail.config import install_root
from ucspi.runtime import exitcodes, launch


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    root = install_root.root()
    try:
        launch.exec_program([install_root.program("predate", root),
                                install_root.program("sendmail", root), *argv[1:]])
    except OSError as err:
        exitcodes.fatal_sys("datemail", "unable to run predate", err)
    return exitcodes.TEMPORARY
