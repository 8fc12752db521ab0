"""qmail-queue: queue a mail message for delivery (qmail-queue(8)).

Synopsis:
    qmail-queue        (message on descriptor 0, envelope on descriptor 1)

Reads a message on descriptor 0, then an envelope on descriptor 1
(F sender \\0, T recipient \\0 ..., \\0), adds the line
    Received: (qmail PID invoked by uid UID); DATE
("from network" for qmaild, "by alias" for alias, "for bounce" for qmails) and puts the
message into ROOT/queue (qmail/queue/queue_writer.py has the steps).

Who writes: when the caller may write the queue (root, the queue's owner qmailq, or the
embedded-mode user who owns the whole tree), qmail-queue writes it directly; root first
drops to qmailq and group qmail when those exist. Any other caller hands the message to
the injection service qmail-queued over ROOT/run/qmail-queued.sock, which takes the uid
from the socket's peer credentials (docs/architecture.md, "Privilege separation"). If the service cannot be
reached, qmail-queue exits 74, a temporary failure, so nothing is lost.

Exit codes (qmail-queue(8)): 0 queued; 11 address too long; 51 out of memory; 52 timeout
(24 hours); 53 write error or disk full; 54 unable to read the message or envelope;
61 trouble with the installation root; 62 with the queue directory; 63-66 trouble creating
files in the queue; 74 the injection service could not be reached or failed; 81 internal
bug; 91 envelope format error.

Environment: QMAIL_ROOT (default /var/qmail).
"""

import grp
import os
import pwd
import sys

from qmail.config import install_root
from qmail.formats import envelope
from qmail.queue import queue_layout, queue_writer
from ucspi.runtime import cpython, privileges  # cpython: signal without enum, 12 ms less cold

DEATH = 86400  # qmail-queue gives up after 24 hours, well below qmail-send's 36
SERVICE_FAILED = 74  # as qmail-qmqpc when no server takes the message
OUT_OF_MEMORY, TIMEOUT, INTERNAL_BUG = 51, 52, 81


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    cpython.setsignal(cpython.SIGALRM, lambda *_: os._exit(TIMEOUT))  # no cleanup, as qmail
    cpython.alarm(DEATH)
    os.umask(0o033)
    uid, pid = os.getuid(), os.getpid()
    try:
        root = install_root.root()
        qdir = queue_writer.check_tree(root)
        if may_write_directly(qdir):
            queue_writer.inject(qdir, lambda: os.read(0, queue_writer.CHUNK),
                                lambda: os.read(1, queue_writer.CHUNK), uid, pid)
            return 0
        return through_service(root)
    except queue_writer.QueueFailure as failure:
        return failure.code
    except MemoryError:
        return OUT_OF_MEMORY
    except Exception:
        return INTERNAL_BUG


def may_write_directly(qdir: str) -> bool:
    """Whether this process writes the queue itself; as root, become qmailq first."""
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("qmailq")
            group = grp.getgrnam("qmail").gr_gid
        except KeyError:
            return True
        if os.stat(qdir).st_uid == owner.pw_uid:
            privileges.become(owner.pw_uid, group, [])
        return True
    return os.access(os.path.join(qdir, "pid"), os.W_OK | os.X_OK)


def through_service(root: str) -> int:
    """Hand message and envelope to qmail-queued; its one-line answer is our exit code.

    Wire format (client to service): the message as netstring chunks ending with "0:,",
    then the envelope bytes; the service answers "CODE\\n".
    """
    # Imported here: only callers without queue rights pay for it (15 ms cold); a warm
    # parent such as qmail-smtpd has it loaded already.
    import socket
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(queue_layout.service_socket(root))
    except OSError:
        sock.close()
        return SERVICE_FAILED
    try:
        while True:
            try:
                chunk = os.read(0, queue_writer.CHUNK)
            except OSError:
                return queue_writer.READ_ERROR
            sock.sendall(b"%d:%s," % (len(chunk), chunk))
            if not chunk:
                break
        parser = envelope.Parser()
        while True:
            try:
                chunk = os.read(1, queue_writer.CHUNK)
            except OSError:
                return queue_writer.READ_ERROR
            if not chunk:
                return queue_writer.READ_ERROR
            try:
                done = parser.feed(chunk)
            except envelope.AddressTooLong:
                return queue_writer.ADDRESS_TOO_LONG
            except envelope.EnvelopeError:
                return queue_writer.BAD_ENVELOPE
            if done:
                break
        sock.sendall(envelope.encode(parser.sender, parser.recipients))
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while len(answer) < 16:
            data = sock.recv(16)
            if not data:
                break
            answer += data
        line = answer.split(b"\n", 1)[0]
        if not answer.endswith(b"\n") or not line.isdigit():
            return SERVICE_FAILED
        return int(line)
    except OSError:
        return SERVICE_FAILED
    finally:
        sock.close()
