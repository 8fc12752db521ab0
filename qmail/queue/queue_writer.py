"""Writing one message into the queue: the protocol of qmail-queue.c, shared by
qmail-queue (writing directly) and qmail-queued (the injection service).

Order, each step with the exit code qmail-queue(8) gives when it fails:
    the installation root and ROOT/queue exist        61, 62
    pid/PID.TIME.TRY created exclusively                63
    its inode number N names mess/S/N (link, unlink)    64, 63
    Received line + message written and fsynced         53 (write), 54 (read)
    intd/S/N created exclusively                        65
    u uid, p pid, then the envelope copied and checked  91 (bad record), 11 (address
                                                        too long), 54 (ended early)
    intd fsynced, mess/S and intd/S directories fsynced 53
    intd/S/N linked to todo/S/N, todo/S fsynced          66, 53
    lock/trigger pulled (errors ignored)
Only after the todo link is on disk is the message visible to qmail-send and the caller
told 0. On every failure the files made so far are truncated and removed, so nothing
partial is ever visible; a crash leaves only mess/intd/pid debris without todo, which
qmail-send's cleanup removes.

The uid written to the Received line and intd is the caller's as given (qmail-queue: its
real uid; qmail-queued: the socket peer's, from the kernel).
"""

import os
import pwd
import time

from qmail.formats import date822, envelope
from qmail.queue import queue_layout
from ucspi.runtime import durable

ATTEMPTS = 5  # pid/ file names tried
CHUNK = 65536

# exit codes of qmail-queue(8) used here
NO_ROOT, NO_QUEUE = 61, 62
WRITE_ERROR, READ_ERROR = 53, 54
PID_TROUBLE, MESS_TROUBLE, INTD_TROUBLE, TODO_TROUBLE = 63, 64, 65, 66
BAD_ENVELOPE, ADDRESS_TOO_LONG = 91, 11


class QueueFailure(Exception):
    """Writing the message failed; .code is qmail-queue's exit code."""

    def __init__(self, code: int, why: str = ""):
        super().__init__(why or f"exit {code}")
        self.code = code


def special_uids() -> dict[int, str]:
    """uid -> wording for qmail's alias, qmaild and qmails users, those that exist."""
    found = {}
    for user, words in (("qmails", "for bounce"), ("qmaild", "from network"), ("alias", "by alias")):
        try:
            found[pwd.getpwnam(user).pw_uid] = words
        except KeyError:
            pass
    return found


def received_line(pid: int, uid: int, when: float, special: dict[int, str] | None = None) -> bytes:
    """qmail-queue's Received line, newline included."""
    special = special_uids() if special is None else special
    who = special.get(uid, f"by uid {uid}")
    return f"Received: (qmail {pid} invoked {who}); {date822.fmt(when)}\n".encode()


def _discard(fd: int, path: str) -> None:
    """Truncate and remove a partial file (qmail-queue's cleanup)."""
    try:
        os.ftruncate(fd, 0)
    except OSError:
        pass
    try:
        os.unlink(path)
    except OSError:
        pass


def _open_pid_file(qdir: str, pid: int, when: int) -> tuple[int, str]:
    for attempt in range(ATTEMPTS):
        name = queue_layout.pid_file(qdir, pid, when, attempt)
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NONBLOCK, 0o644), name
        except OSError:
            continue
    raise QueueFailure(PID_TROUBLE, "unable to create pid file")


def check_tree(root: str) -> str:
    """The queue directory of root; QueueFailure 61/62 when root or its queue is missing."""
    if not os.path.isdir(root):
        raise QueueFailure(NO_ROOT, "installation root missing")
    qdir = queue_layout.queue_dir(root)
    if not os.path.isdir(qdir):
        raise QueueFailure(NO_QUEUE, "queue missing")
    return qdir


def inject(qdir: str, read_message, read_envelope, uid: int, pid: int,
           when: float | None = None, special: dict[int, str] | None = None) -> int:
    """Write one message; returns its number. read_message()/read_envelope() return the
    next chunk, b"" at end, and raise OSError on read trouble. Raises QueueFailure."""
    when = time.time() if when is None else when
    received = received_line(pid, uid, when, special)
    messfd, pidname = _open_pid_file(qdir, pid, int(when))
    intdfd = -1
    messfn = intdfn = None
    try:
        try:
            num = os.fstat(messfd).st_ino
        except OSError:
            os.unlink(pidname)
            raise QueueFailure(PID_TROUBLE)
        messfn = queue_layout.mess(qdir, num)
        intdfn = queue_layout.intd(qdir, num)
        todofn = queue_layout.todo(qdir, num)
        try:
            os.link(pidname, messfn)
        except OSError:
            os.unlink(pidname)
            messfn = None
            raise QueueFailure(MESS_TROUBLE)
        try:
            os.unlink(pidname)
        except OSError:
            raise QueueFailure(PID_TROUBLE)

        _copy_message(messfd, received, read_message)
        try:
            os.fsync(messfd)  # the message is on disk before any envelope names it
        except OSError:
            raise QueueFailure(WRITE_ERROR)

        try:
            intdfd = os.open(intdfn, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError:
            intdfn = None
            raise QueueFailure(INTD_TROUBLE)
        _copy_envelope(intdfd, uid, pid, read_envelope)
        try:
            os.fsync(intdfd)  # the envelope is on disk before todo makes it visible
            durable.fsync_dir(messfn)  # mess/S/N's name survives a crash
        except OSError:
            raise QueueFailure(WRITE_ERROR)
        try:
            os.link(intdfn, todofn)
        except OSError:
            raise QueueFailure(TODO_TROUBLE)
        try:
            durable.fsync_dir(todofn)  # the todo link is on disk before exit 0
        except OSError:
            os.unlink(todofn)
            raise QueueFailure(WRITE_ERROR)
    except BaseException:
        if intdfn is not None and intdfd != -1:
            _discard(intdfd, intdfn)
        if messfn is not None:
            _discard(messfd, messfn)
        raise
    finally:
        os.close(messfd)
        if intdfd != -1:
            os.close(intdfd)
    queue_layout.pull_trigger(qdir)
    return num


def _copy_message(messfd: int, received: bytes, read_message) -> None:
    pending = received
    while True:
        try:
            chunk = read_message()
        except OSError:
            raise QueueFailure(READ_ERROR)
        pending += chunk
        if len(pending) >= CHUNK or not chunk:
            try:
                durable.write_all(messfd, pending)
            except OSError:
                raise QueueFailure(WRITE_ERROR)
            pending = b""
        if not chunk:
            return


def _copy_envelope(intdfd: int, uid: int, pid: int, read_envelope) -> None:
    parser = envelope.Parser()
    while True:
        try:
            chunk = read_envelope()
        except OSError:
            raise QueueFailure(READ_ERROR)
        if not chunk:
            raise QueueFailure(READ_ERROR, "envelope ended early")
        try:
            if parser.feed(chunk):
                break
        except envelope.AddressTooLong:
            raise QueueFailure(ADDRESS_TOO_LONG)
        except envelope.EnvelopeError:
            raise QueueFailure(BAD_ENVELOPE)
    data = envelope.encode_todo(uid, pid, parser.sender, parser.recipients)
    try:
        durable.write_all(intdfd, data)
    except OSError:
        raise QueueFailure(WRITE_ERROR)
