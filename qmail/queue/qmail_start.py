"""qmail-start: turn on mail delivery (qmail-start(8)).

Synopsis: qmail-start [ defaultdelivery [ logger arg ... ] ]

Starts qmail-send with its helpers, connected by pipes: qmail-lspawn defaultdelivery
(default ./Mailbox), qmail-rspawn, qmail-clean, and qmail-todo with a qmail-clean of
its own.  With a logger, it is started with the log pipe on its standard input, and
qmail-send's log lines (written to qmail-send's descriptor 0) go to it; without one they
go to qmail-start's standard output.  The programs are found along $PATH.

Root mode (run as root): everything runs with group qmail; qmail-lspawn stays root (it
runs each delivery as its user), qmail-rspawn runs as qmailr, the qmail-cleans as qmailq,
qmail-send and qmail-todo as qmails, the logger as qmaill with group nofiles.
Embedded mode (any other user): everything runs as the current user.

Descriptors given to qmail-send: 0 log, 1/2 qmail-lspawn, 3/4 qmail-rspawn,
5/6 qmail-clean, 7/8 qmail-todo; to qmail-todo: 0/1 qmail-send, 4/5 its qmail-clean;
every helper's descriptor 2 is the log, so a crash report is not lost.

Exit codes: 111 if a user is missing, a pipe or process cannot be made, or a program
cannot be run.  Environment: PATH, QMAIL_ROOT (passed on).
"""

import grp
import os
import pwd
import sys

from ucspi.runtime import launch, privileges

DEFAULT_DELIVERY = "./Mailbox"
USERS = ("qmaill", "qmailq", "qmailr", "qmails")
GROUPS = ("qmail", "nofiles")
PROGRAMS = ("qmail-send", "qmail-todo", "qmail-clean", "qmail-lspawn", "qmail-rspawn")


class Identity:
    """Who each process runs as: None means "stay as we are" (embedded mode)."""

    def __init__(self, root_mode: bool):
        self.root_mode = root_mode
        if root_mode:
            self.uid = {name: pwd.getpwnam(name).pw_uid for name in USERS}
            self.gid = {name: grp.getgrnam(name).gr_gid for name in GROUPS}

    def ids(self, user: str | None, group: str | None) -> tuple | None:
        """What privileges.become takes for user and group (None: keep ours)."""
        if not self.root_mode or not (user or group):
            return None
        gid = self.gid[group] if group else None
        return (self.uid[user] if user else None, gid, None if gid is None else [gid])


def fork_child(identity: Identity, user: str | None, group: str | None,
               argv: list[str], mapping: dict[int, int], keep: tuple[int, ...] = ()) -> None:
    launch.spawn(argv, fds=mapping, keep_fds=keep, ids=identity.ids(user, group), complaint=None)


def preload_programs() -> None:
    """Import every program once, here: each child then starts warm, and a child that
    has dropped its privileges need not read the interpreter's files again."""
    for name in PROGRAMS:
        try:
            launch.preload(name)
        except Exception:
            pass  # it will be exec'd cold


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    try:
        os.chdir("/")
        os.umask(0o077)
        identity = Identity(os.getuid() == 0)
        preload_programs()
        ids = identity.ids(None, "qmail")
        if ids:
            privileges.become(*ids)
        for fd in range(2, 7):
            os.dup2(0, fd)  # so no pipe below lands on 0..6
        args = argv[1:]
        delivery = DEFAULT_DELIVERY
        if args:
            delivery, args = args[0], args[1:]
        if args:
            log_r, log_w = os.pipe()
            fork_child(identity, "qmaill", "nofiles", args, {0: log_r})
            os.close(log_r)
            os.dup2(log_w, 1)
            os.close(log_w)
        pipes = [os.pipe() for _ in range(10)]
        to_l, from_l, to_r, from_r, to_c, from_c, to_t, from_t, t_to_c, t_from_c = pipes
        log = 1
        fork_child(identity, None, None, ["qmail-lspawn", delivery],
                   {0: to_l[0], 1: from_l[1], 2: log})
        fork_child(identity, "qmailr", None, ["qmail-rspawn"],
                   {0: to_r[0], 1: from_r[1], 2: log})
        fork_child(identity, "qmailq", None, ["qmail-clean"],
                   {0: to_c[0], 1: from_c[1], 2: log})
        fork_child(identity, "qmailq", None, ["qmail-clean"],
                   {0: t_to_c[0], 1: t_from_c[1], 2: log})
        fork_child(identity, "qmails", None, ["qmail-todo"],
                   {0: to_t[0], 1: from_t[1], 2: log, 4: t_to_c[1], 5: t_from_c[0]}, keep=(4, 5))
        ids = identity.ids("qmails", None)
        if ids:
            privileges.become(*ids)
        launch.arrange({0: log, 1: to_l[1], 2: from_l[0], 3: to_r[1], 4: from_r[0], 5: to_c[1],
                        6: from_c[0], 7: to_t[1], 8: from_t[0]})
        launch.exec_program(["qmail-send"], keep_fds=(3, 4, 5, 6, 7, 8))
    except (OSError, KeyError):
        return 111
    return 111
