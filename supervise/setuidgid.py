"""setuidgid: run a program under an account's uid and gid (daemontools 0.76).

Synopsis:
    setuidgid account child ...

Sets the supplementary groups to the account's primary gid alone, then the gid, then
the uid, and runs child (warm when it is one of ours, exec'd otherwise).

Exit codes: 100 usage; 111 unknown account, cannot setgid or setuid, cannot run child;
otherwise child's.
Files: the password database (getpwnam). Environment: PATH finds child.
"""

import sys

from supervise import pathexec
from ucspi.runtime import exitcodes, launch, privileges, sgetopt

PROG = "setuidgid"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    pw = pathexec.account(PROG, sgetopt.operands(argv, 2, PROG, "setuidgid account child")[0])
    child = argv[2:]
    # read before the uid changes: /proc/self is the old uid's until exec
    env = launch.environ()
    pathexec.prepare(child, env)
    try:
        # as 0.76's prot_gid: the primary group is the only supplementary group
        privileges.become(pw.pw_uid, pw.pw_gid, [pw.pw_gid])
    except privileges.PrivilegeError as err:
        exitcodes.fatal_sys(PROG, f"unable to set{err.step}", err)
    try:
        pathexec.run(child, env)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {child[0]}", err)
