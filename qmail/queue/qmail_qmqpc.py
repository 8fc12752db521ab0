"""qmail-qmqpc: queue a message on a QMQP server (qmail-qmqpc(8)), the mini-qmail queue.

    qmail-qmqpc < message 1< envelope     (as qmail-queue is run)

Speaks qmail-queue's interface: the message on descriptor 0, the envelope (Fsender\\0,
Trecipient\\0 ..., \\0) on descriptor 1. Sends both as one QMQP package to the first
server of control/qmqpservers that accepts a connection (port 628; each line an IPv4
address), and exits with the code qmail-queue would, so qmail-inject and qmail-smtpd
report it: 0 queued (K), 31 refused permanently (D), 71 refused temporarily (Z).

Other exit codes: 54 read error on the message or envelope, 55 control/qmqpservers
missing or unreadable (or no server listed), 56 no socket, 61 ROOT cannot be entered,
72 connection timed out / 73 refused (of the last server tried), 74 the connection broke
or stalled for 60 seconds after it was made, 91 malformed envelope.

Beyond qmail: a line "ADDRESS:PORT" names another port than 628 (for tests and
unprivileged set-ups). Environment: QMAIL_ROOT.
"""

import ipaddress
import os
import select
import socket
import sys

from qmail.config import control, install_root
from qmail.formats import netstring

PORT_QMQP = 628
CONNECT_TIMEOUT = 10
IO_TIMEOUT = 60

SUCCESS, PERMANENT, NOMEM, READ_ERROR, CONTROL, SOCKET, HOME = 0, 31, 51, 54, 55, 56, 61
TEMPORARY, TIMEOUT, REFUSED, CONNECTION, FORMAT = 71, 72, 73, 74, 91


class Exit(Exception):
    """Stop with this exit code."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            raise Exit(READ_ERROR)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def package(message: bytes, envelope: bytes) -> bytes:
    """The QMQP package for a message and a qmail-queue envelope; Exit(91) if malformed."""
    fields = envelope.split(b"\0")
    # The envelope is F, then T lines, then an empty line, each ending in \0.
    if len(fields) < 2 or not fields[0].startswith(b"F"):
        raise Exit(FORMAT)
    parts = [netstring.encode(message), netstring.encode(fields[0][1:])]
    for field in fields[1:-1]:  # the last piece is not \0-terminated: never a field
        if field == b"":
            break
        if not field.startswith(b"T"):
            raise Exit(FORMAT)
        parts.append(netstring.encode(field[1:]))
    else:
        raise Exit(FORMAT)  # no terminating empty field
    return netstring.encode(b"".join(parts))


def server_address(line: str) -> tuple[str, int] | None:
    """(IPv4 address, port) of a qmqpservers line; None for a line that is not one."""
    host, _, port = line.partition(":")
    try:
        ip = str(ipaddress.IPv4Address(host.strip()))
    except ValueError:
        return None
    if not port:
        return ip, PORT_QMQP
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return ip, int(port)


def send(server: tuple[str, int], data: bytes) -> int | None:
    """The exit code after talking to server, or None to try the next (Exit on a break)."""
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        raise Exit(SOCKET)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(server)
        except socket.timeout:
            return -TIMEOUT
        except OSError:
            return -REFUSED
        sock.setblocking(False)
        view = memoryview(data)
        while view:
            if not select.select([], [sock], [], IO_TIMEOUT)[1]:
                raise Exit(CONNECTION)
            try:
                view = view[sock.send(view):]
            except BlockingIOError:
                continue
            except OSError:
                raise Exit(CONNECTION)
        while True:
            if not select.select([sock], [], [], IO_TIMEOUT)[0]:
                raise Exit(CONNECTION)
            try:
                reply = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                raise Exit(CONNECTION)
            if not reply:
                raise Exit(CONNECTION)
            for ch in reply:
                if ch == 0x4B:
                    return SUCCESS
                if ch == 0x5A:
                    return TEMPORARY
                if ch == 0x44:
                    return PERMANENT
    finally:
        sock.close()


def run(root: str) -> int:
    if not os.path.isdir(root):
        return HOME
    try:
        servers = control.read_lines(root, "qmqpservers")
    except control.ControlTrouble:
        return CONTROL
    if servers is None:
        return CONTROL
    data = package(read_all(0), read_all(1))
    last = CONTROL
    for line in servers:
        server = server_address(line)
        if server is None:
            continue
        code = send(server, data)
        if code is not None and code >= 0:
            return code
        last = -code
    return last


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    try:
        return run(install_root.root())
    except Exit as stop:
        return stop.code
    except MemoryError:
        return NOMEM
