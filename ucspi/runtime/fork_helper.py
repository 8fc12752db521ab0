"""The fork helper of tcpserver, unixserver and the spawn protocol (qmail-lspawn,
qmail-rspawn): a quiet process that forks their children.

A Python parent that forks pays twice for it: the kernel copies its page tables, and
every page the parent then writes while a child still shares it (each reference count
it changes, each object it allocates) is copied again. A server loop touches a hundred
pages per connection that way. The helper ("zygote", as Android names it) is forked once,
after the program's module is loaded and privileges are dropped; the server hands it each
accepted connection over a socketpair (SCM_RIGHTS) and goes on accepting, while the
helper, whose loop touches almost nothing, forks the connection's child.

Caller to helper: a tag, the child's payload and its descriptors (SCM_RIGHTS). Helper to
caller: (tag, pid, wait status) when the child has ended, pid 0 when it could not fork
(it has said why). The server counts and logs as if the children were its own: the -v
lines and the -c limit are unchanged.
The children are the helper's, so their parent pid is the helper's; when the server
exits (SIGTERM) the helper sees the end of the socketpair and exits, and the children
run on, as a C tcpserver's do.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import struct

from ucspi.runtime import cpython, exitcodes, launch, self_pipe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import NoReturn

_REPORT = struct.Struct("=iii")  # tag, pid (0: could not fork), wait status
_TAG = struct.Struct("=i")
MAX_PAYLOAD = 65535  # what the caller worked out for a child, carried with its descriptors
MAX_FDS = 8
MAX_BATCH = 16  # requests forked in one round
_FD = struct.Struct("=i")
_FDS_SPACE = socket.CMSG_SPACE(MAX_FDS * _FD.size)
# Plain ints, worked out once: a warm child that hashes an enum member runs enum.py's
# __hash__, and each object it touches costs it a copy-on-write page.
_SIGCHLD, _SIG_DFL = int(signal.SIGCHLD), int(signal.SIG_DFL)
_set_wakeup_fd, _setsignal, _close = signal.set_wakeup_fd, cpython.setsignal, os.close  # see launch's docstring


class ForkHelper:
    """The forking process's end: hand children's work over, collect their ends."""

    def __init__(self, pid: int, sock: socket.socket):
        self.pid = pid
        self.sock = sock
        self.outstanding: set[int] = set()  # tags handed over whose end is not reported

    def hand_over(self, fds: list[int], payload: bytes = b"", tag: int = 0) -> bool:
        """Have the helper fork a child that gets copies of fds and payload (the helper's
        copies are closed once it has forked); tag names it in the report. False when the
        helper is gone."""
        try:
            socket.send_fds(self.sock, [_TAG.pack(tag) + payload], fds)
        except OSError:
            return False
        self.outstanding.add(tag)
        return True

    def reports(self) -> Iterator[tuple[int, int, int]]:
        """(tag, pid, wait status) of each child that ended, pid 0 when the helper could
        not fork it (it has said why); stops when no report is waiting."""
        while True:
            try:
                data = self.sock.recv(_REPORT.size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if len(data) != _REPORT.size:
                return
            tag, pid, wstat = _REPORT.unpack(data)
            self.outstanding.discard(tag)
            yield tag, pid, wstat


class Forker:
    """Forks a program's children: through its fork helper while that lives, itself when
    it is gone (or could not be started). The one fallback for tcpserver, unixserver and
    the spawn programs.

    run(fds, payload) is the child's work, in either kind of child. keep_away lists what
    no child may hold (the listening socket, the protocol's descriptors): the helper lets
    go of it at its start, a child forked here closes it.
    """

    def __init__(self, prog: str, keep_away: list, run: Callable[[list[int], bytes], NoReturn],
                 socket_stdio: bool = False, fork_warning: str | None = None):
        self.run = run
        self.keep_away = keep_away
        self.helper = start(prog, keep_away, run, socket_stdio, fork_warning)

    def watch(self) -> list:
        """What to select() on for the helper's reports."""
        return [self.helper.sock] if self.helper else []

    def fork(self, fds: list[int], payload: bytes = b"", tag: int = 0,
             not_its_own: tuple[int, ...] = ()) -> int:
        """A child with copies of fds and payload: 0 when the helper forks it (its end
        comes with tag through reports()), else the pid of a child forked here (its end
        comes through waitpid). not_its_own: more descriptors a child forked here closes.
        Raises OSError when it cannot fork."""
        if self.helper and self.helper.hand_over(fds, payload, tag):
            return 0
        launch.flush_std()
        pid = os.fork()
        if pid == 0:
            try:
                # the forking process's set-up undone: wake-up fd, its handlers (a caught
                # signal is at its default after exec), what the child must not hold
                signal.set_wakeup_fd(-1)
                for sig in _CAUGHT:
                    if callable(signal.getsignal(sig)):
                        signal.signal(sig, signal.SIG_DFL)
                for item in self.keep_away:
                    _let_go(item)
                if self.helper:
                    self.helper.sock.close()
            except BaseException:
                os._exit(111)
            child(fds, not_its_own, self.run, payload)
        return pid

    def reports(self) -> Iterator[tuple[int, int, int]]:
        """(tag, pid, wait status) of each child the helper saw end (pid 0: it could not
        fork it); nothing when no report waits."""
        return self.helper.reports() if self.helper else iter(())

    def gone(self, pid: int) -> tuple[list, set] | None:
        """When pid (reaped) is the helper's: its last reports and the tags of the children
        it had not reported (they may run on, no longer ours to wait for); from now on
        children are forked here. None for any other pid."""
        if not self.helper or pid != self.helper.pid:
            return None
        helper, self.helper = self.helper, None
        last = list(helper.reports())
        helper.sock.close()
        return last, helper.outstanding


_CAUGHT = (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM)


def start(prog: str, close: list, run: Callable[[list[int], bytes], NoReturn],
          socket_stdio: bool = False, fork_warning: str | None = None) -> ForkHelper | None:
    """Fork the helper, which lets go of what close lists (sockets or descriptors the
    children must not hold) and runs run(fds, payload) in each child it forks.
    socket_stdio: the children's fds 0 and 1 will be a socket (make their stdio streams
    in advance). fork_warning: what to say (PROG: warning: TEXT: reason) when a fork
    fails. None when it cannot be started (the caller forks itself then)."""
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError:
        return None
    launch.flush_std()
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        return None
    if pid == 0:
        try:
            ours.close()
            for item in close:
                _let_go(item)
            _serve(prog, theirs, run, socket_stdio, fork_warning)
        except BaseException:
            pass
        os._exit(0)
    theirs.close()
    ours.setblocking(False)
    return ForkHelper(pid, ours)


def _let_go(item) -> None:
    """Close a socket or descriptor the helper must not hold; 0, 1 and 2 are pointed at
    /dev/null instead, so that descriptors it receives never take their numbers."""
    if hasattr(item, "close"):
        item.close()
    elif item > 2:
        os.close(item)
    else:
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, item)
        os.close(null)


def _serve(prog: str, sock: socket.socket, run, socket_stdio: bool, fork_warning) -> NoReturn:
    """The helper's loop: fork a child per request received, report each end."""
    launch.set_title(f"{prog}: fork helper")  # ps and pgrep tell it from its parent
    # What warm children need is done here once: a fresh interpreter's signal
    # dispositions (SIGTERM default too) and, for socket children, their stdio streams.
    launch.prepare_signals()
    if socket_stdio:
        launch.prepare_socket_stdio()
    wake_r, wake_w = self_pipe.open_wakeup()
    # A Python-level handler is what makes the interpreter write to the wake-up fd.
    on_sigchld = lambda sig, frame: None  # noqa: E731
    _setsignal(_SIGCHLD, on_sigchld)
    waitpid, WNOHANG, pack = os.waitpid, os.WNOHANG, _REPORT.pack
    helper_fds = (sock.fileno(), wake_r, wake_w)
    children: dict[int, int] = {}  # pid -> tag
    while True:
        try:
            ready, _, _ = select.select([sock, wake_r], [], [])
        except InterruptedError:
            ready = ()
        if wake_r in ready:
            self_pipe.drain(wake_r)
        if sock in ready:
            batch = _receive(sock)
            # Each child closes what is not its own: this process's descriptors and the
            # other requests' (a connection must end when its own child ends).
            received = tuple(fd for _, fds, _ in batch for fd in fds)
            plan = [(fds, helper_fds + tuple(fd for fd in received if fd not in fds), payload)
                    for _, fds, payload in batch]
            launch.flush_std()
            # The children are forked with SIGCHLD at its default (as exec leaves a
            # caught signal, even one this process was started with ignored) and no
            # wake-up fd: undone here once a round rather than in each child (two calls
            # cost a warm child a dozen copied pages). A child that ends meanwhile sends
            # no wake-up; the sweep below finds it (ignored, it would not be there).
            _set_wakeup_fd(-1)
            _setsignal(_SIGCHLD, _SIG_DFL)
            # The forks in a row: after each fork, every page this process writes is
            # copied (its child still shares it), so little is written between them.
            forked = []
            for fds, not_its_own, payload in plan:
                try:
                    pid = os.fork()
                except OSError as err:
                    pid = err
                if pid == 0:
                    child(fds, not_its_own, run, payload)
                forked.append(pid)
            _setsignal(_SIGCHLD, on_sigchld)
            _set_wakeup_fd(wake_w, warn_on_full_buffer=False)  # as self_pipe set it
            for fd in received:
                os.close(fd)
            for (tag, _, _), pid in zip(batch, forked):
                if isinstance(pid, int):
                    children[pid] = tag
                    continue
                if fork_warning:
                    exitcodes.warn_sys(prog, fork_warning, pid)
                sock.send(pack(tag, 0, 0))
        # After any round: what ended while SIGCHLD was at its default is reaped too.
        while children:
            try:
                pid, status = waitpid(-1, WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            sock.send(pack(children.pop(pid, 0), pid, status))


def _receive(sock: socket.socket) -> list:
    """The requests waiting on sock, each (tag, fds, payload): as many as are there (a
    busy server hands several over while the helper forks), none when a signal came
    first. Exits when the caller is gone: the children run on."""
    batch = []
    flags = 0
    while len(batch) < MAX_BATCH:
        try:
            message, ancillary, _, _ = sock.recvmsg(_TAG.size + MAX_PAYLOAD, _FDS_SPACE, flags)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            message, ancillary = b"", []
        fds = []
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(_FD.unpack_from(data, i)[0]
                           for i in range(0, len(data) - len(data) % _FD.size, _FD.size))
        if len(message) < _TAG.size:
            for fd in fds:
                os.close(fd)
            if batch:
                break  # the end is seen again on the next round, once these are forked
            os._exit(0)
        batch.append((_TAG.unpack_from(message)[0], fds, message[_TAG.size:]))
        flags = socket.MSG_DONTWAIT  # socket.recv_fds would not pass flags on
    return batch


def child(fds: list[int], not_its_own: tuple[int, ...], run, payload: bytes) -> NoReturn:
    """A child (fds its descriptors), forked with the forking process's signal set-up
    undone (SIGCHLD and the wake-up fd): the descriptors not its own (the forking
    process's, other children's) closed, then run(fds, payload)."""
    try:
        for fd in not_its_own:
            _close(fd)
        run(fds, payload)
    except SystemExit as stop:
        os._exit(stop.code if isinstance(stop.code, int) else 111)
    except KeyboardInterrupt:
        # SIGINT before the program started: die of it, as a C server's child does
        _setsignal(cpython.SIGINT, cpython.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        import traceback
        traceback.print_exc()
    os._exit(111)
