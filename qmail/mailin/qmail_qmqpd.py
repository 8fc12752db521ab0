"""qmail-qmqpd: receive mail via QMQP (qmail-qmqpd(8)), for mini-qmail clients.

    tcpserver -x qmqp.cdb 0 628 qmail-qmqpd

Reads one QMQP package on stdin: a netstring holding the message netstring, the sender
netstring and one netstring per recipient. The message goes to qmail-queue with a
Received line ("by LOCAL with QMQP"), and the answer is one netstring: "Kok TIME qp PID",
qmail-queue's Z/D text, or "Dsorry, I can't accept addresses like that (#5.1.3)" when
an address is 1000 bytes or longer or holds a NUL. QMQP has no relay control: tcpserver's
rules decide who may talk.

Exit codes: 0 after answering (or when the client goes away); 100 when the package is
malformed (a missing comma, more bytes than the outer length announced); 111 on a
resource problem (a length beyond 200000000, the 3600-second session limit).
Environment: TCPREMOTEHOST, TCPREMOTEINFO, TCPREMOTEIP, TCPLOCALHOST, TCPLOCALIP,
QMAILQUEUE, QMAIL_ROOT.
"""

import os
import sys

from qmail.config import install_root
from qmail.formats import netstring
from qmail.mailin import netstring_server, smtp_received
from qmail.queue import queue_client
from ucspi.runtime import exitcodes

SESSION_LIMIT = 3600
ADDRESS_LIMIT = 1000
FIRST_LENGTH_BUDGET = 100  # bytes the outer length may take, as qmail-qmqpd allows
BAD_ADDRESS = b"Dsorry, I can't accept addresses like that (#5.1.3)"


class Budget:
    """Bytes left in the package: reading past them is a protocol violation."""

    def __init__(self, reader: netstring.Reader, left: int):
        self.reader = reader
        self.left = left

    def spend(self, n: int) -> None:
        if n > self.left:
            raise netstring.Malformed("past the package length")
        self.left -= n

    def byte(self) -> int:
        self.spend(1)
        return self.reader.byte()

    def length(self) -> int:
        n = 0
        while True:
            ch = self.byte()
            if ch == 0x3A:
                return n
            if not 0x30 <= ch <= 0x39:
                raise netstring.Malformed("bad length digit")
            n = n * 10 + ch - 0x30
            if n > netstring.LENGTH_LIMIT:
                raise netstring.TooLong("length")

    def comma(self) -> None:
        if self.byte() != 0x2C:
            raise netstring.Malformed("missing comma")

    def address(self) -> bytes | None:
        """One address netstring; None when too long or holding a NUL."""
        n = self.length()
        self.spend(n)
        data = self.reader.take(n)
        self.comma()
        if n >= ADDRESS_LIMIT or b"\0" in data:
            return None
        return data


def serve(env) -> bytes:
    reader = netstring.Reader(0)
    outer = Budget(reader, FIRST_LENGTH_BUDGET)
    package = Budget(reader, outer.length())
    length = package.length()
    queue = queue_client.Queue(env=env)
    local, remoteip, remotehost, remoteinfo = netstring_server.identity(env)
    queue.put(smtp_received.received(b"QMQP", local, remoteip, remotehost, remoteinfo, None))
    package.spend(length)
    for piece in reader.chunks(length):
        queue.put(piece)
    package.comma()
    ok = True
    sender = package.address()
    if sender is None:
        queue.from_(b"")
        queue.fail()
        ok = False
    else:
        queue.from_(sender)
    while package.left:
        rcpt = package.address()
        if rcpt is None:
            queue.fail()
            ok = False
        else:
            queue.to(rcpt)
    Budget(reader, 1).comma()
    result = netstring_server.answer(queue.close(), queue.pid)
    return result if ok else BAD_ADDRESS


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    env = dict(os.environ)
    netstring_server.limit_session(SESSION_LIMIT)
    if not os.path.isdir(install_root.root(env)):
        return exitcodes.TEMPORARY
    try:
        answer = serve(env)
    except netstring.Incomplete:
        return 0
    except netstring.Malformed:
        return exitcodes.PERMANENT
    except netstring.TooLong:
        return exitcodes.TEMPORARY
    except OSError:
        return 0
    netstring_server.write_all(netstring.encode(answer))
    return 0
