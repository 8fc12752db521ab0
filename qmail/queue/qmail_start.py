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

import fcntl
import grp
import os
import pwd
import sys

from ucspi.runtime import launch

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

    def set_gid(self, group: str) -> None:
        if self.root_mode:
            os.setgroups([self.gid[group]])
            os.setgid(self.gid[group])

    def set_uid(self, user: str) -> None:
        if self.root_mode:
            os.setuid(self.uid[user])


def arrange(mapping: dict[int, int]) -> None:
    """Make each target descriptor a copy of its source, whatever the overlaps."""
    high = {target: fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, 32)
            for target, source in mapping.items()}
    for target, source in high.items():
        os.dup2(source, target)
    for source in high.values():
        os.close(source)


def start(argv: list[str], mapping: dict[int, int], keep: tuple[int, ...] = ()) -> None:
    """In a child: descriptors as mapping says, then run argv (never returns)."""
    try:
        arrange(mapping)
        launch.exec_program(argv, keep_fds=keep)
    except BaseException:
        pass
    os._exit(111)


def fork_child(identity: Identity, user: str | None, group: str | None,
               argv: list[str], mapping: dict[int, int], keep: tuple[int, ...] = ()) -> None:
    pid = os.fork()
    if pid:
        return
    try:
        if group:
            identity.set_gid(group)
        if user:
            identity.set_uid(user)
    except BaseException:
        os._exit(111)
    start(argv, mapping, keep)


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
        identity.set_gid("qmail")
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
        identity.set_uid("qmails")
    except (OSError, KeyError):
        return 111
    start(["qmail-send"],
          {0: log, 1: to_l[1], 2: from_l[0], 3: to_r[1], 4: from_r[0], 5: to_c[1],
           6: from_c[0], 7: to_t[1], 8: from_t[0]}, keep=(3, 4, 5, 6, 7, 8))
    return 111
