"""softlimit: run a program with new soft resource limits (daemontools 0.76).

Synopsis:
    softlimit [-a allbytes] [-c corebytes] [-d databytes] [-f filebytes] [-l lockbytes]
              [-m membytes] [-o openfiles] [-p processes] [-r residentbytes]
              [-s stackbytes] [-t cpusecs] child ...

Each option sets one soft limit (-m sets data, stack, locked memory and address space)
to n, capped at the hard limit; n = "=" means the hard limit itself. Options take
effect in order, as they are read. n is decimal digits only (empty means 0; larger
than 2**64-1 wraps as in C). Hard limits are never changed.

Exit codes: 100 usage (including a bad n); 111 getrlimit or setrlimit failed, cannot
run child; otherwise child's.
Environment: PATH finds child.
"""

import contextlib
import errno
import io
import resource
import signal
import sys

from supervise import pathexec
from ucspi.runtime import exitcodes, sgetopt

PROG = "softlimit"
USAGE = ("softlimit [-a allbytes] [-c corebytes] [-d databytes] [-f filebytes] "
         "[-l lockbytes] [-m membytes] [-o openfiles] [-p processes] [-r residentbytes] "
         "[-s stackbytes] [-t cpusecs] child")
OPTSTRING = "a:c:d:f:l:m:o:p:r:s:t:"

_R = resource
RESOURCES = {
    "a": (_R.RLIMIT_AS,),
    "c": (_R.RLIMIT_CORE,),
    "d": (_R.RLIMIT_DATA,),
    "f": (_R.RLIMIT_FSIZE,),
    "l": (_R.RLIMIT_MEMLOCK,),
    "m": (_R.RLIMIT_DATA, _R.RLIMIT_STACK, _R.RLIMIT_MEMLOCK, _R.RLIMIT_AS),
    "o": (_R.RLIMIT_NOFILE,),
    "p": (_R.RLIMIT_NPROC,),
    "r": (_R.RLIMIT_RSS,),
    "s": (_R.RLIMIT_STACK,),
    "t": (_R.RLIMIT_CPU,),
}

_WORD = 1 << 64  # rlim_t
_INFINITY = _WORD - 1


def parse_limit(arg: str) -> int | None:
    """n as softlimit reads it: None for "=" (the hard limit), else a 64-bit count.

    Raises ValueError for anything but decimal digits.
    """
    if arg == "=":
        return None
    if not all("0" <= ch <= "9" for ch in arg):
        raise ValueError(arg)
    return int(arg or "0") % _WORD


def soft_limit(wanted: int | None, hard: int) -> int:
    """The soft limit softlimit sets: wanted capped at hard (None: hard)."""
    return hard if wanted is None or wanted > hard else wanted


def _from_python(value: int) -> int:
    return _INFINITY if value == resource.RLIM_INFINITY else value % _WORD


def _to_python(value: int) -> int:
    # resource takes a signed long long; the same bits are the same rlim_t
    return value - _WORD if value >= 1 << 63 else value


def _apply(which: int, wanted: int | None) -> None:
    try:
        _, hard = resource.getrlimit(which)
    except (OSError, ValueError) as err:
        exitcodes.fatal_sys(PROG, "getrlimit failed", err)
    cur = soft_limit(wanted, _from_python(hard))
    try:
        resource.setrlimit(which, (_to_python(cur), hard))
    except ValueError as err:
        # resource turns EINVAL and EPERM into ValueError
        code = errno.EPERM if "raise" in str(err) else errno.EINVAL
        exitcodes.fatal_sys(PROG, "setrlimit failed", OSError(code, str(err)))
    except OSError as err:
        exitcodes.fatal_sys(PROG, "setrlimit failed", err)


def _parse(argv: list[str]):
    """(options, rest) or (options read before the error, None) after a usage error.

    0.76 acts on each option as getopt returns it, so a bad n before an unknown option
    ends in the usage line alone; getopt's complaint is held back until then.
    """
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            opts, rest = sgetopt.getopt(argv, OPTSTRING, PROG)
        return opts, rest, ""
    except sgetopt.UsageError:
        pass
    # the longest prefix getopt accepts holds the options read before the error
    for end in range(len(argv) - 1, 0, -1):
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                opts, rest = sgetopt.getopt(argv[:end], OPTSTRING, PROG)
        except sgetopt.UsageError:
            continue
        if not rest:
            return opts, None, held.getvalue()
    return [], None, held.getvalue()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    opts, rest, complaint = _parse(argv)
    # Without a child to run, the limits are read but not set: the outcome is C's usage
    # line either way, and a limit as low as 0 cpu seconds (or one that wraps to 0) would
    # let SIGXCPU kill this interpreter before it says so (C is gone before the next tick).
    setting = bool(rest)
    if setting:
        # The kernel counts a cpu limit in nanoseconds: one of 2**55 seconds or more wraps
        # to almost nothing, and SIGXCPU comes at its next tick. C is gone by then (into
        # its child, which dies of it, or out with its error); this slower interpreter
        # holds the signal until the child is started (exec or warm start unblock it, so
        # the child dies of it as C's does) and exits with C's code if none can be.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGXCPU})
    for opt, arg in opts:
        try:
            wanted = parse_limit(arg)
        except ValueError:
            exitcodes.usage(PROG, USAGE)
        for which in RESOURCES[opt] if setting else ():
            _apply(which, wanted)
    if rest is None:
        if complaint:
            exitcodes.say(complaint.rstrip("\n"))
        exitcodes.usage(PROG, USAGE)
    if not rest:
        exitcodes.usage(PROG, USAGE)
    try:
        pathexec.run(rest)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {rest[0]}", err)
