"""qmail-queued: the queue-injection service (docs/architecture.md, "Privilege separation"), one connection.

Synopsis (under unixserver, as qmailq in root mode):
    unixserver -p 0666 ROOT/run/qmail-queued.sock qmail-queued

qmail-queue cannot be setuid: a caller that may not write the queue (qmaild's qmail-smtpd,
a local user's sendmail) hands the message to this service instead, and it writes the
queue with the steps of qmail-queue (qmail/queue/queue_writer.py). It trusts nothing from the
client: the uid written into the Received line and the envelope is UNIXREMOTEEUID, which
unixserver took from the kernel (SO_PEERCRED); the time is its own; every byte of the
framing and the envelope is checked.

Wire format, client to service: the message as netstring chunks ("LEN:DATA,"), the empty
chunk "0:," ending it, then the envelope exactly as qmail-queue reads it on descriptor 1.
Service to client: qmail-queue's exit code in decimal and a newline ("0\\n" = queued).
A malformed framing is answered 54 (read error), like a message that cannot be read.

Exit codes: 0 after answering; 111 when the answer cannot be written.
Environment: QMAIL_ROOT; UNIXREMOTEEUID (set by unixserver; without it: answer 81).
"""

import os
import signal
import sys

from qmail.config import install_root
from qmail.queue import qmail_queue, queue_writer
from ucspi.runtime import durable

MAX_CHUNK_DIGITS = 10
INTERNAL_BUG = 81


class FramingError(OSError):
    """The client's chunk framing is malformed (treated as a read error)."""


class Reader:
    """Buffered reads from descriptor 0, socket order: framed message, then envelope."""

    def __init__(self, fd: int = 0):
        self.fd = fd
        self.buffer = b""

    def _fill(self) -> bool:
        data = os.read(self.fd, queue_writer.CHUNK)
        self.buffer += data
        return bool(data)

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            if not self._fill():
                raise FramingError("connection closed inside a chunk")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def message_chunk(self) -> bytes:
        """The next message chunk, b"" after the end marker."""
        while b":" not in self.buffer[:MAX_CHUNK_DIGITS + 1]:
            if len(self.buffer) > MAX_CHUNK_DIGITS or not self._fill():
                raise FramingError("bad chunk length")
        digits, self.buffer = self.buffer.split(b":", 1)
        if not digits.isdigit() or not digits.isascii():
            raise FramingError("bad chunk length")
        data = self._take(int(digits))
        if self._take(1) != b",":
            raise FramingError("chunk not terminated by a comma")
        return data

    def envelope_chunk(self) -> bytes:
        if not self.buffer:
            self._fill()
        data, self.buffer = self.buffer, b""
        return data


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    signal.signal(signal.SIGALRM, lambda *_: os._exit(qmail_queue.TIMEOUT))
    signal.alarm(qmail_queue.DEATH)
    os.umask(0o033)
    code = serve(Reader(0))
    try:
        durable.write_all(1, b"%d\n" % code)
    except OSError:
        return 111
    return 0


def serve(reader: Reader) -> int:
    peer = os.environ.get("UNIXREMOTEEUID", "")
    if not peer.isdigit():
        return INTERNAL_BUG
    try:
        qdir = queue_writer.check_tree(install_root.root())
        queue_writer.inject(qdir, reader.message_chunk, reader.envelope_chunk,
                            int(peer), os.getpid())
        return 0
    except queue_writer.QueueFailure as failure:
        return failure.code
    except MemoryError:
        return qmail_queue.OUT_OF_MEMORY
    except Exception:
        return INTERNAL_BUG
