"""Test support shared by every test module: where the programs are, free ports,
processes started and stopped by PID, bounded waits, temporary service trees, C tools.

Our programs are run from .venv/bin by absolute path; the C reference tools by their
absolute Debian path (/usr/bin/...). Never by bare name: both sets share names.
"""

import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python")

# Debian package that provides each C reference tool (for the skip message).
C_PACKAGES = {
    **{n: "ucspi-tcp" for n in ("tcpserver", "tcprules", "tcprulescheck", "tcpclient",
                                "recordio", "rblsmtpd", "addcr", "delcr", "argv0")},
    **{n: "daemontools" for n in ("svscan", "supervise", "svc", "svstat", "svok", "multilog",
                                  "tai64n", "tai64nlocal", "setuidgid", "envuidgid", "envdir",
                                  "softlimit", "setlock", "pgrphack", "fghack",
                                  "readproctitle", "svscanboot")},
    "dot-forward": "dot-forward",
}

DEFAULT_TIMEOUT = 10.0


def prog(name: str) -> str:
    """Absolute path of our program `name` in .venv/bin."""
    path = BIN / name
    assert path.exists(), f"{path} missing: run `make venv`"
    return str(path)


def c_tool(name: str) -> str:
    """Absolute path of the C reference tool, or a visible skip when it is not installed."""
    path = Path("/usr/bin") / name
    if not path.exists():
        pytest.skip(f"C reference {name} not installed (apt-get install {C_PACKAGES.get(name, '?')})")
    return str(path)


def have_c_tool(name: str) -> bool:
    return (Path("/usr/bin") / name).exists()


def suite_env(**extra) -> dict:
    """The environment for our programs: our bin directory first in PATH."""
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


def connect(port: int, host: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def recv_all(sock: socket.socket, timeout: float = DEFAULT_TIMEOUT, limit: int = 1 << 22) -> bytes:
    """Everything the peer sends until it closes (bounded in time and size)."""
    sock.settimeout(timeout)
    chunks, total = [], 0
    deadline = time.monotonic() + timeout
    while total < limit and time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            break
        chunks.append(data)
        total += len(data)
    return b"".join(chunks)


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
    """A process a test started; stop() ends it by PID (TERM, then KILL)."""

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
        if self in _running:
            _running.remove(self)
        return self.popen.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def stop_all() -> None:
    """Stop every Proc a test left running (called after each test by conftest)."""
    for proc in list(_running):
        proc.stop()


def run(argv, input: bytes | None = None, env=None, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    """Run a program to completion (bounded), capturing stdout and stderr as bytes."""
    return subprocess.run([str(a) for a in argv], input=input, env=env if env is not None else suite_env(),
                          capture_output=True, timeout=timeout, **kw)


def service_tree(base: Path, services: dict[str, str], logs: dict[str, str] | None = None) -> Path:
    """A service directory tree: base/NAME/run (executable) and optional base/NAME/log/run."""
    base.mkdir(parents=True, exist_ok=True)
    for name, script in services.items():
        d = base / name
        d.mkdir()
        (d / "run").write_text(script)
        (d / "run").chmod(0o755)
        if logs and name in logs:
            (d / "log").mkdir()
            (d / "log" / "run").write_text(logs[name])
            (d / "log" / "run").chmod(0o755)
    return base


UNPRIVILEGED_USER = "suitetest"


def unprivileged_user() -> pwd.struct_passwd:
    """An ordinary user for embedded-mode tests: the current one, or (as root) a created one."""
    if os.getuid() != 0:
        return pwd.getpwuid(os.getuid())
    try:
        return pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh",
                        UNPRIVILEGED_USER], check=True, capture_output=True)
        return pwd.getpwnam(UNPRIVILEGED_USER)


def as_user(argv, user: pwd.struct_passwd) -> list[str]:
    """argv prefixed so that it runs as user (setpriv when root, unchanged otherwise)."""
    if os.getuid() != 0:
        return [str(a) for a in argv]
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            *[str(a) for a in argv]]


def inherited_ignored_signals() -> int:
    """The SigIgn mask this test process inherited (what exec passes on to every program
    started from here), without the SIGPIPE/SIGXFSZ that Python ignores itself. A parent
    started through posix_spawn, as GNU make does, passes on glibc's internal signals
    32 and 33 ignored, for instance."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("SigIgn:"):
                mask = int(line.split()[1], 16)
                break
    return mask & ~((1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1)))


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
