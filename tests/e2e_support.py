"""End-to-end rigs: the project as an ordinary user sees it, and a running service tree.

The project's own .venv may use an interpreter other users cannot run (a pyenv under
/root) and the checkout may sit where they cannot go, so the end-to-end tests work on a
copy: project_copy() copies the working tree (what git tracks or would track) once per
test session into a world-readable temporary directory owned by support.unprivileged_user(),
without a .venv; `make venv` (or `make run`) there builds one with an interpreter everyone
can run (/usr/bin/python3 when it has venv and ensurepip, else python3 from PATH).
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests import support

ROOT = Path(__file__).resolve().parent.parent
USER_PATH = "/usr/local/bin:/usr/bin:/bin"
_copies: dict[str, Path] = {}


def user_python() -> str:
    """An interpreter an ordinary user can run, with venv and ensurepip."""
    probe = "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))"
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK) and subprocess.run(
                [candidate, "-c", probe], capture_output=True, timeout=60).returncode == 0:
            return candidate
    return "python3"


def user_env(home: Path, **extra) -> dict:
    """A plain environment for the ordinary user: no pyenv, no venv, no QMAIL_ROOT."""
    env = {"PATH": USER_PATH, "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def fresh_copy(prefix: str = "e2e-") -> Path:
    """A new copy of the working tree (no .venv, no var), owned by the ordinary user."""
    user = support.unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    src = base / "src"
    for name in project_files():
        if not name or name.startswith(("var/", ".venv/")):
            continue
        path = ROOT / name
        if not path.is_file() or path.is_symlink():
            continue
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    if os.getuid() == 0:
        for path in [base, *base.rglob("*")]:
            os.lchown(path, user.pw_uid, user.pw_gid)
    return src


def project_files() -> list[str]:
    """What a fresh clone would hold (plus files not yet committed): git's list, or, where
    git cannot list (no git, a checkout owned by someone else), the tree without build
    products."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
        return [n for n in listed.decode().split("\0") if n]
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "var", "__pycache__", "build", ".pytest_cache",
                ".hypothesis"}
        found = []
        for top, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
            found += [os.path.relpath(os.path.join(top, f), ROOT) for f in files]
        return found


def project_copy() -> Path:
    """The session's copy of the project with its venv built (made once, then reused)."""
    if "venv" not in _copies:
        src = fresh_copy()
        done = support.run(support.as_user(["make", "-s", "venv", f"PYTHON={user_python()}"],
                                           support.unprivileged_user()),
                           env=user_env(src.parent), cwd=src, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        _copies["venv"] = src
    return _copies["venv"]


def remove_copies() -> None:
    for src in _copies.values():
        shutil.rmtree(src.parent, ignore_errors=True)
    _copies.clear()


def session_members(sid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live process in session sid, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            if fields[0] == b"Z" or int(fields[3]) != sid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        found.append((int(entry), cmdline))
    return found


def processes_under(path: str) -> list[tuple[int, str]]:
    """(pid, command line) of live processes whose command line or cwd mentions path."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            if stat[stat.rindex(b")") + 2:].split()[0] == b"Z":
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                cwd = ""
        except (OSError, ValueError):
            continue
        if path in cmdline or cwd.startswith(path):
            found.append((int(entry), cmdline))
    return found


def kill_all(pids, timeout: float = 10) -> None:
    """SIGKILL each pid (a cleanup of a failed test) and wait, bounded, for them to go."""
    for pid, _ in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p, _ in pids):
        time.sleep(0.05)
