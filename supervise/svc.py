"""svc: control services monitored by supervise (daemontools 0.76).

Synopsis: svc [ -udopchaitkx ] services

Each option becomes one command byte, written once (in the order first given) to
service/supervise/control for every service named:
  -u up   -d down   -o once   -x exit   -p pause (STOP)   -c continue (CONT)
  -h HUP  -a ALRM   -i INT    -t TERM   -k KILL

A service that cannot be controlled gets a warning (`svc: warning: unable to control X:
supervise not running`) and svc goes on to the next one.

Exit codes: 0 (also after warnings, as the C original); 100 for an unknown option;
111 if the current directory cannot be opened or returned to.
Files: service/supervise/control (never created).
"""

import errno
import os
import sys

from ucspi.runtime import durable, exitcodes, sgetopt

PROG = "svc"
OPTIONS = "udopchaitkx"
USAGE = ("svc options: u up, d down, o once, x exit, p pause, c continue, h hup, a alarm, "
         "i interrupt, t term, k kill")


def _commands(opts: list[tuple[str, str]]) -> bytes:
    """Each option letter once, in order of first appearance (C's byte_chr check)."""
    data = ""
    for letter, _ in opts:
        if letter not in data:
            data += letter
    return data.encode()


def _control(directory: str, data: bytes) -> None:
    try:
        os.chdir(directory)
    except OSError as err:
        exitcodes.warn_sys(PROG, f"unable to chdir to {directory}", err)
        return
    try:
        fd = os.open("supervise/control", os.O_WRONLY | os.O_NONBLOCK)
    except OSError as err:
        if err.errno == errno.ENXIO:
            exitcodes.warn(PROG, f"unable to control {directory}: supervise not running")
        else:
            exitcodes.warn_sys(PROG, f"unable to control {directory}", err)
        return
    try:
        os.set_blocking(fd, True)
        durable.write_all(fd, data)
    except OSError as err:
        exitcodes.warn_sys(PROG, f"error writing commands to {directory}", err)
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    try:
        opts, dirs = sgetopt.getopt(argv, OPTIONS, PROG)
    except sgetopt.UsageError:
        exitcodes.say(USAGE)  # svc's usage line has no "svc: usage:" prefix
        return exitcodes.PERMANENT
    data = _commands(opts)
    try:
        here = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to open current directory", err)
    for directory in dirs:
        _control(directory, data)
        try:
            os.fchdir(here)
        except OSError as err:
            exitcodes.fatal_sys(PROG, "unable to set directory", err)
    return 0
