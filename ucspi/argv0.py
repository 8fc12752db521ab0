"""argv0: run a program with a chosen argv[0] (ucspi-tcp 0.88).

Synopsis: argv0 realname program [ arg ... ]
Runs realname with the argument list `program arg ...`, so that realname sees program
as its name. Our own programs continue warm in this process (ucspi.runtime.launch).
Exit codes: 100 usage; 111 if realname cannot be run; else realname's.
"""

import sys

from ucspi.runtime import exitcodes, launch, sgetopt

PROG = "argv0"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    realname = sgetopt.operands(argv, 2, PROG, "argv0 realname program [ arg ... ]")[0]
    try:
        launch.exec_program(argv[2:], program=realname)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {realname}", err)
