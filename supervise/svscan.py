"""svscan: start and monitor a collection of services (daemontools 0.76).

Synopsis: svscan [ directory ]

Switches to directory (default: stay in the current directory), then every five seconds
looks at its subdirectories. For each subdirectory s whose name does not start with a dot
(a symbolic link to a directory counts; the same directory reached twice counts once),
it starts `supervise s` unless a supervise it started for s is still running. If s/log
is a directory (and the name s is at most 255 bytes), it also starts `supervise log`
inside s, with a pipe from the service's standard output to the logger's standard input.
svscan holds both ends of that pipe for as long as s is in its table, so either side can
be restarted without losing what is buffered in the pipe. A supervise that exits is
restarted at the next scan; a directory that disappeared is forgotten once its
supervise processes have exited. At most 1000 directories are handled.

Children get descriptors 0, 1 and 2 (the pipe end in place of 1 for a service with a log,
of 0 for its logger) and nothing else of svscan's. Our own supervise is started warm
(ucspi.runtime.launch): forked from this process with its module already imported, titled
`supervise s` / `supervise log`. Children that died are reaped as they die.

svscan is meant to run forever: trouble reading the directory, creating a pipe or
starting supervise is a warning (`svscan: warning: ...` on stderr) and is retried five
seconds later. svscan keeps default signal dispositions (SIGTERM and SIGINT end it;
the supervise processes keep running), as the C program does.

Exit codes: 111 when it cannot switch to directory; it never exits otherwise.
Environment: PATH is searched for supervise; the environment is passed on unchanged.
UCSPI_WARMSTART=0 makes it exec supervise instead of starting it warm.
"""

import errno
import os
import signal
import stat
import sys
import time
from dataclasses import dataclass


from ucspi.runtime import children, exitcodes, launch

PROG = "svscan"
SERVICES = 1000  # the C program's table size
SCAN_INTERVAL = 5.0
LOG_NAME_MAX = 255  # a longer name gets no log (the C program's buffer)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) > 1:
        try:
            os.chdir(argv[1])
        except OSError as err:
            exitcodes.fatal_sys(PROG, f"unable to chdir to {argv[1]}", err)
    _c_signal_defaults()
    launch.set_title(" ".join(argv))
    launch.preload("supervise")
    # SIGCHLD stays blocked: the sleep between scans is a sigtimedwait that reaps
    # children as they die, so no zombie waits five seconds and no handler races a fork.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    scanner = Scanner()
    while True:
        scanner.scan()
        scanner.pause(SCAN_INTERVAL)


def _c_signal_defaults() -> None:
    """SIGINT and SIGPIPE as a C program has them (unless inherited as ignored)."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # An inherited SIGCHLD ignore would make the kernel reap supervise unseen, and a dead
    # supervise would never be restarted.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def _start_child(argv: list[str], fds: dict[int, int], cwd: str | None, label: str) -> int:
    """fork; the child sets up descriptors and directory and becomes supervise.

    Returns the child's pid; raises OSError when fork fails. A child that cannot run
    supervise reports it with the C program's words and exits 111.
    """
    return launch.spawn(argv, fds=fds, cwd=cwd, complaint={
        "fds": f"{PROG}: warning: unable to set up descriptors for {label}: {{reason}}",
        "cwd": f"{PROG}: warning: unable to switch to {cwd}: {{reason}}",
        "run": f"{PROG}: warning: unable to start supervise {label}: {{reason}}"})


@dataclass
class Service:
    """One directory of the table, known by device and inode as the C program does."""
    name: str
    log: bool
    pipe: tuple[int, int] | None = None
    pid: int = 0
    pidlog: int = 0
    active: bool = False


class Scanner:
    """svscan's table: what was started for which directory, and the scan that uses it."""

    def __init__(self) -> None:
        self.services: dict[tuple[int, int], Service] = {}

    def scan(self) -> None:
        """One pass over the directory, as the C program's doit()."""
        self.reap()
        for service in self.services.values():
            service.active = False
        try:
            with os.scandir(".") as entries:
                for entry in entries:
                    self.start(entry.name)
        except OSError as err:
            exitcodes.warn_sys(PROG, "unable to read directory", err)
            return
        for key, service in list(self.services.items()):
            if not service.active and not service.pid and not service.pidlog:
                if service.pipe:
                    for fd in service.pipe:
                        os.close(fd)
                del self.services[key]

    def start(self, name: str) -> None:
        """Start what is missing for the subdirectory name."""
        if name.startswith("."):
            return
        try:
            st = os.stat(name)
        except OSError as err:
            exitcodes.warn_sys(PROG, f"unable to stat {name}", err)
            return
        if not stat.S_ISDIR(st.st_mode):
            return
        key = (st.st_dev, st.st_ino)
        service = self.services.get(key)
        if service is None:
            service = self.enter(key, name)
            if service is None:
                return
        service.active = True
        if not service.pid:
            fds = {1: service.pipe[1]} if service.log else {}
            try:
                service.pid = _start_child(["supervise", name], fds, None, name)
            except OSError as err:
                exitcodes.warn_sys(PROG, f"unable to fork for {name}", err)
                return
        if service.log and not service.pidlog:
            try:
                service.pidlog = _start_child(["supervise", "log"], {0: service.pipe[0]},
                                              name, f"{name}/log")
            except OSError as err:
                exitcodes.warn_sys(PROG, f"unable to fork for {name}/log", err)

    def enter(self, key: tuple[int, int], name: str) -> Service | None:
        """A new table entry for name (None: a warning was given, try next scan)."""
        if len(self.services) >= SERVICES:
            exitcodes.warn(PROG, f"unable to start {name}: running too many services")
            return None
        log = False
        if len(os.fsencode(name)) <= LOG_NAME_MAX:
            try:
                log = stat.S_ISDIR(os.stat(os.path.join(name, "log")).st_mode)
            except OSError as err:
                if err.errno != errno.ENOENT:
                    exitcodes.warn_sys(PROG, f"unable to stat {name}/log", err)
                    return None
        service = Service(name, log)
        if log:
            try:
                service.pipe = os.pipe()  # close-on-exec: only the dup2'd copies pass on
            except OSError as err:
                exitcodes.warn_sys(PROG, f"unable to create pipe for {name}", err)
                return None
        self.services[key] = service
        return service

    def reap(self) -> None:
        """Collect every dead child and mark its slot free for the next scan."""
        for pid, _ in children.ended():
            for service in self.services.values():
                if service.pid == pid:
                    service.pid = 0
                    break
                if service.pidlog == pid:
                    service.pidlog = 0
                    break

    def pause(self, seconds: float) -> None:
        """Sleep until the next scan, reaping children the moment they die."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if signal.sigtimedwait({signal.SIGCHLD}, left) is not None:
                self.reap()
