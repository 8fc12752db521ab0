"""The on-disk queue of qmail 1.03 (qmail INTERNALS, qmail-queue(8), hier.c): the only
module that builds queue paths.

ROOT/queue/
    pid/                 qmail-queue's temporary file, named pid.time.try
    mess/S/N             the message (S = N % SPLIT); N is the inode number of the pid/ file
    intd/S/N             envelope being written by qmail-queue
    todo/S/N             envelope of a message complete and waiting for qmail-send
    info/S/N             sender, written by qmail-send
    local/S/N remote/S/N per-recipient delivery state, written by qmail-send
    bounce/N             accumulated bounce text
    lock/sendmutex       qmail-send's single-instance lock
    lock/trigger         FIFO: qmail-queue writes a byte to wake qmail-send
    lock/tcpto           qmail-remote's timeout table (1024 bytes)

intd and todo are split like mess (the "big-todo" layout that qmail-todo uses so that a
huge todo directory does not slow qmail-send down); the rest is qmail 1.03's.

A message is visible to qmail-send only once todo/S/N exists; that link is made last.
Debris of an interrupted qmail-queue is mess/S/N and possibly intd/S/N without todo/S/N,
and pid/ files: qmail-send's cleanup removes them once older than DEBRIS_AGE.
"""

import os

SPLIT = 23  # conf-split
DEBRIS_AGE = 129600  # qmail-send's OSSIFIED: 36 hours
TCPTO_SIZE = 1024


class Dir:
    """A queue directory: name, owner (qmail user name), mode, split into SPLIT subdirs.
    (A plain class: qmail-queue's cold start should not import typing or dataclasses.)"""
    __slots__ = ("name", "owner", "mode", "split")

    def __init__(self, name: str, owner: str, mode: int, split: bool):
        self.name, self.owner, self.mode, self.split = name, owner, mode, split


# Owners and modes as qmail's `make setup` gives them (group qmail throughout).
DIRS = (
    Dir("", "qmailq", 0o750, False),
    Dir("lock", "qmailq", 0o750, False),
    Dir("pid", "qmailq", 0o700, False),
    Dir("mess", "qmailq", 0o750, True),
    Dir("intd", "qmailq", 0o700, True),
    Dir("todo", "qmailq", 0o750, True),
    Dir("info", "qmails", 0o700, True),
    Dir("local", "qmails", 0o700, True),
    Dir("remote", "qmails", 0o700, True),
    Dir("bounce", "qmails", 0o700, False),
)

# lock/ files: name, owner, mode, kind ("file", "fifo", "tcpto").
LOCK_FILES = (
    ("sendmutex", "qmails", 0o600, "file"),
    ("tcpto", "qmailr", 0o644, "tcpto"),
    ("trigger", "qmails", 0o622, "fifo"),
)

SPLIT_DIRS = tuple(d.name for d in DIRS if d.split)


def queue_dir(root: str) -> str:
    return os.path.join(root, "queue")


def split_of(num: int) -> int:
    return num % SPLIT


def path(qdir: str, kind: str, num: int) -> str:
    """qdir/kind/S/N for split directories, qdir/kind/N otherwise."""
    if kind in SPLIT_DIRS:
        return os.path.join(qdir, kind, str(num % SPLIT), str(num))
    return os.path.join(qdir, kind, str(num))


def mess(qdir: str, num: int) -> str:
    return path(qdir, "mess", num)


def intd(qdir: str, num: int) -> str:
    return path(qdir, "intd", num)


def todo(qdir: str, num: int) -> str:
    return path(qdir, "todo", num)


def info(qdir: str, num: int) -> str:
    return path(qdir, "info", num)


def local(qdir: str, num: int) -> str:
    return path(qdir, "local", num)


def remote(qdir: str, num: int) -> str:
    return path(qdir, "remote", num)


def bounce(qdir: str, num: int) -> str:
    return path(qdir, "bounce", num)


def pid_file(qdir: str, pid: int, when: int, attempt: int) -> str:
    return os.path.join(qdir, "pid", f"{pid}.{when}.{attempt}")


def trigger(qdir: str) -> str:
    return os.path.join(qdir, "lock", "trigger")


def sendmutex(qdir: str) -> str:
    return os.path.join(qdir, "lock", "sendmutex")


def tcpto(qdir: str) -> str:
    return os.path.join(qdir, "lock", "tcpto")


def all_dirs(qdir: str):
    """(path, Dir) for every queue directory, split subdirectories included, parents first."""
    for d in DIRS:
        top = os.path.join(qdir, d.name) if d.name else qdir
        yield top, d
        if d.split:
            for i in range(SPLIT):
                yield os.path.join(top, str(i)), d


def numbers(qdir: str, kind: str):
    """Every message number present in qdir/kind (split or not), in no particular order."""
    top = os.path.join(qdir, kind)
    dirs = [os.path.join(top, str(i)) for i in range(SPLIT)] if kind in SPLIT_DIRS else [top]
    for directory in dirs:
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            continue
        for name in names:
            if name.isdigit():
                yield int(name)


def pull_trigger(qdir: str) -> None:
    """Wake qmail-send: one byte into lock/trigger, without blocking; no reader is fine."""
    try:
        fd = os.open(trigger(qdir), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fd, b"\0")
    except OSError:
        pass
    finally:
        os.close(fd)


def service_socket(root: str) -> str:
    """The injection service's socket (docs/architecture.md, "Privilege separation"): ROOT/run/qmail-queued.sock."""
    return os.path.join(root, "run", "qmail-queued.sock")
