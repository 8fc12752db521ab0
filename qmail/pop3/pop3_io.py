"""POP3 session I/O shared by qmail-popup and qmail-pop3d: timed reads and writes, and
qmail's command loop (commands.c).

Timeouts: every read and every write waits at most `timeout` seconds (1200 in both
programs, as qmail's timeoutread/timeoutwrite); a read that times out, fails or meets the
end of input raises Closed, which the programs turn into their die() (qmail-popup exits
1, qmail-pop3d 0).

Lines: a command line ends at LF; one CR before it is dropped; the line is cut at its
first NUL (qmail handles it as a C string). qmail reads a line of any length; we keep the
first LINE_LIMIT bytes and drop the rest of an overlong line (a verb and its arguments
are far shorter; qmail-popup's record is refused by checkpassword beyond 512 bytes), so a
client cannot make the server hold more than that.

exact=True (qmail-popup): never read past the end of the current line. On a socket the
line is found with MSG_PEEK and only it is consumed; elsewhere (a pipe from sslserver)
bytes are read one at a time. What the client sends after PASS or APOP is thus left for
the subprogram (qmail-pop3d), which makes PIPELINING safe across the login, and nothing
sent in cleartext after STLS is ever taken as a command (the STARTTLS command-injection
problem cannot arise).

Output is buffered and flushed before waiting for input, after BUFFER bytes, and at
flush(); a command stream of 10,000 pipelined commands gets its replies in large writes.
"""

from __future__ import annotations

import os
import select
import socket
import stat

TIMEOUT = 1200
LINE_LIMIT = 65536
BUFFER = 16384
CHUNK = 65536


class Closed(Exception):
    """The input ended, failed or timed out, or the output failed or timed out."""


def _socket_for(fd: int):
    """A socket object over a duplicate of fd when fd is a socket, else None."""
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        return socket.socket(fileno=os.dup(fd))
    except OSError:
        return None


class Conn:
    def __init__(self, rfd: int = 0, wfd: int = 1, timeout: float | None = None,
                 exact: bool = False):
        self.timeout = TIMEOUT if timeout is None else timeout
        self.exact = exact
        self.pending = bytearray()  # output not yet written
        self.buffer = bytearray()   # input read but not yet used
        self.use(rfd, wfd)

    def use(self, rfd: int, wfd: int) -> None:
        """Read from rfd and write to wfd from now on (STLS: sslserver's descriptors)."""
        self.rfd, self.wfd = rfd, wfd
        self.rsock = _socket_for(rfd)
        self.wsock = self.rsock if wfd == rfd else _socket_for(wfd)
        self.buffer.clear()

    # --- output ---

    def out(self, data: bytes) -> None:
        self.pending += data
        if len(self.pending) >= BUFFER:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            data, self.pending = bytes(self.pending), bytearray()
            self.write(data)

    def write(self, data) -> None:
        """Write data now (after what is pending), waiting at most timeout for each part."""
        if self.pending:
            data, self.pending = bytes(self.pending) + bytes(data), bytearray()
        view = memoryview(data)
        poller = select.poll()
        poller.register(self.wfd, select.POLLOUT)
        while view:
            try:
                if self.wsock is not None:
                    # never blocks: a client that stops reading costs one timeout
                    sent = self.wsock.send(view[:CHUNK], socket.MSG_DONTWAIT)
                else:
                    sent = os.write(self.wfd, view[:CHUNK])
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                raise Closed() from None
            view = view[sent:]
            if view and sent == 0 and not poller.poll(self.timeout * 1000):
                raise Closed()

    # --- input ---

    def _wait_readable(self) -> None:
        self.flush()
        poller = select.poll()
        poller.register(self.rfd, select.POLLIN)
        while True:
            try:
                if not poller.poll(self.timeout * 1000):
                    raise Closed()
                return
            except InterruptedError:
                continue

    def _read(self, size: int) -> bytes:
        """Up to size bytes (at least one), after waiting; Closed at the end."""
        self._wait_readable()
        try:
            data = os.read(self.rfd, size)
        except OSError:
            raise Closed() from None
        if not data:
            raise Closed()
        return data

    def _take(self, size: int) -> bytes:
        """exact mode: the next bytes of input, never more than size, nor more than
        up to and including the next LF."""
        if self.rsock is not None:
            while True:
                try:
                    peek = self.rsock.recv(min(size, CHUNK), socket.MSG_PEEK | socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    self._wait_readable()
                    continue
                except OSError:
                    raise Closed() from None
                if not peek:
                    raise Closed()
                end = peek.find(b"\n")
                want = len(peek) if end < 0 else end + 1
                try:
                    data = self.rsock.recv(want)
                except OSError:
                    raise Closed() from None
                if not data:
                    raise Closed()
                return data
        return self._read(1)

    def readline(self) -> bytes:
        """The next command line (see the module docstring); raises Closed."""
        line = bytearray()
        dropping = False
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                piece = self.buffer[:end]
                del self.buffer[:end + 1]
                if not dropping:
                    line += piece[:LINE_LIMIT - len(line)]
                break
            if not dropping:
                line += self.buffer[:LINE_LIMIT - len(line)]
                dropping = len(line) >= LINE_LIMIT
            self.buffer.clear()
            if self.exact and not dropping:
                self.buffer += self._take(LINE_LIMIT + 1 - len(line))
            else:
                # not exact, or the rest of an overlong line: read in bulk (a pipe in
                # exact mode may then hold what follows; qmail-popup's own buffer did)
                self.buffer += self._read(CHUNK)
        if line.endswith(b"\r"):
            del line[-1]
        nul = line.find(b"\0")
        if nul >= 0:
            del line[nul:]
        return bytes(line)

    def buffered(self) -> bool:
        """Whether input beyond the current line has been read."""
        return bool(self.buffer)


def split(line: bytes) -> tuple[bytes, bytes]:
    """(verb in lower case, argument): the verb ends at the first space, the argument
    starts after the spaces that follow it (commands.c)."""
    verb, _, arg = line.partition(b" ")
    return verb.lower(), arg.lstrip(b" ")


def commands(conn: Conn, table: dict, default) -> None:
    """qmail's command loop: each line's verb picks a handler of table (default for any
    other), called with the argument; returns when the input ends (Closed)."""
    try:
        while True:
            verb, arg = split(conn.readline())
            table.get(verb, default)(arg)
    except Closed:
        return
