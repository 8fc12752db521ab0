"""The accept loop tcpserver and unixserver share: concurrency limit, children, status.

The parent accepts a connection only while fewer than `limit` children run, forks one
child per connection and logs, when verbose, the lines ucspi-tcp's tcpserver prints:

    PROG: status: N/LIMIT       after every accept and every child's end
    PROG: end PID status S      S is the raw wait status, as C prints it

The child runs `handle(conn, payload)` (set the environment, check rules, exec the
program), or `run_prepared(fd, payload)` when given and there is a payload; neither may
return: a return or an exception ends the child with 111. A
server may also pass `start(conn)`, tried first in the parent: it starts the child itself
(with posix_spawn, much cheaper than forking an interpreter) and returns its pid, or
returns None to fall back to the forked child. Or `prepare(conn)`: work done in the
parent, whose result (bytes, the payload; None: nothing done) goes to the child's handle.
Work in a parent that does not fork is cheaper than the same work in a child, where each
page first written is a copy-on-write fault. Forked children come from the fork helper
(ucspi.runtime.fork_helper), which spares this loop the copy-on-write faults of forking; should the
helper die, the server forks them itself.
SIGTERM ends the server at once (children keep running), as in ucspi-tcp.
"""

from __future__ import annotations

import os
import select
import signal
import socket

# typing and traceback (2 MiB with what they import) stay out of the forking parent:
# every page it holds is a page each fork copies the tables of.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

from ucspi.runtime import exitcodes, self_pipe, launch, fork_helper


class Server:
    """One listening socket, its children and their count."""

    def __init__(self, prog: str, listener: socket.socket, limit: int, verbose: bool,
                 handle: Callable[[socket.socket, bytes], NoReturn],
                 on_term: Callable[[], None] | None = None,
                 start: Callable[[socket.socket], int | None] | None = None,
                 prepare: Callable[[socket.socket], bytes | None] | None = None,
                 run_prepared: Callable[[int, bytes], NoReturn] | None = None):
        self.prog = prog
        self.listener = listener
        self.limit = limit
        self.verbose = verbose
        self.handle = handle
        self.children = 0
        self.on_term = on_term  # run before exiting on SIGTERM (unixserver removes its socket)
        self.start = start  # starts a child without forking us, or returns None
        self.prepare = prepare  # the child's payload, worked out here, or None
        self.run_prepared = run_prepared  # the child's part with a payload, given the fd
        self.helper: fork_helper.ForkHelper | None = None
        self.handed_over = 0  # tags the fork helper's reports carry

    def log(self, line: str) -> None:
        if self.verbose:
            exitcodes.say(f"{self.prog}: {line}")

    def status(self) -> None:
        self.log(f"status: {self.children}/{self.limit}")

    def _reap(self) -> None:
        while self.children or self.helper:
            try:
                pid, wstat = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children = 0
                return
            if pid == 0:
                return
            if self.helper and pid == self.helper.pid:
                # The helper died: what it reported counts; its other children are no
                # longer ours to count or reap.
                for _, child, status in self.helper.reports():
                    self._ended(child, status)
                self.children -= len(self.helper.outstanding)
                self.helper.sock.close()
                self.helper = None
                self.status()
                continue
            self._ended(pid, wstat)

    def _ended(self, pid: int, wstat: int) -> None:
        """A child's end (pid 0: the fork helper could not fork it)."""
        self.children -= 1
        if pid:
            self.log(f"end {pid} status {wstat}")
        self.status()

    def _terminate(self, sig, frame) -> NoReturn:
        if self.on_term:
            self.on_term()
        os._exit(0)

    def run(self) -> NoReturn:
        """Accept and fork forever; SIGTERM exits 0."""
        # The helper first: it must not inherit the handlers and wake-up pipe below.
        self.helper = fork_helper.start(self.prog, [self.listener], self._run_child, socket_stdio=True,
                                   fork_warning="dropping connection, unable to fork")
        wake_r, _ = self_pipe.open_wakeup()
        # A Python-level handler is what makes the interpreter write to the wakeup pipe.
        signal.signal(signal.SIGCHLD, lambda sig, frame: None)
        signal.signal(signal.SIGTERM, self._terminate)
        self.listener.setblocking(False)
        self.status()
        while True:
            watch = [wake_r] if self.children >= self.limit else [wake_r, self.listener]
            if self.helper:
                watch.append(self.helper.sock)
            try:
                ready, _, _ = select.select(watch, [], [])
            except InterruptedError:
                ready = []
            if wake_r in ready:
                self_pipe.drain(wake_r)
            if self.helper and self.helper.sock in ready:
                for _, pid, wstat in self.helper.reports():
                    self._ended(pid, wstat)
            self._reap()
            if self.listener in ready and self.children < self.limit:
                try:
                    conn, _ = self.listener.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    continue
                except OSError as err:
                    exitcodes.warn_sys(self.prog, "unable to accept", err)
                    continue
                self.children += 1
                self.status()
                self._fork(conn)

    def _fork(self, conn: socket.socket) -> None:
        if self.start is not None and self.start(conn) is not None:
            conn.close()
            return
        payload = self.prepare(conn) if self.prepare is not None else None
        if payload is None or len(payload) > fork_helper.MAX_PAYLOAD:
            payload = b""
        self.handed_over = (self.handed_over + 1) & 0x7FFFFFFF
        if self.helper and self.helper.hand_over([conn.fileno()], payload, self.handed_over):
            conn.close()
            return
        launch.flush_std()
        try:
            pid = os.fork()
        except OSError as err:
            exitcodes.warn_sys(self.prog, "dropping connection, unable to fork", err)
            self.children -= 1
            self.status()
            conn.close()
            return
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGCHLD, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_DFL)
                self.listener.close()
                if self.helper:
                    self.helper.sock.close()
            except BaseException:
                os._exit(111)
            fork_helper.child([conn.detach()], (), self._run_child, payload)
        conn.close()

    def _run_child(self, fds: list[int], payload: bytes) -> NoReturn:
        if payload and self.run_prepared is not None:
            # No socket object: the child only passes the descriptor on, and every
            # object a warm child makes or touches costs it a copy-on-write page.
            self.run_prepared(fds[0], payload)
        conn = socket.socket(fileno=fds[0])
        conn.setblocking(True)
        self.handle(conn, payload)


def drop(prog: str, verbosity: int, msg: str, err: BaseException) -> NoReturn:
    """End a connection's child: `prog: warning: dropping connection, msg: reason`, 111."""
    if verbosity:
        exitcodes.say(f"{prog}: warning: dropping connection, {msg}: {exitcodes.error_str(err)}")
    raise SystemExit(111)


def attach_stdio(fd: int) -> None:
    """The connection's descriptor fd (a socket's detach()) becomes descriptors 0 and 1
    (and nothing else). Raises OSError."""
    os.dup2(fd, 0)
    os.dup2(fd, 1)
    if fd > 1:
        os.close(fd)
