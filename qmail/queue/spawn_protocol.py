"""The qmail-send <-> qmail-lspawn/qmail-rspawn protocol, and the spawn server loop.

Wire format (qmail 1.03's spawn.c and qmail-send.c):

  * on start the spawn server writes one byte: how many deliveries it can run at once
    (AUTO_SPAWN, 120); qmail-send uses min(that, concurrencylocal/remote).
  * a command, qmail-send -> spawn: one byte delivery number (0..limit-1), then the
    message's file relative to queue/mess ("N/inode"), \\0, the envelope sender, \\0, the
    recipient, \\0.
  * a report, spawn -> qmail-send: the delivery number byte, then the report text, then
    \\0.  The text starts with K (delivered), Z (deferred: try again later) or D (failed
    for good) followed by human-readable lines ending in \\n.

The server (`serve`) is spawn.c's common main loop, shared by qmail-lspawn and
qmail-rspawn:

  * chdir to ROOT/queue/mess (exit 111 if impossible), announce the concurrency byte;
  * for each command: check it (delivery number free and in range, message id numeric
    "N/ID", recipient has an @, message a regular file owned by the queue's owner, as
    qmail checks for qmailq), open the message, make a pipe, fork; the child has the
    message on fd 0 and the pipe on fds 1 and 2 and runs `child(request)`;
  * the child's output is collected (cut to `truncreport` bytes when that is over 100,
    with "\\nError report too long, sorry.\\n"); when the child has exited and its output
    hit EOF, `report(wait_status, output)` turns them into the report text sent back;
  * at EOF on its input, the server waits for its deliveries and exits 0.

Contract for a spawn program (qmail-lspawn, qmail-rspawn):

    spawn_protocol.serve(child, report, truncreport=3000)

  child(request: Request) -> int   runs in the forked child (fd 0 = message, fds 1 and 2
                                   = the report pipe, cwd ROOT/queue/mess); it normally
                                   replaces the process (launch.exec_program) and
                                   otherwise returns the exit status to use.  An
                                   exception or SystemExit ends the child with 111 or the
                                   SystemExit code.
  report(wstat: int, output: bytes) -> bytes   the report text, starting with K, Z or D
                                   (`local_report` is qmail-lspawn's translation,
                                   `remote_report` qmail-rspawn's).

Requests carry bytes, as qmail's are: addresses need not be valid UTF-8.
"""

import marshal
import os
import select
import signal
import stat
import sys
from dataclasses import dataclass
from typing import Callable

from qmail.config import install_root
from ucspi.runtime import children, fork_helper, self_pipe

AUTO_SPAWN = 120  # conf-spawn
_MESSID_MAX = 100
TRUNCATED = b"\nError report too long, sorry.\n"

# qmail-lspawn's exit codes for its own troubles (qlx.h).
QLX_USAGE = 112
QLX_BUG = 101
QLX_ROOT = 113
QLX_NFS = 115
QLX_NOALIAS = 116
QLX_CDB = 117
QLX_SYS = 118
QLX_NOMEM = 119
QLX_EXECSOFT = 120
QLX_EXECPW = 121
QLX_EXECHARD = 126

_LOCAL_TROUBLE = {
    QLX_CDB: b"ZTrouble reading users/cdb in qmail-lspawn.\n",
    QLX_NOMEM: b"ZOut of memory in qmail-lspawn.\n",
    QLX_SYS: b"ZTemporary failure in qmail-lspawn.\n",
    QLX_NOALIAS: b"ZUnable to find alias user!\n",
    QLX_ROOT: b"ZNot allowed to perform deliveries as root.\n",
    QLX_USAGE: b"ZInternal qmail-lspawn bug.\n",
    QLX_NFS: b"ZNFS failure in qmail-local.\n",
    QLX_EXECHARD: b"DUnable to run qmail-local.\n",
    QLX_EXECSOFT: b"ZUnable to run qmail-local.\n",
    QLX_EXECPW: b"ZUnable to run qmail-getpw.\n",
}


@dataclass
class Request:
    """One delivery asked for by qmail-send."""

    delnum: int
    messid: bytes  # "N/ID", relative to ROOT/queue/mess
    sender: bytes
    recip: bytes

    @property
    def at(self) -> int:
        """Index of the recipient's last @ (serve only accepts recipients with one)."""
        return self.recip.rfind(b"@")


def encode_command(delnum: int, messid: bytes, sender: bytes, recip: bytes) -> bytes:
    return bytes([delnum]) + messid + b"\0" + sender + b"\0" + recip + b"\0"


def encode_report(delnum: int, text: bytes) -> bytes:
    return bytes([delnum]) + text + b"\0"


class CommandReader:
    """Incremental parser of qmail-send's commands (the server side)."""

    def __init__(self):
        self._fields: list[bytes] = []
        self._current = bytearray()
        self._delnum: int | None = None

    def feed(self, data: bytes) -> list[Request]:
        done = []
        for ch in data:
            if self._delnum is None:
                self._delnum = ch
                continue
            if ch:
                self._current.append(ch)
                continue
            self._fields.append(bytes(self._current))
            self._current.clear()
            if len(self._fields) == 3:
                done.append(Request(self._delnum, *self._fields))
                self._fields = []
                self._delnum = None
        return done


class ReportReader:
    """Incremental parser of a spawn server's reports (qmail-send's side).

    A report longer than limit bytes is cut, as qmail-send cuts at REPORTMAX."""

    def __init__(self, limit: int = 10000):
        self._line = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        done = []
        start = 0
        while start < len(data):
            if not self._line:  # the delivery number, which may itself be \0
                self._line.append(data[start])
                start += 1
                continue
            end = data.find(b"\0", start)
            if end < 0:
                self._append(data[start:])
                break
            self._append(data[start:end])
            start = end + 1
            done.append((self._line[0], bytes(self._line[1:])))
            self._line.clear()
        return done

    def _append(self, chunk: bytes) -> None:
        room = self._limit - len(self._line)
        if room > 0:
            self._line += chunk[:room]


def local_report(wstat: int, output: bytes) -> bytes:
    """qmail-lspawn's report: qmail-local's exit status and output -> K/Z/D text."""
    if os.WIFSIGNALED(wstat):
        return b"Zqmail-local crashed.\n"
    code = os.WEXITSTATUS(wstat)
    if code in _LOCAL_TROUBLE:
        return _LOCAL_TROUBLE[code]
    if code in (111, 71, 74, 75):
        kind = b"Z"
    elif code == 0:
        kind = b"K"
    else:
        kind = b"D"
    return kind + output.split(b"\0", 1)[0]


def remote_report(wstat: int, output: bytes) -> bytes:
    """qmail-rspawn's report: qmail-remote's output (per-recipient r/h/s records and a
    final K/Z/D record, each \\0-terminated) -> K/Z/D text for the one recipient."""
    if os.WIFSIGNALED(wstat):
        return b"Zqmail-remote crashed.\n"
    code = os.WEXITSTATUS(wstat)
    if code == 111:
        return b"ZUnable to run qmail-remote.\n"
    if code != 0:
        return b"DUnable to run qmail-remote.\n"
    if not output:
        return b"Zqmail-remote produced no output.\n"
    result = -1
    start = 0
    for k, ch in enumerate(output):
        if ch == 0:
            first = output[start:start + 1]
            if first == b"K":
                result = 1
                break
            if first == b"Z":
                result = 0
                break
            if first == b"D":
                break
            start = k + 1
    overall = {ord("s"): 0, ord("h"): -1}.get(output[0], result)
    text = {1: b"K", 0: b"Z", -1: b"D"}[overall]
    end = output.find(b"\0", 1)
    if end >= 0:
        text += output[1:end]
        k = end + 1
        if result <= overall and k < len(output) and output[k:k + 1] in (b"Z", b"D", b"K"):
            text += output[k + 1:].split(b"\0", 1)[0]
    return text


def check(request: Request, busy: bool, limit: int) -> bytes | None:
    """docmd's checks before anything is opened: the refusal text, or None."""
    if request.delnum >= limit:
        return b"ZInternal error: delnum too big. (#4.3.5)\n"
    if busy:
        return b"ZInternal error: delnum in use. (#4.3.5)\n"
    for i, ch in enumerate(request.messid):
        if not (i and ch == ord("/")) and not 48 <= ch <= 57:
            return b"DInternal error: messid has nonnumerics. (#5.3.5)\n"
    if len(request.messid) + 1 > _MESSID_MAX:
        return b"DInternal error: messid too long. (#5.3.5)\n"
    if not request.messid:
        return b"DInternal error: messid too short. (#5.3.5)\n"
    if request.at < 0:
        return b"DSorry, address must include host name. (#5.1.3)\n"
    return None


def _open_message(messid: bytes, owner: int) -> tuple[int | None, bytes | None]:
    try:
        fd = os.open(messid, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None, b"Zqmail-spawn unable to open message. (#4.3.0)\n"
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None, b"Zqmail-spawn unable to fstat message. (#4.3.0)\n"
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None, b"ZSorry, message has wrong type. (#4.3.5)\n"
    if st.st_uid != owner:
        # Only the queue's owner may have written a message; anything else is forged.
        os.close(fd)
        return None, b"ZSorry, message has wrong owner. (#4.3.5)\n"
    os.set_blocking(fd, True)
    return fd, None


def _run_child(child, request: Request, fdmess: int, fdout: int) -> None:
    """In the forked child: message on 0, report pipe on 1 and 2, then child()."""
    code = 111
    try:
        os.dup2(fdmess, 0)
        os.dup2(fdout, 1)
        os.dup2(fdout, 2)
        for fd in (fdmess, fdout):
            if fd > 2:
                os.close(fd)
        code = child(request)
        code = 0 if code is None else code
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        code = 111
    finally:
        os._exit(code & 0xFF)


class _Delivery:
    def __init__(self, pid: int | None, fdin: int, fdout: int):
        self.pid = pid
        self.fdin = fdin
        self.fdout = fdout  # kept open until the child is reaped: EOF means dead
        self.wstat: int | None = None
        self.output = bytearray()


class _Writer:
    """okwrite: once qmail-send stops listening, reports are dropped, work goes on."""

    def __init__(self, fd: int):
        self.fd = fd
        self.ok = True

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while self.ok and view:
            try:
                view = view[os.write(self.fd, view):]
            except InterruptedError:
                continue
            except OSError:
                self.ok = False


def serve(child: Callable[[Request], int], report: Callable[[int, bytes], bytes],
          truncreport: int = 0, root: str | None = None, limit: int = AUTO_SPAWN,
          infd: int = 0, outfd: int = 1) -> int:
    """spawn.c's main loop; returns 0 once qmail-send has gone and deliveries ended."""
    root = install_root.root() if root is None else root
    try:
        os.chdir(os.path.join(root, "queue", "mess"))
        owner = os.stat(".").st_uid
    except OSError:
        return 111
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    # The fork helper first: it must not inherit the handler and wake-up pipe below.
    forker = fork_helper.Forker(os.path.basename(sys.argv[0]), [infd, outfd],
                                lambda fds, payload: _run_child(child, Request(*marshal.loads(payload)), *fds))
    signal.signal(signal.SIGCHLD, lambda *_: None)
    wake_r, wake_w = self_pipe.open_wakeup()
    out = _Writer(outfd)
    out.send(bytes([min(limit, 255)]))
    reader = CommandReader()
    slots: dict[int, _Delivery] = {}
    reading = True
    try:
        while reading or slots:
            helper = forker.watch()
            watch = [wake_r] + [d.fdin for d in slots.values()] + helper
            if reading:
                watch.append(infd)
            try:
                ready, _, _ = select.select(watch, [], [])
            except InterruptedError:
                continue
            if wake_r in ready:
                self_pipe.drain(wake_r)
            if helper and helper[0] in ready:
                for delnum, pid, wstat in forker.reports():
                    _ended(slots, delnum, pid, wstat, out)
            if _reap(slots, forker):
                # Deliveries the helper took with it: its orphans may hold their pipes
                # open for long, so their reports go now.
                for delnum, d in list(slots.items()):
                    if d.pid is None:
                        out.send(encode_report(delnum, report(d.wstat, bytes(d.output))))
                        os.close(d.fdin)
                        del slots[delnum]
            if reading and infd in ready:
                try:
                    data = os.read(infd, 1024)
                except InterruptedError:
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    reading = False
                elif data:
                    for request in reader.feed(data):
                        _start(request, slots, limit, owner, out, forker)
            for delnum, d in list(slots.items()):
                if d.fdin not in ready:
                    continue
                try:
                    chunk = os.read(d.fdin, 128)
                except InterruptedError:
                    continue
                except OSError:
                    continue
                if chunk:
                    d.output += chunk
                    if truncreport > 100 and len(d.output) > truncreport:
                        del d.output[truncreport - len(TRUNCATED) - 3:]
                        d.output += TRUNCATED
                    continue
                if d.wstat is None:  # EOF while alive: cannot happen, fdout is open
                    continue
                out.send(encode_report(delnum, report(d.wstat, bytes(d.output))))
                os.close(d.fdin)
                del slots[delnum]
    finally:
        signal.set_wakeup_fd(-1)
        os.close(wake_r)
        os.close(wake_w)
    return 0


def _reap(slots: dict[int, "_Delivery"], forker: "fork_helper.Forker") -> bool:
    """Collect ended children; True when the fork helper was among them."""
    helper_died = False
    for pid, wstat in children.ended():
        gone = forker.gone(pid)
        if gone is not None:
            # What it reported counts; deliveries it had not reported are lost to us
            # (they may still run): reported as crashed, qmail-send tries them again.
            helper_died = True
            for delnum, child, status in gone[0]:
                _ended(slots, delnum, child, status, None)
            for d in slots.values():
                if d.pid is None and d.wstat is None:
                    d.wstat = signal.SIGKILL
                    os.close(d.fdout)
                    d.fdout = -1
            continue
        for d in slots.values():
            if d.pid == pid and d.wstat is None:
                d.wstat = wstat
                os.close(d.fdout)
                d.fdout = -1
    return helper_died


def _ended(slots: dict[int, "_Delivery"], delnum: int, pid: int, wstat: int, out) -> None:
    """The fork helper's report on delivery delnum (pid 0: it could not fork)."""
    d = slots.get(delnum)
    if d is None or d.wstat is not None:
        return
    if pid == 0:
        if out is not None:
            out.send(encode_report(delnum, b"Zqmail-spawn unable to fork. (#4.3.0)\n"))
        for fd in (d.fdin, d.fdout):
            os.close(fd)
        del slots[delnum]
        return
    d.pid = pid
    d.wstat = wstat
    os.close(d.fdout)
    d.fdout = -1


def _start(request: Request, slots: dict, limit: int, owner: int, out: _Writer,
           forker: "fork_helper.Forker") -> None:
    refusal = check(request, request.delnum in slots, limit)
    fdmess = None
    if refusal is None:
        fdmess, refusal = _open_message(request.messid, owner)
    if refusal is not None:
        out.send(encode_report(request.delnum, refusal))
        return
    try:
        fdin, fdout = os.pipe()
    except OSError:
        os.close(fdmess)
        out.send(encode_report(request.delnum, b"Zqmail-spawn unable to create pipe. (#4.3.0)\n"))
        return
    try:
        pid = forker.fork([fdmess, fdout], marshal.dumps(
            (request.delnum, request.messid, request.sender, request.recip)), request.delnum,
            not_its_own=(fdin,))
    except OSError:
        for fd in (fdmess, fdin, fdout):
            os.close(fd)
        out.send(encode_report(request.delnum, b"Zqmail-spawn unable to fork. (#4.3.0)\n"))
        return
    os.close(fdmess)
    os.set_inheritable(fdin, False)
    os.set_inheritable(fdout, False)
    slots[request.delnum] = _Delivery(pid or None, fdin, fdout)
    if pid:
        _reap(slots, forker)  # the child may already be gone
