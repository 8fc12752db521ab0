"""fghack: keep a program that backgrounds itself in the foreground (daemontools 0.76).

Synopsis:
    fghack child ...

Runs child with 31 extra descriptors writing to one pipe (the pipe's write end plus 30
duplicates at the lowest free numbers, as 0.76 leaves them), reads and discards what
arrives on the pipe until every copy of those descriptors is closed (so until the
daemon's background process exits too), then waits for child.

Exit codes: 100 usage; 111 cannot create the pipe, fork, wait, or run child (the child
reports that), or child crashed ("fghack: fatal: child crashed"); otherwise child's.
Environment: PATH finds child.
"""

import os
import resource
import sys
import traceback

from supervise import pathexec
from ucspi.runtime import children, exitcodes, launch, sgetopt

PROG = "fghack"
DUPLICATES = 30


def duplicate_targets(read_end: int, count: int = DUPLICATES) -> list[int]:
    """Where the child's dup()s of the write end land: the lowest numbers free once the
    read end is closed, below the descriptor limit (0.76 ignores a failing dup)."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    limit = 1 << 16 if limit == resource.RLIM_INFINITY or limit > 1 << 16 else limit
    targets = []
    for fd in range(limit):
        if len(targets) == count:
            break
        if fd == read_end or not launch.is_open(fd):
            targets.append(fd)
    return targets


def _become_child(child: list[str], read_end: int, write_end: int, targets: list[int]):
    """In the forked child: the pipe's write end everywhere 0.76 puts it, then child."""
    try:
        os.close(read_end)
        os.set_inheritable(write_end, True)
        for fd in targets:
            os.dup2(write_end, fd)
        pathexec.run(child)  # write_end and targets are inheritable: kept as exec keeps them
    except OSError as err:
        exitcodes.say(f"{PROG}: fatal: unable to run {child[0]}: {exitcodes.error_str(err)}")
    except BaseException:
        traceback.print_exc()
    os._exit(exitcodes.TEMPORARY)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    sgetopt.operands(argv, 1, PROG, "fghack child")
    child = argv[1:]
    try:
        read_end, write_end = os.pipe()
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to create pipe", err)
    targets = duplicate_targets(read_end)
    try:
        pid = launch.fork()
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to fork", err)
    if pid == 0:
        _become_child(child, read_end, write_end, targets)
    os.close(write_end)
    while True:
        try:
            if not os.read(read_end, 4096):
                break
        except OSError:
            break
    os.close(read_end)
    return children.exit_code(PROG, pid)
