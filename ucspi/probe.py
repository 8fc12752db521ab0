"""ucspi-probe: report what a program started by the suite sees (a diagnostic).

Synopsis:
    ucspi-probe [ -x code | -k signal ] [ arg ... ]

Writes one JSON object to descriptor 1: argv, environment, cwd, uid/gid/groups (and the
saved uid and gid, whether the process is dumpable, whether it could take root back), umask,
resource limits, open descriptors, signal dispositions and mask (from /proc/self/status),
process title, the time zone the C library and the time module use, and whether the
process was warm-started. Administrators use it the way
they use `env` at the end of a run script chain; the tests use it to show that a
warm-started program sees what an exec'd one sees. With -x it then exits with code, with
-k it kills itself with signal (to check how a parent sees the end).

Exit codes: 0, or the -x code; 100 usage.
"""

import ctypes  # here: a warm probe after a uid change may not read the library any more
import json
import io
import os
import resource
import signal
import sys
import time

from ucspi.runtime import durable, launch, sgetopt

PROG = "ucspi-probe"

_LIMITS = ("RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE",
           "RLIMIT_MEMLOCK", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS", "RLIMIT_STACK")


def report() -> dict:
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("SigBlk", "SigIgn", "SigCgt"):
                status[key] = value.strip()
    fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
    with open("/proc/self/cmdline", "rb") as f:
        title = f.read()
    umask = os.umask(0)
    os.umask(umask)
    return {
        "argv": sys.argv,
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), sorted(os.getgroups())],
        "saved_ids": [os.getresuid()[2], os.getresgid()[2]],
        "dumpable": _dumpable(),
        "regains_root": _regains_root(),
        "umask": umask,
        "limits": {name: resource.getrlimit(getattr(resource, name)) for name in _LIMITS},
        # the directory listing itself holds one descriptor open while listing
        "fds": [fd for fd in fds if launch.is_open(fd)],
        "signals": status,
        "title": title.replace(b"\0", b" ").decode("utf-8", "replace").strip(),
        "warm": "ucspi.runtime.launch" in sys.modules and sys.modules["ucspi.runtime.launch"]._identity_cache != {},
        "pid": os.getpid(),
        "tz": [time.timezone, *time.tzname, time.strftime("%z", time.localtime(0))],
        "stdio": {name: _stream(getattr(sys, name)) for name in ("stdin", "stdout", "stderr")},
    }


def _dumpable() -> int | None:
    """prctl(PR_GET_DUMPABLE): 0 when another user may not ptrace us or read /proc/self."""
    try:
        return ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)
    except (OSError, AttributeError):
        return None


def _regains_root() -> bool | None:
    """Whether a process not running as root could make root its effective uid again (a
    saved root uid would let it): tried in a forked child, so this one stays as it is."""
    if os.geteuid() == 0:
        return None
    pid = os.fork()
    if pid == 0:
        try:
            os.seteuid(0)
            os._exit(0)
        except OSError:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _stream(stream) -> dict | None:
    """What a program can observe of one of its standard streams."""
    if stream is None:
        return None
    return {"fileno": stream.fileno(), "name": stream.name, "mode": stream.mode, "encoding": stream.encoding,
            "errors": stream.errors, "line_buffering": stream.line_buffering,
            "write_through": stream.write_through, "seekable": stream.seekable(),
            "isatty": stream.isatty(), "buffered": not isinstance(stream.buffer, io.FileIO)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    opts, _ = sgetopt.options(argv, "x:k:", PROG, "ucspi-probe [ -x code | -k signal ] [ arg ... ]")
    data = json.dumps(report(), sort_keys=True).encode() + b"\n"
    durable.write_all(1, data)
    for opt, arg in opts:
        if opt == "x":
            return int(arg)
        if opt == "k":
            if int(arg) not in (signal.SIGKILL, signal.SIGSTOP):
                signal.signal(int(arg), signal.SIG_DFL)
            os.kill(os.getpid(), int(arg))
    return 0
