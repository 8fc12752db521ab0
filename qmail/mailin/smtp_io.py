"""The client connection of a qmail network server: descriptors 0 and 1, buffered as
qmail's substdio, every read and write bounded by the session timeout, and an optional
switch to TLS in the middle of the session (STARTTLS).

Replies are collected and sent when the server is about to wait for input (qmail's
saferead flushes first), so pipelined commands get their replies in one write.
Reads and writes raise Disconnected (end of input, a failed write) or TimedOut.
"""

import os
import select
import socket
import ssl
import time


class Disconnected(Exception):
    """The client went away (end of input or a failed read or write)."""


class TimedOut(Exception):
    """No progress within the timeout."""


class TlsFailed(Exception):
    """The TLS handshake did not complete."""


class Conn:
    def __init__(self, rfd: int = 0, wfd: int = 1, timeout: float = 1200):
        self.rfd = rfd
        self.wfd = wfd
        self.timeout = timeout
        self.inbuf = b""
        self.outbuf: list[bytes] = []
        self.tls: ssl.SSLSocket | None = None

    # output

    def out(self, data: bytes) -> None:
        self.outbuf.append(data)

    def flush(self) -> None:
        if not self.outbuf:
            return
        data = b"".join(self.outbuf)
        self.outbuf = []
        if self.tls is not None:
            try:
                self.tls.sendall(data)
            except (OSError, ValueError) as err:
                raise Disconnected(str(err)) from err
            return
        view = memoryview(data)
        while view:
            try:
                _, ready, _ = select.select([], [self.wfd], [], self.timeout)
                if not ready:
                    raise Disconnected("write timed out")
                view = view[os.write(self.wfd, view):]
            except OSError as err:
                raise Disconnected(str(err)) from err

    def close_after_reply(self, drain: float = 1.0) -> None:
        """Send pending replies, end our direction, and read (and drop) what the client
        still sends for at most drain seconds, so that closing with unread input does not
        reset the connection before the client has read the last reply."""
        try:
            self.flush()
        except Disconnected:
            return
        try:
            sock = socket.socket(fileno=os.dup(self.wfd))
        except OSError:
            return
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + drain
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                if not sock.recv(65536):
                    break
        except OSError:
            pass
        finally:
            sock.close()

    # input

    def wait_input(self, seconds: float) -> bool:
        """Whether input is already buffered or arrives within seconds (no reply flushed)."""
        if self.inbuf:
            return True
        if self.tls is not None and self.tls.pending():
            return True
        try:
            ready, _, _ = select.select([self.rfd], [], [], seconds)
        except OSError:
            return True
        return bool(ready)

    def _fill(self) -> None:
        """Read more input after sending pending replies."""
        self.flush()
        if self.tls is not None:
            try:
                data = self.tls.recv(65536)
            except socket.timeout as err:
                raise TimedOut() from err
            except (OSError, ValueError) as err:
                raise Disconnected(str(err)) from err
        else:
            try:
                ready, _, _ = select.select([self.rfd], [], [], self.timeout)
                if not ready:
                    raise TimedOut()
                data = os.read(self.rfd, 65536)
            except OSError as err:
                raise Disconnected(str(err)) from err
        if not data:
            raise Disconnected("end of input")
        self.inbuf += data

    def readline(self, limit: int) -> tuple[bytes, bool]:
        """The next line without its LF, and whether it was longer than limit (then only
        its first limit bytes are kept; the rest is read and dropped)."""
        kept = b""
        truncated = False
        while True:
            j = self.inbuf.find(b"\n")
            if j != -1:
                piece, self.inbuf = self.inbuf[:j], self.inbuf[j + 1:]
            else:
                piece, self.inbuf = self.inbuf, b""
            if not truncated:
                kept += piece
                if len(kept) > limit:
                    kept, truncated = kept[:limit], True
            if j != -1:
                return kept, truncated
            self._fill()

    def read_some(self) -> bytes:
        """Whatever input is buffered, or the next chunk from the client."""
        if not self.inbuf:
            self._fill()
        data, self.inbuf = self.inbuf, b""
        return data

    def unread(self, data: bytes) -> None:
        """Give back input read too far (pipelined commands after a DATA body)."""
        self.inbuf = data + self.inbuf

    # TLS

    def can_starttls(self) -> bool:
        """Whether the input is a stream socket TLS can run over (not a pipe) and TLS is off."""
        if self.tls is not None:
            return False
        try:
            fd = os.dup(self.rfd)
        except OSError:
            return False
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            return False
        try:
            return sock.type == socket.SOCK_STREAM
        finally:
            sock.close()

    def starttls(self, context: ssl.SSLContext) -> None:
        """Turn the connection into a TLS server connection (handshake included).

        Plain-text input already buffered is thrown away: a client may not pipeline
        commands past STARTTLS into the encrypted session (CVE-2011-0411).
        """
        self.flush()
        self.inbuf = b""
        sock = socket.socket(fileno=os.dup(self.rfd))
        sock.settimeout(self.timeout)
        try:
            self.tls = context.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError, ValueError) as err:
            sock.close()
            raise TlsFailed(str(err)) from err
