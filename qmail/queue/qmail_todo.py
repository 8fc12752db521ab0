"""qmail-todo: preprocess new messages for qmail-send (the ext-todo split of qmail-send).

Synopsis: qmail-todo   (started by qmail-start beside qmail-send, as qmails in root mode)

For every envelope in todo/ (woken by lock/trigger, else every 25 minutes) it does what
qmail-send's todo pass does in qmail 1.03, in a process of its own so that a flood of
new messages never stalls deliveries (no "silly qmail syndrome"):

  * writes info/S/N (the F sender record; its mtime is the message's birth) and the
    rewritten recipients (qmail/queue/routing.py) into local/S/N and remote/S/N, fsynced;
  * asks its qmail-clean to remove todo/S/N and intd/S/N;
  * tells qmail-send the message is ready, and which channels it has.

Descriptors: 0 commands from qmail-send (S start, H re-read controls, X exit),
1 records to qmail-send (each \\0-terminated: "L" + a log line, "D" + channel mask digit
(1 local, 2 remote) + message number), 2 error output, 4 requests to qmail-clean,
5 its answers.  Nothing is processed before qmail-send says S (it has scanned info/
by then, so no message is scheduled twice).

Exit codes: 0 after X or when qmail-send goes away; 111 if controls or the queue cannot
be read at start.  Environment: QMAIL_ROOT.
"""

import os
import select
import signal
import sys
import time

from qmail.config import control, install_root
from qmail.queue import qmail_clean, queue_layout, routing, send_log
from ucspi.runtime import durable

SLEEP_TODO = 1500  # look at todo/ every 25 minutes even without a trigger
FROM_SEND, TO_SEND, TO_CLEAN, FROM_CLEAN = 0, 1, 4, 5


class Trouble(Exception):
    """This message cannot be processed now; try again at the next scan."""


class Todo:
    def __init__(self, root: str):
        self.root = root
        self.routes = routing.load(root)
        self.trigger_fd = -1
        self.started = False
        self.exiting = False
        self.next_scan = 0.0
        self.scan_now = True

    # --- talking to qmail-send -------------------------------------------------------
    def tell(self, record: bytes) -> None:
        try:
            durable.write_all(TO_SEND, record + b"\0")
        except OSError:
            self.exiting = True  # qmail-send is gone

    def log(self, line: bytes) -> None:
        self.tell(b"L" + line)

    def warn(self, text: str) -> None:
        self.log(send_log.warning(text))

    # --- the trigger -----------------------------------------------------------------
    def trigger_set(self) -> None:
        if self.trigger_fd >= 0:
            os.close(self.trigger_fd)
        try:
            self.trigger_fd = os.open(queue_layout.trigger(""), os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            self.trigger_fd = -1

    # --- one message ----------------------------------------------------------------
    def process(self, num: int) -> None:
        """todo_do for one message; Trouble leaves it for the next scan."""
        todo_path = queue_layout.todo("", num)
        try:
            with open(todo_path, "rb") as f:
                data = f.read()
        except OSError:
            self.warn(f"unable to open {todo_path}")
            raise Trouble
        mess_path = queue_layout.mess("", num)
        try:
            size = os.stat(mess_path).st_size
        except OSError:
            self.warn(f"unable to stat {mess_path}")
            raise Trouble
        info_path = queue_layout.info("", num)
        for path in (queue_layout.local("", num), queue_layout.remote("", num), info_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError:
                self.warn(f"unable to unlink {path}")
                raise Trouble
        info_fd = _create(info_path, self)  # before "new msg", as qmail-send does
        try:
            self.log(send_log.new_msg(num))
            info, chans = self.records(num, data, size, todo_path)
            _fill(info_fd, info_path, info, self)
        finally:
            os.close(info_fd)
        mask = 0
        for channel, content in enumerate(chans):
            if content:
                path = (queue_layout.local if channel == routing.LOCAL else queue_layout.remote)("", num)
                fd = _create(path, self)
                try:
                    _fill(fd, path, bytes(content), self)
                finally:
                    os.close(fd)
                mask |= 1 << channel
        # Only now may the envelope go: info and the channel files are on disk.
        answer = self.clean(b"todo/%d" % num)
        if answer != b"+":
            self.warn(f"qmail-clean unable to clean up todo/{num}")
            return
        self.tell(b"D%d%d" % (mask, num))

    def records(self, num: int, data: bytes, size: int, todo_path: str):
        """The todo file's records -> (info contents, (local, remote) contents)."""
        info = bytearray()
        chans = (bytearray(), bytearray())
        uid = pid = 0
        for record in data.split(b"\0")[:-1]:
            kind, value = record[:1], record[1:]
            if kind == b"u":
                uid = _scan_ulong(value)
            elif kind == b"p":
                pid = _scan_ulong(value)
            elif kind == b"F":
                info += record + b"\0"
                self.log(send_log.info_msg(num, size, value, pid, uid))
            elif kind == b"T":
                channel, addr = self.routes.rewrite(value.decode("latin-1"))
                chans[channel].extend(b"T" + addr.encode("latin-1") + b"\0")
            else:
                self.warn(f"unknown record type in {todo_path}")
                raise Trouble
        return bytes(info), chans

    def clean(self, request: bytes) -> bytes:
        answer = qmail_clean.request(TO_CLEAN, FROM_CLEAN, request)
        if not answer:
            self.log(send_log.alert("oh no! lost qmail-clean connection! dying..."))
            self.exiting = True
        return answer

    # --- the main loop ---------------------------------------------------------------
    def commands(self, data: bytes) -> None:
        for ch in data:
            if ch == ord("S"):
                self.started = True
            elif ch == ord("H"):
                try:
                    self.routes = routing.load(self.root)
                except control.ControlTrouble:
                    self.log(send_log.alert("unable to reread control/locals"))
            elif ch == ord("X"):
                self.exiting = True

    def scan(self) -> None:
        """One pass over todo/, answering qmail-send's commands between messages."""
        for num in queue_layout.numbers("", "todo"):
            self.poll_commands(0)
            if self.exiting:
                return
            try:
                self.process(num)
            except Trouble:
                pass

    def poll_commands(self, timeout: float | None) -> list[int]:
        # Before S the trigger is not watched: a pulled trigger stays readable until
        # it is re-armed, and nothing may be processed yet.
        armed = self.started and self.trigger_fd >= 0
        watch = [FROM_SEND] + ([self.trigger_fd] if armed else [])
        try:
            ready, _, _ = select.select(watch, [], [], timeout)
        except InterruptedError:
            return []
        if FROM_SEND in ready:
            try:
                data = os.read(FROM_SEND, 64)
            except OSError:
                data = b""
            if not data:
                self.exiting = True
            self.commands(data)
        return ready

    def run(self) -> int:
        self.trigger_set()
        while not self.exiting:
            if self.started and (self.scan_now or time.monotonic() >= self.next_scan):
                self.scan_now = False
                self.trigger_set()  # re-arm before scanning: a pull now is not lost
                self.next_scan = time.monotonic() + SLEEP_TODO
                self.scan()
                continue
            timeout = max(0.0, self.next_scan - time.monotonic()) if self.started else None
            ready = self.poll_commands(timeout)
            if self.trigger_fd >= 0 and self.trigger_fd in ready:
                self.scan_now = True
        return 0


def _scan_ulong(value: bytes) -> int:
    digits = b""
    for ch in value:
        if not 48 <= ch <= 57:
            break
        digits += bytes([ch])
    return int(digits) if digits else 0


def _create(path: str, todo: Todo) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        todo.warn(f"unable to create {path}")
        raise Trouble from None


def _fill(fd: int, path: str, content: bytes, todo: Todo) -> None:
    """Write content and fsync it: it must survive a crash once qmail-clean removes the
    todo file."""
    try:
        durable.write_all(fd, content)
    except OSError:
        todo.warn(f"trouble writing to {path}")
        raise Trouble from None
    try:
        os.fsync(fd)
    except OSError:
        todo.warn(f"trouble fsyncing {path}")
        raise Trouble from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    root = install_root.root()
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # qmail-send forwards H
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # qmail-send says X when it is time
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    os.umask(0o077)
    try:
        todo = Todo(root)
        os.chdir(queue_layout.queue_dir(root))
    except (control.ControlTrouble, OSError):
        os.write(TO_SEND, b"L" + send_log.alert("cannot start: qmail-todo unable to read controls") + b"\0")
        return 111
    return todo.run()
