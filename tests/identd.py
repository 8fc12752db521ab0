"""A tiny fake RFC 1413 server for tests: listens on HOST:113 in a thread of the test,
records each request line and answers as told.

answer(request) returns the bytes to send for a request line (without CRLF), or one of
the behaviours SLOW (say nothing until the server is stopped) and CLOSE (close without
answering). Port 113 needs root: callers skip visibly otherwise.
"""

import os
import select
import socket
import threading

import pytest

SLOW = "slow"
CLOSE = "close"


def need_root() -> None:
    if os.getuid() != 0:
        pytest.skip("a fake identd on port 113 needs root")


def good(user: str):
    """The usual answer: `request : USERID : UNIX : user`."""
    return lambda request: request + b" : USERID : UNIX : " + user.encode() + b"\r\n"


class FakeIdentd:
    """Context manager: a thread answering ident requests on host:113."""

    def __init__(self, answer, host: str = "127.0.0.1"):
        self.answer = answer
        self.requests: list[bytes] = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 113))
        self.listener.listen(16)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(10)
        self.listener.close()

    def _serve(self) -> None:
        held = []
        while not self.stopping.is_set():
            ready, _, _ = select.select([self.listener], [], [], 0.05)
            if not ready:
                continue
            conn, _ = self.listener.accept()
            conn.settimeout(5)
            line = b""
            try:
                while b"\n" not in line and len(line) < 1000:
                    data = conn.recv(1000)
                    if not data:
                        break
                    line += data
            except OSError:
                pass
            request = line.split(b"\r\n")[0].split(b"\n")[0]
            self.requests.append(line)
            reply = self.answer(request)
            if reply == SLOW:
                held.append(conn)  # answered never; closed when the server stops
                continue
            if reply != CLOSE:
                try:
                    conn.sendall(reply)
                except OSError:
                    pass
            conn.close()
        for conn in held:
            conn.close()
