"""qmail-lspawn: schedule local deliveries (qmail-lspawn(8)).

Synopsis:
    qmail-lspawn defaultdelivery

Speaks qmail-send's spawn protocol on descriptors 0 and 1 (qmail/queue/spawn_protocol.py).
For each recipient `local@domain` it finds the user the address belongs to, in the
book's order: ROOT/users/cdb (qmail-newu's table of users/assign), then qmail-getpw's
rules (a system account, else the alias user with the whole local part as extension),
and runs `qmail-local -- user home local dash ext domain sender defaultdelivery` as that
user, with the message on descriptor 0; qmail-local's exit status and output become the
K/Z/D report qmail-send logs. The recipient <> (an empty local part) is a no-op success.

Root mode (started as root, the queue belonging to qmail's queue user): each qmail-local
runs with the user's uid and gid (and only that group). Embedded mode (the queue belongs
to the user running qmail-lspawn, as in a tree qmail-install --embedded made): every
delivery runs as that user, who owns the whole tree. In either mode a delivery that would
run as uid 0 is refused ("Not allowed to perform deliveries as root"), an embedded tree
owned by root included.

qmail-local is ROOT/bin/qmail-local when installed, else this suite's; it is warm-started
(imported once here, run in each forked child) unless UCSPI_WARMSTART=0.

Exit codes: 100 without defaultdelivery; 111 when ROOT/queue/mess is unusable; otherwise 0
once qmail-send closes the protocol and the deliveries have ended.

Environment: $QMAIL_ROOT (default /var/qmail), passed on to qmail-local.
"""

import errno
import os
import sys

from qmail.config import install_root, users
from qmail.queue import spawn_protocol
from ucspi.runtime import exitcodes, launch, privileges

TRUNCREPORT = 3000


def find_user(local: bytes) -> users.Assignment:
    """users/cdb, then qmail-getpw's rules; exits with qmail-lspawn's codes on trouble."""
    try:
        with open("users/cdb", "rb") as f:
            table = f.read()
    except FileNotFoundError:
        table = None
    except OSError:
        raise SystemExit(spawn_protocol.QLX_CDB) from None
    if table is not None:
        try:
            found = users.lookup_cdb(table, local)
        except ValueError:
            raise SystemExit(spawn_protocol.QLX_CDB) from None
        if found is not None:
            return found
    try:
        found = users.getpw(local)
    except users.Trouble:
        raise SystemExit(spawn_protocol.QLX_NFS) from None
    if found is None:
        raise SystemExit(spawn_protocol.QLX_NOALIAS)
    return found


def embedded(root: str) -> bool:
    """Whether this is an embedded tree: its queue belongs to whoever runs us."""
    try:
        return os.stat(os.path.join(root, "queue", "mess")).st_uid == os.geteuid()
    except OSError:
        return False


def become(uid: int, gid: int) -> None:
    """Root mode: the user's uid and gid, no other group."""
    if os.getuid() != 0:
        return  # an ordinary user cannot switch: the delivery runs as that user
    try:
        privileges.become(uid, gid, [gid])
    except privileges.PrivilegeError:
        raise SystemExit(spawn_protocol.QLX_USAGE) from None


def make_child(root: str, program: str, defaultdelivery: str):
    def child(request: spawn_protocol.Request) -> int:
        local = request.recip[:request.at]
        if not local:
            return 0  # <>: nothing to deliver
        try:
            os.chdir(root)
        except OSError:
            return spawn_protocol.QLX_USAGE
        a = find_user(local)
        if not embedded(root):
            become(a.uid, a.gid)
        if os.getuid() == 0:
            # qmail's rule in every mode: an embedded tree that root owns included
            return spawn_protocol.QLX_ROOT
        argv = [program, "--", os.fsdecode(a.user), os.fsdecode(a.home),
                os.fsdecode(local), os.fsdecode(a.dash), os.fsdecode(a.ext),
                os.fsdecode(request.recip[request.at + 1:]), os.fsdecode(request.sender),
                defaultdelivery]
        env = dict(os.environ)
        env[install_root.VARIABLE] = root
        try:
            launch.exec_program(argv, env, keep_fds=())  # 0, 1, 2: the message, the report, the log
        except OSError as err:
            if exitcodes.error_temp(err.errno or errno.EIO):
                return spawn_protocol.QLX_EXECSOFT
            return spawn_protocol.QLX_EXECHARD
        return spawn_protocol.QLX_EXECHARD
    return child


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) < 2:
        return 100
    root = os.path.abspath(install_root.root())
    program = install_root.program("qmail-local", root)
    launch.preload(program)
    return spawn_protocol.serve(make_child(root, program, argv[1]),
                                spawn_protocol.local_report, truncreport=TRUNCREPORT,
                                root=root)
