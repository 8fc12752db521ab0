"""qmail-clean: remove a message's queue files on qmail-send's request (qmail-clean(8)).

Synopsis: qmail-clean   (started by qmail-start, as qmailq in root mode)

Reads requests from descriptor 0, each \\0-terminated:
    foop/N   remove intd/S/N and mess/S/N (the message is done)
    todo/N   remove intd/S/N and todo/S/N (qmail-send has taken the envelope over)
and answers each with one byte on descriptor 1: + done, ! a file could not be removed
(one already gone is fine), x a malformed request.  Every 30 requests it also removes
pid/ files older than 36 hours (debris of a qmail-queue killed while writing).

Exit codes: 0 at end of input, 111 if ROOT/queue cannot be entered, 100 if the answer
cannot be written.  Environment: QMAIL_ROOT.
"""

import os
import sys
import time

from qmail.config import install_root
from qmail.queue import queue_layout
from ucspi.runtime import filters

PID_DEBRIS_AGE = 129600  # OSSIFIED: 36 hours
_MAX_REQUEST = 100


def request(out_fd: int, in_fd: int, what: bytes) -> bytes:
    """The client side of this program's protocol (qmail-send, qmail-todo): send
    `what` + NUL, return the one-byte answer (b"+" done, b"!" trouble, b"x" refused),
    or b"" when qmail-clean is gone."""
    try:
        os.write(out_fd, what + b"\0")
        while True:
            try:
                return os.read(in_fd, 1)
            except InterruptedError:
                continue
    except OSError:
        return b""


def clean_pid_dir() -> None:
    """Remove pid/ files last read more than 36 hours ago."""
    now = time.time()
    try:
        names = os.listdir("pid")
    except OSError:
        return
    for name in names:
        path = os.path.join("pid", name)
        try:
            if now >= os.stat(path).st_atime + PID_DEBRIS_AGE:
                os.unlink(path)
        except OSError:
            continue


def handle(request: bytes) -> bytes:
    """One request (without its \\0) -> the answer byte."""
    if len(request) + 1 < 7 or len(request) + 1 > _MAX_REQUEST:
        return b"x"
    kind, number = request[:5], request[5:]
    if not number.isdigit() or not number.isascii():
        return b"x"
    num = int(number)
    if kind == b"foop/":
        kinds = ("intd", "mess")
    elif kind == b"todo/":
        kinds = ("intd", "todo")
    else:
        return b"x"
    for name in kinds:
        try:
            os.unlink(queue_layout.path(".", name, num))
        except FileNotFoundError:
            pass
        except OSError:
            return b"!"
    return b"+"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    try:
        os.chdir(queue_layout.queue_dir(install_root.root()))
    except OSError:
        return 111
    pending = b""
    countdown = 0
    for data in filters.chunks(0, 4096):  # to the end of input or a read error
        pending += data
        *requests, pending = pending.split(b"\0")
        for request in requests:
            if countdown:
                countdown -= 1
            else:
                clean_pid_dir()
                countdown = 30
            try:
                os.write(1, handle(request))
            except OSError:
                return 100
    return 0
