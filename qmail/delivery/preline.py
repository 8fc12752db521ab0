"""preline: feed a program with the delivery's From_, Return-Path and Delivered-To lines
in front of the message (preline(1)).

Synopsis:
    preline [ -frdFRD ] cmd [ arg ... ]

For .qmail lines such as `|preline procmail`: cmd gets $UFLINE, $RPLINE and $DTLINE
(set by qmail-local) and then the message on its input. -f, -r, -d leave out the From_,
Return-Path, Delivered-To line; -F, -R, -D put it back.

Exit codes: cmd's; 100 usage (also when UFLINE, RPLINE or DTLINE is not set) or cmd not
runnable for good; 111 temporary trouble or cmd crashed.
"""

import os
import signal
import sys

from ucspi.runtime import children, durable, exitcodes, sgetopt, launch

PROG = "preline"
USAGE = "preline cmd [ arg ... ]"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    lines = {}
    for name in (b"UFLINE", b"RPLINE", b"DTLINE"):
        if name not in os.environb:
            exitcodes.usage(PROG, USAGE)
        lines[name] = os.environb[name]
    opts, rest = sgetopt.options(argv, "frdFRD", PROG, USAGE)
    wanted = {b"UFLINE": True, b"RPLINE": True, b"DTLINE": True}
    for opt, _ in opts:
        key = {"f": b"UFLINE", "r": b"RPLINE", "d": b"DTLINE"}[opt.lower()]
        wanted[key] = opt.isupper()
    if not rest:
        exitcodes.usage(PROG, USAGE)
    try:
        read_end, write_end = os.pipe()
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to create pipe", err)
    try:
        pid = launch.spawn(rest, fds={0: read_end}, code=launch.ERROR_TEMP,
                           complaint=f"{PROG}: fatal: unable to run {rest[0]}: {{reason}}")
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to fork", err)
    os.close(read_end)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    head = b"".join(lines[k] for k in (b"UFLINE", b"RPLINE", b"DTLINE") if wanted[k])
    try:
        durable.write_all(write_end, head)
        while True:
            chunk = os.read(0, 65536)
            if not chunk:
                break
            durable.write_all(write_end, chunk)
    except OSError as err:  # a program that stops reading early included, as in qmail
        exitcodes.fatal_sys(PROG, "unable to copy input", err)
    os.close(write_end)
    return children.exit_code(PROG, pid)
