"""envuidgid: run a program with $UID and $GID set to an account's (daemontools 0.76).

Synopsis:
    envuidgid account child ...

Sets $GID, then $UID, to the account's gid and uid and runs child (warm when it is one
of ours, exec'd otherwise).

Exit codes: 100 usage; 111 unknown account or cannot run child; otherwise child's.
Files: the password database (getpwnam). Environment: PATH finds child.
"""

import sys

from supervise import pathexec
from ucspi.runtime import exitcodes, sgetopt

PROG = "envuidgid"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    pw = pathexec.account(PROG, sgetopt.operands(argv, 2, PROG, "envuidgid account child")[0])
    child = argv[2:]
    env = pathexec.env_with([("GID", str(pw.pw_gid)), ("UID", str(pw.pw_uid))])
    try:
        pathexec.run(child, env)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {child[0]}", err)
