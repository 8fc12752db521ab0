"""The fork helper of tcpserver and unixserver: a quiet process that forks the children.

A Python parent that forks pays twice for it: the kernel copies its page tables, and
every page the parent then writes while a child still shares it (each reference count
it changes, each object it allocates) is copied again. A server loop touches a hundred
pages per connection that way. The helper ("zygote", as Android names it) is forked once,
after the program's module is loaded and privileges are dropped; the server hands it each
accepted connection over a socketpair (SCM_RIGHTS) and goes on accepting, while the
helper, whose loop touches almost nothing, forks the connection's child.

Helper to server: one 8-byte message per connection, (pid, wait status) when its child
has ended, or (0, 0) when it could not fork (it has said why). The server counts and
logs as if the children were its own: the -v lines and the -c limit are unchanged.
The children are the helper's, so their parent pid is the helper's; when the server
exits (SIGTERM) the helper sees the end of the socketpair and exits, and the children
run on, as a C tcpserver's do.
"""

from __future__ import annotations

import os
import select
import _signal
import signal
import socket
import struct

from ucspi import exitcodes, self_pipe, warmstart

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import NoReturn

_REPORT = struct.Struct("=ii")
FORK_FAILED = (0, 0)
MAX_PAYLOAD = 65535  # what the server worked out for a child, carried with its connection


class Zygote:
    """The server's end: hand connections over, collect the children's ends."""

    def __init__(self, pid: int, sock: socket.socket):
        self.pid = pid
        self.sock = sock
        self.outstanding = 0  # connections handed over whose end has not been reported

    def hand_over(self, conn: socket.socket, payload: bytes = b"") -> bool:
        """Give conn (and payload, for the child's handle) to the helper; False when the
        helper is gone."""
        try:
            socket.send_fds(self.sock, [b"c" + payload], [conn.fileno()])
        except OSError:
            return False
        self.outstanding += 1
        return True

    def reports(self) -> Iterator[tuple[int, int]]:
        """(pid, wait status) of each child that ended, FORK_FAILED for a connection
        dropped; stops when no report is waiting."""
        while True:
            try:
                data = self.sock.recv(_REPORT.size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if len(data) != _REPORT.size:
                return
            self.outstanding -= 1
            yield _REPORT.unpack(data)


def start(prog: str, listener: socket.socket,
          handle: Callable[[socket.socket, bytes], NoReturn]) -> Zygote | None:
    """Fork the helper; None when it cannot be started (the server forks itself then)."""
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError:
        return None
    warmstart.flush_std()
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        return None
    if pid == 0:
        try:
            ours.close()
            listener.close()
            _serve(prog, theirs, handle)
        except BaseException:
            pass
        os._exit(0)
    theirs.close()
    ours.setblocking(False)
    return Zygote(pid, ours)


def _serve(prog: str, sock: socket.socket, handle) -> NoReturn:
    """The helper's loop: fork a child per connection received, report each end."""
    warmstart.set_title(f"{prog}: fork helper")  # ps and pgrep tell it from the server
    # What warm children need is done here once: a fresh interpreter's signal
    # dispositions (SIGTERM default too) and their stdio streams.
    warmstart.prepare_signals()
    warmstart.prepare_socket_stdio()
    wake_r, wake_w = self_pipe.open_wakeup()
    signal.signal(signal.SIGCHLD, lambda sig, frame: None)
    waitpid, WNOHANG, pack = os.waitpid, os.WNOHANG, _REPORT.pack
    children = 0
    while True:
        try:
            ready, _, _ = select.select([sock, wake_r], [], [])
        except InterruptedError:
            ready = ()
        if wake_r in ready:
            self_pipe.drain(wake_r)
        while children:
            try:
                pid, status = waitpid(-1, WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children -= 1
            sock.send(pack(pid, status))
        if sock in ready:
            try:
                message, fds, _, _ = socket.recv_fds(sock, MAX_PAYLOAD + 1, 1)
            except InterruptedError:
                continue
            except OSError:
                fds = None
            if not fds:
                os._exit(0)  # the server is gone; the children run on
            fd = fds[0]
            warmstart.flush_std()
            try:
                pid = os.fork()
            except OSError as err:
                os.close(fd)
                exitcodes.warn_sys(prog, "dropping connection, unable to fork", err)
                sock.send(pack(*FORK_FAILED))
                continue
            if pid == 0:
                child(fd, (sock.fileno(), wake_r, wake_w), handle, message[1:])
            os.close(fd)
            children += 1


def child(fd: int, helper_fds: tuple[int, ...], handle, payload: bytes) -> NoReturn:
    """A connection's child (fd is its connection): the forking process's signal set-up
    undone and its own descriptors (helper_fds) closed, then handle(conn, payload)."""
    try:
        signal.set_wakeup_fd(-1)
        _signal.signal(signal.SIGCHLD, warmstart.default_disposition(signal.SIGCHLD))
        for helper_fd in helper_fds:
            os.close(helper_fd)
        conn = socket.socket(fileno=fd)
        conn.setblocking(True)
        handle(conn, payload)
    except SystemExit as stop:
        os._exit(stop.code if isinstance(stop.code, int) else 111)
    except KeyboardInterrupt:
        # SIGINT before the program started: die of it, as a C server's child does
        _signal.signal(signal.SIGINT, _signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        import traceback
        traceback.print_exc()
    os._exit(111)
