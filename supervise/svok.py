"""svok: check whether supervise is running (daemontools 0.76).

Synopsis: svok service

Exit codes: 0 if supervise is running in service; 100 if it is not (no reader on
service/supervise/ok, or no such FIFO) or on usage error; 111 if service cannot be
entered or the FIFO cannot be opened for another reason.
Files: service/supervise/ok (opened for writing without blocking, never created).
"""

import errno
import os
import sys

from ucspi.runtime import exitcodes, sgetopt

PROG = "svok"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    directory = sgetopt.operands(argv, 1, PROG, "svok dir")[0]
    try:
        os.chdir(directory)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to chdir to {directory}", err)
    try:
        fd = os.open("supervise/ok", os.O_WRONLY | os.O_NONBLOCK)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENXIO):
            return exitcodes.PERMANENT
        exitcodes.fatal_sys(PROG, f"unable to open {directory}/supervise/ok", err)
    os.close(fd)
    return 0
