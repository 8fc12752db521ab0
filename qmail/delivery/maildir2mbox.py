"""maildir2mbox: move mail from a Maildir to an mbox (maildir2mbox(1)).

Synopsis:
    MAILDIR=dir MAIL=mbox MAILTMP=tmpfile maildir2mbox

Takes an exclusive lock on $MAIL, copies it to $MAILTMP, appends every message of
$MAILDIR/new and $MAILDIR/cur (oldest first, each with a From_ line built from its
Return-Path line and its modification time, `From ` lines quoted), fsyncs $MAILTMP,
renames it to $MAIL, and only then removes the messages from the Maildir. Relative
$MAIL and $MAILTMP are taken inside $MAILDIR. Files in $MAILDIR/tmp untouched for 36
hours are removed first.

Exit codes: 0 done (also when there was nothing to move); 111 on any trouble, with
`maildir2mbox: fatal: ...`; nothing is lost: on failure the messages stay in the Maildir.
"""

import fcntl
import os
import sys

from qmail.delivery import maildir, mbox
from ucspi.runtime import exitcodes

PROG = "maildir2mbox"


def from_line(first: bytes, mtime: int) -> bytes:
    """The From_ line for a message whose first line is first."""
    start = b"From XXX "
    if first.endswith(b"\n") and first.startswith(b"Return-Path: <"):
        if first[14:15] == b">":
            start = b"From MAILER-DAEMON "
        else:
            sender = first[14:len(first) - 2].replace(b" ", b"-").replace(b"\t", b"-")
            start = b"From " + sender + b" "
    return start + mbox.ctime(mtime).encode() + b"\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    os.umask(0o077)
    target = os.environ.get("MAIL")
    if target is None:
        exitcodes.fatal(PROG, "MAIL not set")
    tmp = os.environ.get("MAILTMP")
    if tmp is None:
        exitcodes.fatal(PROG, "MAILTMP not set")
    try:
        maildir.chdir_env()
    except maildir.ChdirError as err:
        exitcodes.fatal(PROG, str(err))
    maildir.clean_tmp(".")
    try:
        found = maildir.scan(".")
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to scan $MAILDIR", err)
    if not found:
        return 0

    try:
        lock = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to lock {target}", err)
    try:
        old = open(target, "rb")
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to read {target}", err)
    try:
        new = open(tmp, "wb")
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to create {tmp}", err)
    with old, new:
        copy_old(old, new, target, tmp)
        for mtime, name in found:
            append_message(new, name, mtime, tmp)
        try:
            new.flush()
            os.fsync(new.fileno())  # the new mbox is on disk before it replaces the old
        except OSError as err:
            exitcodes.fatal_sys(PROG, f"unable to write to {tmp}", err)
    try:
        os.rename(tmp, target)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to move {tmp} to {target}", err)
    for _, name in found:
        try:
            os.unlink(name)
        except OSError as err:
            exitcodes.warn_sys(PROG, f"$MAILDIR/{name} will be delivered twice; unable to unlink", err)
    return 0


def copy_old(old, new, target: str, tmp: str) -> None:
    while True:
        try:
            chunk = old.read(65536)
        except OSError as err:
            exitcodes.fatal_sys(PROG, f"unable to read {target}", err)
        if not chunk:
            return
        try:
            new.write(chunk)
        except OSError as err:
            exitcodes.fatal_sys(PROG, f"unable to write to {tmp}", err)


def append_message(new, name: str, mtime: int, tmp: str) -> None:
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to read $MAILDIR/{name}", err)
    first = data.split(b"\n", 1)[0] + (b"\n" if b"\n" in data else b"")
    try:
        new.write(from_line(first, mtime))
        new.write(mbox.quote(data) if data else b"\n")
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to write to {tmp}", err)
