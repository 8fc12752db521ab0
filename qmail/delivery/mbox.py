"""mbox files (mbox(5)) as qmail writes them.

Each message is a `From_` line (`From SENDER DATE`, the date as ctime in UTC), the
message with every line that matches `>*From ` given one more `>`, a newline added if
the last line lacks one, and a blank line. Appending takes an exclusive flock (waiting at
most 30 seconds), remembers the old size, writes, and fsyncs; on any failure the file is
truncated back to the old size, so a reader never sees half a message.
"""

import fcntl
import os
import signal
import time

from qmail.formats import date822
from ucspi.runtime import durable

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
LOCK_SECONDS = 30
CHUNK = 65536


class MboxError(Exception):
    """Appending failed; kind is open, lock (held 30 s by another), read or write."""

    def __init__(self, kind: str, err: OSError | None = None):
        super().__init__(kind, err)
        self.kind = kind
        self.err = err


class _LockTimeout(Exception):
    pass


def ctime(seconds: int) -> str:
    """`Wed Nov 05 05:03:46 2026`: qmail's myctime, in UTC, day of month zero-padded."""
    t = time.gmtime(seconds)
    return (f"{DAYS[t.tm_wday]} {date822.MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_year}")


def from_line(sender: bytes, seconds: int) -> bytes:
    """The From_ line with its newline; blanks in the sender become `-`, <> MAILER-DAEMON."""
    if sender:
        who = sender.replace(b" ", b"-").replace(b"\t", b"-").replace(b"\n", b"-")
    else:
        who = b"MAILER-DAEMON"
    return b"From " + who + b" " + ctime(seconds).encode() + b"\n"


def needs_quote(line: bytes) -> bool:
    """Whether a message line must get a `>`: `From ` after any number of `>`."""
    return line.lstrip(b">").startswith(b"From ")


def quote(message: bytes) -> bytes:
    """A whole message in mbox form (without From_ line): quoted, ending in a blank line."""
    lines = message.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    out = [b">" + line if needs_quote(line) else line for line in lines]
    return b"".join(line + b"\n" for line in out) + b"\n"


def _lines(fd: int):
    """The lines of the message on fd from its start, newline kept; raises MboxError(read)."""
    offset = 0
    pending = b""
    while True:
        try:
            chunk = os.pread(fd, CHUNK, offset)
        except OSError as err:
            raise MboxError("read", err) from err
        if not chunk:
            if pending:
                yield pending
            return
        offset += len(chunk)
        pending += chunk
        start = 0
        while True:
            cut = pending.find(b"\n", start)
            if cut < 0:
                break
            yield pending[start:cut + 1]
            start = cut + 1
        pending = pending[start:]


def _lock(fd: int, seconds: int) -> bool:
    """Exclusive flock within seconds: True if locked, False if locking is unsupported."""
    def expired(signum, frame):
        raise _LockTimeout()
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    except _LockTimeout:
        raise MboxError("lock") from None
    except OSError:
        return False
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def append(path: str, head: bytes, source_fd: int, mode: int = 0o600,
           lock_seconds: int = LOCK_SECONDS) -> None:
    """Append head (From_ line and header lines) + the quoted message on source_fd to path.

    Raises MboxError; after a read or write failure the file has its old size again.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, mode)
    except OSError as err:
        raise MboxError("open", err) from err
    try:
        locked = _lock(fd, lock_seconds)
        old_size = os.lseek(fd, 0, os.SEEK_END)
        try:
            _write_message(fd, head, source_fd)
            os.fsync(fd)  # the whole message is on disk before we report success
        except MboxError:
            if locked:
                os.ftruncate(fd, old_size)
            raise
        except OSError as err:
            if locked:
                os.ftruncate(fd, old_size)
            raise MboxError("write", err) from err
    finally:
        os.close(fd)


def _write_message(fd: int, head: bytes, source_fd: int) -> None:
    buffer = bytearray(head)
    last = b"\n"
    for line in _lines(source_fd):
        if needs_quote(line):
            buffer += b">"
        buffer += line
        last = line
        if len(buffer) >= CHUNK:
            durable.write_all(fd, bytes(buffer))
            buffer.clear()
    if not last.endswith(b"\n"):
        buffer += b"\n"
    buffer += b"\n"
    durable.write_all(fd, bytes(buffer))
