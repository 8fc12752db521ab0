"""bench_qmail: an embedded qmail tree and a running qmail-start for bench/send and bench/queue.

Not a benchmark itself (`make bench` runs it too: it does nothing).  As root the tree is
installed and run as an ordinary user (BENCH_USER, default suitetest, else nobody), so
that qmail-start stays in embedded mode; otherwise as the current user.

    user = bench_user()                  # None: run as we are
    root = install(base, user)           # base/qmail, --embedded --fqdn bench.example
    send = Send(root, user)              # qmail-start ./Maildir/, its own process group
    for when, line in send.lines(30): ...
    send.stop()                          # SIGTERM to the group, bounded
"""

import os
import pwd
import select
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python")


def bench_user():
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("BENCH_USER"), "suitetest", "nobody"):
        if name:
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
    sys.exit("bench: no ordinary user to run as")


def as_user(argv, user):
    if user is None:
        return [str(a) for a in argv]
    return [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}", "--clear-groups", *[str(a) for a in argv]]


def install(base: Path, user) -> str:
    root = base / "qmail"
    root.mkdir()
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    subprocess.run(as_user([BIN / "qmail-install", "--embedded", "--fqdn", "bench.example", root], user),
                   check=True, timeout=120, env=environment(str(root)))
    return str(root)


def environment(root: str) -> dict:
    env = dict(os.environ, QMAIL_ROOT=root, PATH=f"{BIN}:/usr/bin:/bin")
    env.pop("PYTHONPATH", None)
    return env


class Send:
    """qmail-start running; its log read line by line with timestamps."""

    def __init__(self, root: str, user):
        self.proc = subprocess.Popen(as_user([BIN / "qmail-start", "./Maildir/"], user),
                                     env=environment(root), stdout=subprocess.PIPE,
                                     start_new_session=True)
        self.buffer = b""

    def lines(self, timeout: float):
        """(time, line) pairs as they come, until timeout seconds without one."""
        fd = self.proc.stdout.fileno()
        while True:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                return
            data = os.read(fd, 65536)
            now = time.monotonic()
            if not data:
                return
            self.buffer += data
            *done, self.buffer = self.buffer.split(b"\n")
            for line in done:
                yield now, line.decode("latin-1")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to the process group; the log is read meanwhile (a full pipe would
        hold qmail-send in a write), SIGKILL after timeout seconds."""
        deadline = time.monotonic() + timeout
        self.signal(signal.SIGTERM)
        while self.proc.poll() is None and time.monotonic() < deadline:
            for when, _ in self.lines(1):
                if when > deadline:
                    break
        try:
            self.proc.wait(0.1)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)

    def signal(self, signum: int) -> None:
        """signum to qmail-start's process group (all of qmail-send's helpers)."""
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass


def show(label: str, values: list[float], unit: str) -> None:
    values = [v for v in values if v == v] or [float("nan")]
    print(f"{label:52} median {statistics.median(values):8.2f} min {min(values):8.2f} "
          f"max {max(values):8.2f} {unit}")
