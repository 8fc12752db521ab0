"""maildirwatch: look for new mail in a Maildir (maildirwatch(1)).

Synopsis:
    MAILDIR=dir maildirwatch

Every 30 seconds: clears the (VT100) screen and shows each message in $MAILDIR/new,
oldest first, as `FROM sender TO <recipient>` (from its Return-Path and Delivered-To
lines), its From: line in bold, and its Subject and first body text (158 characters at
most). Runs until killed. Also removes files abandoned in $MAILDIR/tmp for 36 hours.

Exit codes: 111 when $MAILDIR is not set or cannot be read.
"""

import os
import sys
import time

from qmail.delivery import mail_summary, maildir
from ucspi.runtime import exitcodes

PROG = "maildirwatch"
CLEAR = b"\033[;H\033[;J"
INTERVAL = 30


def describe(data: bytes) -> bytes:
    """One message's entry on the screen."""
    glimpse = mail_summary.Glimpse(b"", 158).feed(data)
    sender = recipient = b"?"
    fromline = b""
    if "return-path" in glimpse.fields:
        field = glimpse.fields["return-path"]
        if mail_summary.skip_name(field) < len(field):
            sender = field[mail_summary.skip_name(field):-1]
    if "delivered-to" in glimpse.fields:
        field = glimpse.fields["delivered-to"]
        if mail_summary.skip_name(field) < len(field):
            recipient = field[mail_summary.skip_name(field):-1]
    if "from" in glimpse.fields:
        fromline = glimpse.fields["from"][:-1]
    out = (b"FROM " + mail_summary.printable(sender, b"?") + b" TO <"
           + mail_summary.printable(recipient, b"?") + b">\n")
    if fromline:
        out += b"\033[1m" + mail_summary.printable(fromline, b"/") + b"\033[0m\n"
    return out + mail_summary.printable(bytes(glimpse.text), b"/") + b"\n\n"


def screen(where: str) -> bytes:
    maildir.clean_tmp(where)
    try:
        found = maildir.scan(where, subdirs=("new",))
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to scan $MAILDIR/new", err)
    out = bytearray()
    for _, name in found:
        try:
            with open(os.path.join(where, name), "rb") as f:
                data = f.read()
        except OSError:
            continue
        out += describe(data)
    return bytes(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    try:
        maildir.chdir_env()
    except maildir.ChdirError as err:
        exitcodes.fatal(PROG, str(err))
    while True:
        sys.stdout.buffer.write(CLEAR)
        sys.stdout.buffer.flush()
        sys.stdout.buffer.write(screen("."))
        sys.stdout.buffer.flush()
        time.sleep(INTERVAL)
