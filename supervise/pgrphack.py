"""pgrphack: run a program in a new process group (daemontools 0.76).

Synopsis:
    pgrphack child ...

Starts a new session (setsid, as 0.76 does; a failure is ignored as there) and runs
child (warm when it is one of ours, exec'd otherwise).

Exit codes: 100 usage; 111 cannot run child; otherwise child's.
Environment: PATH finds child.
"""

import os
import sys

from supervise import pathexec
from ucspi.runtime import exitcodes, sgetopt

PROG = "pgrphack"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    sgetopt.operands(argv, 1, PROG, "pgrphack child")
    child = argv[1:]
    try:
        os.setsid()
    except OSError:
        pass  # already a process group leader: 0.76 does not check either
    try:
        pathexec.run(child)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {child[0]}", err)
