"""envuidgid: run a program with $UID and $GID set to an account's (daemontools 0.76).

Synopsis:
    envuidgid account child ...

Sets $GID, then $UID, to the account's gid and uid and runs child (warm when it is one
of ours, exec'd otherwise).

Exit codes: 100 usage; 111 unknown account or cannot run child; otherwise child's.
Files: the password database (getpwnam). Environment: PATH finds child.
"""

import pwd
import sys

from supervise import pathexec
from ucspi.runtime import exitcodes

PROG = "envuidgid"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) < 3:
        exitcodes.usage(PROG, "envuidgid account child")
    account, child = argv[1], argv[2:]
    try:
        pw = pwd.getpwnam(account)
    except (KeyError, ValueError):
        exitcodes.fatal(PROG, f"unknown account {account}")
    env = pathexec.env_with([("GID", str(pw.pw_gid)), ("UID", str(pw.pw_uid))])
    try:
        pathexec.run(child, env)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {child[0]}", err)
