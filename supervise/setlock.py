"""setlock: run a program with a file locked (daemontools 0.76).

Synopsis:
    setlock [ -nNxX ] file child ...

Opens file for appending (created mode 0600), takes an exclusive flock on it (the
Debian build's lock, so C setlock and this one exclude each other) and runs child with
the locked descriptor still open: the lock lasts until every process holding that
descriptor has closed it.

Options: -n do not wait for the lock (fail instead); -N wait (default); -x exit 0
silently when file cannot be opened or locked; -X report and exit 111 (default).

Exit codes: 100 usage; 111 cannot open, lock (without -x) or run child; otherwise
child's.
Environment: PATH finds child.
"""

import fcntl
import os
import sys

from supervise import pathexec
from ucspi.runtime import exitcodes, sgetopt

PROG = "setlock"
USAGE = "setlock [ -nNxX ] file program [ arg ... ]"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    opts, rest = sgetopt.options(argv, "nNxX", PROG, USAGE)
    nodelay = quiet = False
    for opt, _ in opts:
        if opt in "nN":
            nodelay = opt == "n"
        else:
            quiet = opt == "x"
    if len(rest) < 2:
        exitcodes.usage(PROG, USAGE)
    path, child = rest[0], rest[1:]
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as err:
        if quiet:
            return 0
        exitcodes.fatal_sys(PROG, f"unable to open {path}", err)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if nodelay else 0))
    except OSError as err:
        if quiet:
            return 0
        exitcodes.fatal_sys(PROG, f"unable to lock {path}", err)
    # the child holds the lock through this descriptor, as after C setlock's exec
    os.set_inheritable(fd, True)
    try:
        pathexec.run(child)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {child[0]}", err)
