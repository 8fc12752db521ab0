"""svstat: print the status of services monitored by supervise (daemontools 0.76).

Synopsis: svstat services

For each service one line on stdout, exactly as the C original prints it:
  X: up (pid N) S seconds[, normally down][, paused][, want down]
  X: down S seconds[, normally up][, want up]
  X: supervise not running
  X: unable to chdir: REASON
  X: unable to stat down: REASON
  X: unable to open supervise/ok: REASON
  X: unable to open supervise/status: REASON
  X: unable to read supervise/status: REASON (bad format: shorter than 18 bytes)
S is the number of seconds since the service went up or down.

Read-only: svstat creates and changes nothing.
Exit codes: 0; 111 if the current directory cannot be opened or returned to.
Files: service/down, service/supervise/ok, service/supervise/status.
"""

import errno
import os
import sys

from supervise import status_file
from ucspi.runtime import exitcodes

PROG = "svstat"


def describe() -> str:
    """The text after the service name, for the service in the current directory."""
    normally_up = False
    try:
        os.stat("down")
    except FileNotFoundError:
        normally_up = True
    except OSError as err:
        return f": unable to stat down: {exitcodes.error_str(err)}"
    try:
        os.close(os.open("supervise/ok", os.O_WRONLY | os.O_NONBLOCK))
    except OSError as err:
        if err.errno == errno.ENXIO:
            return ": supervise not running"
        return f": unable to open supervise/ok: {exitcodes.error_str(err)}"
    try:
        fd = os.open("supervise/status", os.O_RDONLY)
    except OSError as err:
        return f": unable to open supervise/status: {exitcodes.error_str(err)}"
    try:
        data = os.read(fd, status_file.SIZE)
    except OSError as err:
        return f": unable to read supervise/status: {exitcodes.error_str(err)}"
    finally:
        os.close(fd)
    try:
        status = status_file.unpack(data)
    except status_file.BadFormat:
        return ": unable to read supervise/status: bad format"
    now = status_file.now_tai64()
    # C svstat goes through a double (tai_approx): beyond 2**53 the count is rounded.
    seconds = int(float(now - min(status.tai_seconds, now)))
    if status.pid:
        text = f": up (pid {status.pid}) {seconds} seconds"
        if not normally_up:
            text += ", normally down"
        if status.paused:
            text += ", paused"
        if status.want == "d":
            text += ", want down"
    else:
        text = f": down {seconds} seconds"
        if normally_up:
            text += ", normally up"
        if status.want == "u":
            text += ", want up"
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    try:
        here = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to open current directory", err)
    out = sys.stdout.buffer
    for directory in argv[1:]:
        try:
            os.chdir(directory)
        except OSError as err:
            line = f"{directory}: unable to chdir: {exitcodes.error_str(err)}"
        else:
            line = directory + describe()
        out.write(os.fsencode(line) + b"\n")
        try:
            os.fchdir(here)
        except OSError as err:
            out.flush()
            exitcodes.fatal_sys(PROG, "unable to set directory", err)
    out.flush()
    return 0
