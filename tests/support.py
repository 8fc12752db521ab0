"""Test support shared by every test module: where the programs are, the C tools, short
runs and connections, temporary service trees, the signals this run inherited.

What the benchmarks and `make run` need too lives in devtools (harness: our programs'
environment, free ports, processes started and stopped by PID, bounded waits, the process
table; ordinary_user: the user embedded mode runs as and a copy of the project it can use);
it is imported here so that a test module needs `support` alone.

Our programs are run from .venv/bin by absolute path; the C reference tools by their
absolute Debian path (/usr/bin/...). Never by bare name: both sets share names.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from devtools.harness import (BIN, DEFAULT_TIMEOUT, ROOT, LineReader, Proc,  # noqa: F401
                              child_pids, connection_children, free_port, kill_all,
                              processes_under, session_members, stop_all, suite_env,
                              wait_for, wait_port)
from devtools.ordinary_user import (as_user, fresh_copy, project_copy,  # noqa: F401
                                    remove_copies, unprivileged_user, user_env,
                                    user_python)

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


def run(argv, input: bytes | None = None, env=None, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    """Run a program to completion (bounded), capturing stdout and stderr as bytes."""
    return subprocess.run([str(a) for a in argv], input=input, env=env if env is not None else suite_env(),
                          capture_output=True, timeout=timeout, **kw)


def run_with_fd3(argv, data: bytes | None, user=None, setup: str = "", env=None,
                 timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run argv with data on descriptor 3 (a pipe, filled first: data is small), or with
    descriptor 3 closed when data is None, as the checkpassword interface wants. bash puts
    the pipe on 3 in the child (this process's 3 may be pytest's), after the shell commands
    setup (ulimit...); as user when given (as_user)."""
    r, w = os.pipe()
    os.write(w, data or b"")
    os.close(w)
    redirect = f"3<&{r}" if data is not None else "3<&-"
    command = ["/bin/bash", "-c", f'{setup}exec "$@" {redirect} {r}<&-', "bash", *map(str, argv)]
    if user is not None:
        command = as_user(command, user)
    try:
        return subprocess.run(command, env=env, pass_fds=(r,), capture_output=True,
                              timeout=timeout, **kw)
    finally:
        os.close(r)


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


def inherited_ignored(sig) -> bool:
    """Whether this test process inherited sig ignored: then every program started from
    here finds it ignored too (exec keeps ignored signals), and a shell script cannot even
    trap it (POSIX: a signal ignored on entry to a non-interactive shell stays ignored).
    A run started in the background of a script or under nohup has SIGINT and SIGQUIT so."""
    return bool(inherited_ignored_signals() & (1 << (int(sig) - 1)))
