"""The accept loop tcpserver and unixserver share: concurrency limit, children, status.

The parent accepts a connection only while fewer than `limit` children run, starts one
child per connection and logs, when verbose, the lines ucspi-tcp's tcpserver prints:

    PROG: status: N/LIMIT       after every accept and every child's end
    PROG: end PID status S      S is the raw wait status, as C prints it

How a connection's program starts is the server's plan, decided once at start-up:

    plan.start(conn)          in the server, per connection: a pid when the program was
                              started without forking this interpreter (posix_spawn), else
                              the payload (bytes) for a forked child: what the server
                              worked out for it (b"": nothing, the child works it all out)
    plan.child(fds, payload)  in the forked child, fds[0] the connection: ends in the
                              program or an exit; a return or an exception ends the child
                              with 111

Forked children come from the fork helper (fork_helper.Forker), which spares this loop the
copy-on-write faults of forking; should the helper die, the server forks them itself.
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

from ucspi.runtime import children, exitcodes, fork_helper, launch, self_pipe


class Server:
    """One listening socket, its children and their count."""

    def __init__(self, prog: str, listener: socket.socket, limit: int, verbose: bool, plan,
                 on_term: Callable[[], None] | None = None):
        self.prog = prog
        self.listener = listener
        self.limit = limit
        self.verbose = verbose
        self.plan = plan
        self.children = 0
        self.on_term = on_term  # run before exiting on SIGTERM (unixserver removes its socket)
        self.forker: fork_helper.Forker | None = None
        self.handed_over = 0  # tags the fork helper's reports carry

    def log(self, line: str) -> None:
        if self.verbose:
            exitcodes.say(f"{self.prog}: {line}")

    def status(self) -> None:
        self.log(f"status: {self.children}/{self.limit}")

    def _reap(self) -> None:
        for pid, wstat in children.ended():
            gone = self.forker.gone(pid)
            if gone is None:
                self._ended(pid, wstat)
                continue
            # The helper died: what it reported counts; its other children are no
            # longer ours to count or reap.
            last, lost = gone
            for _, child, status in last:
                self._ended(child, status)
            self.children -= len(lost)
            self.status()

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
        """Accept and start children forever; SIGTERM exits 0."""
        # The helper first: it must not inherit the handlers and wake-up pipe below.
        self.forker = fork_helper.Forker(self.prog, [self.listener], self.plan.child, socket_stdio=True,
                                         fork_warning="dropping connection, unable to fork")
        wake_r, _ = self_pipe.open_wakeup()
        # A Python-level handler is what makes the interpreter write to the wakeup pipe.
        signal.signal(signal.SIGCHLD, lambda sig, frame: None)
        signal.signal(signal.SIGTERM, self._terminate)
        self.listener.setblocking(False)
        self.status()
        while True:
            watch = [wake_r] if self.children >= self.limit else [wake_r, self.listener]
            helper = self.forker.watch()
            try:
                ready, _, _ = select.select(watch + helper, [], [])
            except InterruptedError:
                ready = []
            if wake_r in ready:
                self_pipe.drain(wake_r)
            if helper and helper[0] in ready:
                for _, pid, wstat in self.forker.reports():
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
                self._start(conn)

    def _start(self, conn: socket.socket) -> None:
        started = self.plan.start(conn)
        if isinstance(started, int):
            conn.close()
            return
        if len(started) > fork_helper.MAX_PAYLOAD:
            started = b""  # the child works it out itself
        self.handed_over = (self.handed_over + 1) & 0x7FFFFFFF
        try:
            self.forker.fork([conn.fileno()], started, self.handed_over)
        except OSError as err:
            exitcodes.warn_sys(self.prog, "dropping connection, unable to fork", err)
            self.children -= 1
            self.status()
        conn.close()


def quiet_interrupt() -> None:
    """Ctrl-C ends a server quietly, as it ends C's (Python would raise
    KeyboardInterrupt); one started with SIGINT ignored (nohup, a backgrounded shell)
    keeps it ignored, and so do its children, as C's do."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_program(prog: str, verbosity: int, program: list[str], fd: int, plan: tuple) -> NoReturn:
    """The end of a connection's child: fd, the connection, becomes descriptors 0 and 1
    and program starts as plan says (launch.plan_start's, or (launch.GENERAL, None,
    changes)); the connection is dropped with C's words when either cannot be done."""
    try:
        launch.run_planned(program, fd, plan)
    except OSError as err:
        unrunnable(prog, verbosity, program, err)


def unrunnable(prog: str, verbosity: int, program: list[str], err: OSError) -> NoReturn:
    """Drop the connection whose program launch.run_planned could not start."""
    if isinstance(err, launch.DescriptorTrouble):
        drop(prog, verbosity, "unable to set up descriptors", err)
    drop(prog, verbosity, f"unable to run {program[0]}", err)


def drop(prog: str, verbosity: int, msg: str, err: BaseException) -> NoReturn:
    """End a connection's child: `prog: warning: dropping connection, msg: reason`, 111."""
    if verbosity:
        exitcodes.say(f"{prog}: warning: dropping connection, {msg}: {exitcodes.error_str(err)}")
    raise SystemExit(111)
