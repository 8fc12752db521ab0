"""Processes and ports for the tests and the benchmarks: our programs' environment, free
ports, processes started and stopped by PID, bounded waits, the process table (/proc).

Our programs are run from .venv/bin by absolute path, never by bare name: the C reference
tools share their names. No pytest here: the benchmarks and `make run` use this too.
"""

import os
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"

DEFAULT_TIMEOUT = 10.0


def suite_env(**extra) -> dict:
    """The environment for our programs: our bin directory first in PATH; a keyword set
    to None removes that variable."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env.pop("PYTHONPATH", None)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = DEFAULT_TIMEOUT, interval: float = 0.02, what: str = "condition"):
    """Poll predicate() until it returns a true value; bounded in time. Returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT) -> None:
    """Wait until something accepts connections on host:port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    def ready():
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            try:
                s.connect((host, port))
                return True
            except OSError:
                return False
    wait_for(ready, timeout, what=f"{host}:{port} to listen")


class LineReader:
    """Reads lines from a pipe with a deadline (for stderr logs of servers)."""

    def __init__(self, fileobj):
        self.fd = fileobj.fileno()
        self.buffer = b""
        self.lines: list[str] = []  # not yet consumed by wait_line
        self.history: list[str] = []  # every line ever read
        self.eof = False

    def _fill(self, timeout: float) -> None:
        if self.eof:
            return
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if ready:
            data = os.read(self.fd, 65536)
            if not data:
                self.eof = True
                return
            self.buffer += data
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                text = line.decode("utf-8", "replace")
                self.lines.append(text)
                self.history.append(text)

    def wait_line(self, predicate, timeout: float = DEFAULT_TIMEOUT) -> str:
        """First line not yet consumed for which predicate(line) (or `substring in line`) holds."""
        test = predicate if callable(predicate) else (lambda line: predicate in line)
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for i in range(seen, len(self.lines)):
                if test(self.lines[i]):
                    line = self.lines[i]
                    del self.lines[: i + 1]
                    return line
            seen = len(self.lines)
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                raise AssertionError(f"no line matching {predicate!r}; got {self.lines!r}")
            self._fill(min(left, 0.2))

    def read_available(self, timeout: float = 0.2) -> list[str]:
        """Lines that arrive within timeout, consumed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.eof:
            self._fill(deadline - time.monotonic())
        out, self.lines = self.lines, []
        return out


_running: list["Proc"] = []


class Proc:
    """A process started in a session of its own; stop() ends it by PID (TERM, then KILL).
    Until then stop_all() knows it (the tests' conftest calls that after each test)."""

    def __init__(self, argv, env=None, cwd=None, stdin=subprocess.DEVNULL,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(), **kw):
        self.argv = [str(a) for a in argv]
        self.popen = subprocess.Popen(self.argv, env=env if env is not None else suite_env(),
                                      cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr,
                                      pass_fds=pass_fds, start_new_session=True, **kw)
        self.pid = self.popen.pid
        self.out = LineReader(self.popen.stdout) if stdout == subprocess.PIPE else None
        self.err = LineReader(self.popen.stderr) if stderr == subprocess.PIPE else None
        _running.append(self)

    def detach(self) -> None:
        """Left out of stop_all(): whoever started it stops it (a fixture wider than a test)."""
        if self in _running:
            _running.remove(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        return self.popen.wait(timeout)

    def send_signal(self, sig) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout: float = 5.0) -> int | None:
        """Stop by PID; anything left in its process group is killed too."""
        if self.alive():
            try:
                os.kill(self.pid, sig)
                self.popen.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            if self.alive():
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (self.popen.stdout, self.popen.stderr, self.popen.stdin):
            if stream:
                stream.close()
        self.detach()
        return self.popen.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def stop_all() -> None:
    """Stop every Proc still known (not stopped, not detached)."""
    for proc in list(_running):
        proc.stop()


def child_pids(pid: int) -> list[int]:
    """The pids of pid's children (Linux /proc), [] when it has none or is gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(word) for word in f.read().split()]
    except OSError:
        return []


def connection_children(server_pid: int) -> list[int]:
    """The per-connection children of our tcpserver or unixserver: those of its fork
    helper (ucspi.runtime.fork_helper, titled "PROG: fork helper"), and those it started itself
    (external programs through posix_spawn)."""
    found = []
    for kid in child_pids(server_pid):
        try:
            with open(f"/proc/{kid}/cmdline", "rb") as f:
                helper = f.read().rstrip(b"\0").endswith(b": fork helper")
        except OSError:
            continue
        found.extend(child_pids(kid) if helper else [kid])
    return found


def _live_processes():
    """(pid, the fields of /proc/PID/stat after the command name) of every process that is
    not a zombie."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2:].split()
        except (OSError, ValueError):
            continue
        if fields and fields[0] != b"Z":
            yield int(entry), fields


def _command_line(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


def session_members(sid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live process in session sid."""
    found = []
    for pid, fields in _live_processes():
        try:
            if int(fields[3]) == sid:
                found.append((pid, _command_line(pid)))
        except (OSError, ValueError, IndexError):
            continue
    return found


def processes_under(path: str) -> list[tuple[int, str]]:
    """(pid, command line) of live processes (but this one) whose command line or working
    directory mentions path."""
    found = []
    for pid, _ in _live_processes():
        if pid == os.getpid():
            continue
        try:
            cmdline = _command_line(pid)
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                cwd = ""
        except OSError:
            continue
        if path in cmdline or cwd.startswith(path):
            found.append((pid, cmdline))
    return found


def kill_all(pids, timeout: float = 10) -> None:
    """SIGKILL each (pid, command line) (a cleanup of a failed run) and wait, bounded, for
    them to go."""
    for pid, _ in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p, _ in pids):
        time.sleep(0.05)
