"""supervise: start and monitor a service (daemontools 0.76).

Synopsis: supervise dir

supervise changes to dir and runs ./run, restarting it when it exits (never more than
once a second: after each start supervise pauses 1 second, as the C original does).
If dir/down exists the service is not started until `svc -u`. State lives in
dir/supervise/, created (mode 0700) if missing:

    lock      held with an exclusive lock while supervise runs; a second supervise on
              the same directory exits 111
    control   FIFO (0600): one byte per command, written by svc:
              u up (start, restart when it exits)   d down (TERM then CONT; no restart)
              o once (start if down; no restart)    x exit once the service is down
              p STOP  c CONT  h HUP  a ALRM  i INT  t TERM  k KILL; other bytes ignored
    ok        FIFO (0600) opened for reading: svok/svstat see that supervise runs
    status    the 18-byte record of supervise/status_file.py, replaced atomically
              (status.new, fsync, rename) on every change

Beyond 0.76 (daemontools-encore/runit style): if dir/finish is executable it runs after
each exit of ./run, as `./finish EXITCODE SIGNAL` (EXITCODE -1 when ./run was killed by
signal SIGNAL; SIGNAL 0 after a normal exit, as runit passes them). ./run is not
restarted before ./finish has exited, and `x` waits for it too.

./run gets descriptors 0, 1, 2 of supervise and nothing else, default signal
dispositions, and supervise's environment; our own programs start warm (ucspi.runtime.launch).
The process title is `supervise dir`.

Exit codes: 0 after `svc -x` once the service is down; 100 usage; 111 system trouble
(cannot change to dir, lock held by another supervise, FIFOs unusable).
Environment: passed unchanged to ./run (UCSPI_WARMSTART=0 disables warm start).
"""

import fcntl
import os
import select
import signal
import stat
import sys
import time

from supervise import status_file
from ucspi.runtime import children, durable, exitcodes, launch, self_pipe

PROG = "supervise"
POLL_SECONDS = 3600.0  # C's iopause deadline; any signal or command wakes us sooner


def _make_fifo(path: str) -> None:
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        pass
    except OSError:
        pass  # as fifo_make's result is unchecked in C: the open below reports trouble


def _make_state_dir() -> None:
    """mkdir supervise; a dangling symlink named supervise gets its target created
    (Debian's 0.76 patch, so supervise/ may point into /run)."""
    try:
        os.mkdir("supervise", 0o700)
    except FileExistsError:
        if os.path.islink("supervise") and not os.path.exists("supervise"):
            try:
                os.mkdir(os.readlink("supervise"), 0o700)
            except OSError:
                pass
    except OSError:
        pass  # reported by the lock's open below


def _executable(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and os.access(path, os.X_OK)


def _wait_args(wstat: int) -> list[str]:
    """runit's ./finish arguments: exit code (-1 if killed) and the signal (0 if exited)."""
    if os.WIFEXITED(wstat):
        return [str(os.WEXITSTATUS(wstat)), "0"]
    return ["-1", str(wstat & 0x7F)]


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass  # already gone: C ignores kill's result too


class Supervisor:
    """The state of one supervised service and the C supervise's event loop."""

    def __init__(self, directory: str, want_up: bool):
        self.dir = directory
        self.flag_exit = False
        self.flag_want = True        # False after `o`: run once, do not restart
        self.flag_want_up = want_up
        self.flag_paused = False     # meaningful only while pid != 0
        self.pid = 0                 # ./run's pid, 0 when down
        self.finish_pid = 0          # ./finish's pid while it runs
        self.start_pending = False   # u/o arrived while ./finish ran
        self.when = status_file.now_tai64n()
        self.selfpipe_r = self.selfpipe_w = -1
        self.control = -1

    # -- status -----------------------------------------------------------------
    def pid_change(self) -> None:
        self.when = status_file.now_tai64n()

    def announce(self) -> None:
        """Write supervise/status (warn and go on on trouble, as C does)."""
        want = ("u" if self.flag_want_up else "d") if self.flag_want else ""
        record = status_file.Status(self.when[0], self.when[1], self.pid,
                                    1 if (self.pid and self.flag_paused) else 0, want)
        try:
            durable.write_bytes("supervise/status", status_file.pack(record),
                                tmp="supervise/status.new", mode=0o644)
        except OSError as err:
            # the failing step names itself as in C: unlink/open and rename carry file names
            if getattr(err, "filename2", None):
                exitcodes.warn_sys(PROG, f"unable to rename {self.dir}/supervise/status.new to status", err)
            elif getattr(err, "filename", None):
                exitcodes.warn_sys(PROG, f"unable to open {self.dir}/supervise/status.new", err)
            else:
                exitcodes.warn_sys(PROG, f"unable to write {self.dir}/supervise/status.new", err)

    # -- children ---------------------------------------------------------------
    def _fork(self, argv: list[str], what: str) -> int:
        """fork and run argv (exec'd, or warm if it is one of ours); 0 if fork failed."""
        try:
            return launch.spawn(argv, complaint=f"{PROG}: fatal: unable to start {self.dir}/{what}: {{reason}}")
        except OSError as err:
            exitcodes.warn_sys(PROG, f"unable to fork for {self.dir}, sleeping 60 seconds", err)
            time.sleep(60)
            self.trigger()  # Debian's patch: try again instead of waiting for an event
            return 0

    def try_start(self) -> None:
        if self.finish_pid:
            self.start_pending = True  # ./finish must end before ./run starts again
            return
        pid = self._fork(["./run"], "run")
        if not pid:
            return
        self.flag_paused = False
        self.pid = pid
        self.pid_change()
        self.announce()
        time.sleep(1)  # C's deepsleep(1): at most one start per second

    def start_finish(self, wstat: int) -> bool:
        if not _executable("finish"):
            return False
        self.finish_pid = self._fork(["./finish", *_wait_args(wstat)], "finish")
        return bool(self.finish_pid)

    def trigger(self) -> None:
        try:
            os.write(self.selfpipe_w, b"\0")
        except OSError:
            pass

    def reap(self) -> bool:
        """Collect exited children; returns True when supervise should exit now."""
        for r, wstat in children.ended():
            if r == self.pid:
                self.pid = 0
                self.pid_change()
                self.announce()
                if self.start_finish(wstat):
                    continue
                if self.flag_exit:
                    return True
                if self.flag_want and self.flag_want_up:
                    self.try_start()
                # C's break: read a command before collecting the next child, or a
                # service that dies at once would keep supervise from ever reading one
                return False
            elif r == self.finish_pid:
                self.finish_pid = 0
                if self.flag_exit:
                    return True
                # A start asked for during ./finish: `u` leaves want up; `o` is pending
                # unless a later `u` or `d` replaced it.
                pending, self.start_pending = self.start_pending, False
                if (self.flag_want and self.flag_want_up) or (pending and not self.flag_want):
                    self.try_start()
                return False
        return False

    # -- commands ---------------------------------------------------------------
    def signal_service(self, sig: int) -> None:
        if self.pid:
            _kill(self.pid, sig)

    def command(self, ch: bytes) -> None:
        if ch == b"d":
            self.flag_want = True
            self.flag_want_up = False
            if self.pid:
                _kill(self.pid, signal.SIGTERM)
                _kill(self.pid, signal.SIGCONT)
                self.flag_paused = False
            self.announce()
        elif ch == b"u":
            self.flag_want = True
            self.flag_want_up = True
            self.announce()
            if not self.pid:
                self.try_start()
        elif ch == b"o":
            self.flag_want = False
            self.announce()
            if not self.pid:
                self.try_start()
        elif ch == b"p":
            self.flag_paused = True
            self.announce()
            self.signal_service(signal.SIGSTOP)
        elif ch == b"c":
            self.flag_paused = False
            self.announce()
            self.signal_service(signal.SIGCONT)
        elif ch == b"x":
            self.flag_exit = True
            self.announce()
        elif ch in _SIGNALS:
            self.signal_service(_SIGNALS[ch])

    def run(self) -> None:
        """C's doit(): wait for a child or a command, one command byte per round."""
        self.announce()
        poller = select.poll()
        poller.register(self.selfpipe_r, select.POLLIN)
        poller.register(self.control, select.POLLIN)
        while True:
            if self.flag_exit and not self.pid and not self.finish_pid:
                return
            poller.poll(POLL_SECONDS * 1000)
            self_pipe.drain(self.selfpipe_r)
            if self.reap():
                return
            try:
                ch = os.read(self.control, 1)
            except BlockingIOError:
                ch = b""
            if ch:
                self.command(ch)


_SIGNALS = {b"a": signal.SIGALRM, b"h": signal.SIGHUP, b"k": signal.SIGKILL,
            b"t": signal.SIGTERM, b"i": signal.SIGINT}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) != 2:
        exitcodes.usage(PROG, "supervise dir")
    directory = argv[1]
    try:
        launch.set_title(f"supervise {directory}")
    except Exception:
        pass  # a title is a courtesy; never a reason to fail
    # Die on INT as the C program does (Python would raise KeyboardInterrupt); an
    # inherited SIG_IGN stays.
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    try:
        selfpipe_r, selfpipe_w = self_pipe.open_wakeup()
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to create pipe for {directory}", err)
    # SIGCHLD's handler does nothing: the interpreter writes the wake-up byte for us.
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)

    try:
        os.chdir(directory)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to chdir to {directory}", err)
    want_up = True
    try:
        os.stat("down")
        want_up = False
    except FileNotFoundError:
        pass
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to stat {directory}/down", err)

    _make_state_dir()
    try:
        lock = os.open("supervise/lock", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to acquire {directory}/supervise/lock", err)

    _make_fifo("supervise/control")
    try:
        control = os.open("supervise/control", os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to read {directory}/supervise/control", err)
    try:
        # Our own writer keeps the FIFO from ever reading end-of-file.
        control_keep = os.open("supervise/control", os.O_WRONLY | os.O_NONBLOCK)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to write {directory}/supervise/control", err)

    sup = Supervisor(directory, want_up)
    sup.selfpipe_r, sup.selfpipe_w, sup.control = selfpipe_r, selfpipe_w, control
    sup.pid_change()
    sup.announce()

    _make_fifo("supervise/ok")
    try:
        ok = os.open("supervise/ok", os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to read {directory}/supervise/ok", err)

    if not sup.flag_want or sup.flag_want_up:
        sup.try_start()
    sup.run()
    sup.announce()
    for fd in (ok, control_keep, control, lock):
        os.close(fd)
    return 0
