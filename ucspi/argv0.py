"""argv0: run a program with a chosen argv[0] (ucspi-tcp 0.88).

Synopsis: argv0 realname program [ arg ... ]
Runs realname with the argument list `program arg ...`, so that realname sees program
as its name. Our own programs continue warm in this process (ucspi.runtime.launch).
Exit codes: 100 usage; 111 if realname cannot be run; else realname's.
"""

import sys

from ucspi.runtime import exitcodes, launch

PROG = "argv0"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) < 3:
        exitcodes.usage(PROG, "argv0 realname program [ arg ... ]")
    realname = argv[1]
    try:
        launch.exec_program(argv[2:], program=realname)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {realname}", err)
