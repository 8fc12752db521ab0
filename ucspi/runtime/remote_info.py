"""RFC 1413 (ident) client: the $TCPREMOTEINFO look-up of tcpserver -r and tcpclient.

ident() connects from the local address of a connection to port 113 of its remote host,
sends `remote_port , local_port\\r\\n` and reads one line of answer. It accepts the answer
as ucspi-tcp 0.88's remoteinfo does, which is lenient by design:

  * spaces, tabs and CRs anywhere in the answer are dropped;
  * everything after the third colon, up to the newline, is the answer (so the
    `USERID` and opsys fields are not checked, and a reply such as
    `6193, 23 : ERROR : NO-USER` with fewer than three colons yields the empty string,
    which the C tools then put in $TCPREMOTEINFO as an empty value);
  * at most 257 bytes are kept (the answer is cut there, not rejected);
  * a connection that closes, fails or times out before the newline yields no answer.

The whole exchange (connect, request, answer) is bounded by `timeout` seconds.
Works for IPv4 and IPv6 addresses (the family is taken from remote_ip).
The answer is returned as a str made with os.fsdecode, so putting it in the environment
gives the program exactly the bytes the ident server sent (cut at a NUL byte, as a C
string would be).
"""

import errno
import os
import select
import socket
import time

IDENT_PORT = 113
MAX_ANSWER = 256  # remoteinfo.c stops once it holds more than this many bytes
_SKIPPED = b" \t\r"


def ident(local_ip: str, local_port: int, remote_ip: str, remote_port: int,
          timeout: float) -> str | None:
    """The remote host's answer about this connection, "" for an answer without a user
    field, or None on any failure or after timeout seconds."""
    deadline = time.monotonic() + max(timeout, 0)
    family = socket.AF_INET6 if ":" in remote_ip else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        return _exchange(sock, local_ip, local_port, remote_ip, remote_port, deadline)
    except OSError:
        return None
    finally:
        sock.close()


def parse_answer(data: bytes) -> bytes | None:
    """The answer remoteinfo.c extracts from what the server sent (None: no full line)."""
    return _feed([bytearray(), 0], data)


def _feed(state: list, data: bytes) -> bytes | None:
    """Take in more of the server's bytes; state is [kept bytes, colons seen].

    Returns the answer once it is complete, None while more is needed.
    """
    kept = state[0]
    for ch in data:
        if ch in _SKIPPED:
            continue
        if ch == 0x0A:
            return bytes(kept)
        if state[1] < 3:
            if ch == 0x3A:
                state[1] += 1
            continue
        kept.append(ch)
        if len(kept) > MAX_ANSWER:
            return bytes(kept)
    return None


def _wait(sock: socket.socket, deadline: float, write: bool) -> None:
    """Wait until sock is ready; raise TimeoutError past the deadline."""
    left = deadline - time.monotonic()
    if left < 0:
        left = 0
    poller = select.poll()
    poller.register(sock, select.POLLOUT if write else select.POLLIN)
    if not poller.poll(min(left * 1000, 2**31 - 1)):  # poll's limit
        raise TimeoutError(errno.ETIMEDOUT, "timed out")


def _exchange(sock, local_ip, local_port, remote_ip, remote_port, deadline) -> str | None:
    sock.setblocking(False)
    # Ask from the address of the connection in question: identd matches on the pair.
    sock.bind((local_ip, 0))
    err = sock.connect_ex((remote_ip, IDENT_PORT))
    if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
        return None
    if err:
        _wait(sock, deadline, write=True)
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            return None
    request = b"%d , %d\r\n" % (remote_port, local_port)
    while request:
        _wait(sock, deadline, write=True)
        request = request[sock.send(request):]
    state = [bytearray(), 0]
    while True:
        _wait(sock, deadline, write=False)
        data = sock.recv(128)
        if not data:
            return None
        answer = _feed(state, data)
        if answer is not None:
            return os.fsdecode(answer.split(b"\0", 1)[0])
