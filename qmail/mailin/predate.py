"""predate: run a program with a Date: line in local time put before its input.

    predate child [ arg ... ]

Starts child with a pipe as its standard input, writes "Date: 25 Nov 2026 06:10:00 +0100"
(the local time and its offset from UTC, rounded to the minute) and then everything
predate reads, and exits with the child's exit code (datemail uses it before sendmail).

Exit codes: the child's; 100 without a child; 111 when the pipe, the fork or the wait
fails, or the child crashes ("predate: fatal: child crashed"), or cannot be run.
Environment: TZ, as the C library reads it, for the local time.
"""

import calendar
import os
import sys
import time

from qmail.formats import date822
from ucspi.runtime import children, exitcodes, filters, launch

PROG = "predate"


def date_line(now: int) -> bytes:
    """The Date: field for now in local time, with its numeric zone."""
    local = time.localtime(now)
    offset = calendar.timegm(local) - calendar.timegm(time.gmtime(now))
    minutes = (abs(offset) + 30) // 60
    sign = "-" if offset < 0 else "+"
    return (f"Date: {local.tm_mday} {date822.MONTHS[local.tm_mon - 1]} {local.tm_year} "
            f"{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d} "
            f"{sign}{minutes // 60:02d}{minutes % 60:02d}\n").encode()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) < 2:
        exitcodes.say("predate: usage: predate child")
        return exitcodes.PERMANENT
    try:
        read_end, write_end = os.pipe()
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to create pipe", err)
    try:
        pid = launch.spawn(argv[1:], fds={0: read_end})
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to fork", err)
    os.close(read_end)
    now = int(time.time())
    # A child that stops reading early is its own business, as with qmail's predate.
    filters.feed(write_end, date_line(now))
    os.close(write_end)
    return children.exit_code(PROG, pid)
