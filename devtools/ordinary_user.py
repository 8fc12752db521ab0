"""The project as an ordinary user sees it: embedded mode, `make run`, the end-to-end tests
and benchmarks run as such a user (as root: a created one, run through setpriv).

That user may not be able to run the project's interpreter (a pyenv under /root, mode 0700)
nor read the checkout (a private directory), so fresh_copy() copies the working tree (what
git tracks or would track) into a world-readable temporary directory owned by the user,
without a .venv; project_copy() builds its venv there (once per process) with
user_python(): the interpreter running this when the user can run it, so that a test run
on Python 3.x builds 3.x, else the system's python3.
"""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from devtools.harness import ROOT

USER_PATH = "/usr/local/bin:/usr/bin:/bin"
UNPRIVILEGED_USER = "suitetest"
_copies: dict[str, Path] = {}
_usable: dict[str, bool] = {}


def unprivileged_user() -> pwd.struct_passwd:
    """An ordinary user for embedded mode: the current one, or (as root) a created one."""
    if os.getuid() != 0:
        return pwd.getpwuid(os.getuid())
    try:
        return pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh",
                        UNPRIVILEGED_USER], check=True, capture_output=True)
        return pwd.getpwnam(UNPRIVILEGED_USER)


def as_user(argv, user: pwd.struct_passwd) -> list[str]:
    """argv prefixed so that it runs as user (setpriv when root, unchanged otherwise).
    The programs must be ones user can run: as root in a checkout that user cannot, the
    test run moves into project_copy() first (tests/conftest.py)."""
    argv = [str(a) for a in argv]
    if os.getuid() != 0:
        return argv
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *argv]


def checkout_usable() -> bool:
    """Whether the ordinary user can run this checkout's venv and import the suite from it
    (asked once: through /bin/sh, as make and run scripts start programs)."""
    if "checkout" not in _usable:
        python = ROOT / ".venv" / "bin" / "python"
        probe = ["/bin/sh", "-c", 'exec "$0" -c "$1"', python,
                 "import qmail.mailin.qmail_smtpd, supervise, ucspi.tcpserver"]
        done = subprocess.run(as_user(probe, unprivileged_user()), cwd="/",
                              env=user_env(Path("/")), capture_output=True, timeout=60)
        _usable["checkout"] = done.returncode == 0
    return _usable["checkout"]


def user_env(home: Path, **extra) -> dict:
    """A plain environment for the ordinary user: no pyenv, no venv, no QMAIL_ROOT."""
    env = {"PATH": USER_PATH, "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


class NoUserPython(Exception):
    """No interpreter the ordinary user can run: the message says what to do."""


def user_python() -> str:
    """An interpreter the ordinary user can run, with venv and ensurepip: the one running
    this (the base of its venv), else /usr/bin/python3 or /usr/local/bin/python3, else
    python3 on the user's PATH. NoUserPython when there is none.

    The probe runs the candidate through /bin/sh as make will, and checks the interpreter
    that answered is the candidate: some kernels let setpriv's exec of a path under a 0700
    directory land elsewhere while sh gets "Permission denied"."""
    probe = ("import os, sys, venv, ensurepip; print(os.path.realpath(sys.executable)); "
             "sys.exit(sys.version_info < (3, 11))")
    running = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    tried = []
    for candidate in dict.fromkeys((running, "/usr/bin/python3", "/usr/local/bin/python3", "python3")):
        tried.append(candidate)
        done = subprocess.run(as_user(["/bin/sh", "-c", 'exec "$0" -c "$1"', candidate, probe],
                                      unprivileged_user()),
                              cwd="/", env=user_env(Path("/")), capture_output=True, timeout=60)
        answered = done.stdout.decode(errors="replace").strip()
        expected = shutil.which(candidate, path=USER_PATH) if "/" not in candidate else candidate
        if done.returncode == 0 and expected and answered == os.path.realpath(expected):
            return candidate
    raise NoUserPython(
        f"the ordinary user {unprivileged_user().pw_name} can run no Python 3.11+ with venv "
        f"and ensurepip (tried {', '.join(tried)}); the embedded-mode tests run as that user. "
        "Install one every user can run (Debian: apt-get install python3 python3-venv) or "
        "run make test PYTHON=/path/to/such/python3.")


def fresh_copy(prefix: str = "e2e-") -> Path:
    """A new copy of the working tree (no .venv, no var), owned by the ordinary user."""
    user = unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    src = copy_project(base / "src")
    if os.getuid() == 0:
        for path in [base, *base.rglob("*")]:
            os.lchown(path, user.pw_uid, user.pw_gid)
    return src


def copy_project(dest: Path) -> Path:
    """The working tree's files (project_files(), no .venv, no var) copied to dest, every
    directory and file readable by everyone (0755, 0644 or 0755 as the file is executable)."""
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o755)
    for name in project_files():
        if not name or name.startswith(("var/", ".venv/")):
            continue
        path = ROOT / name
        if not path.is_file() or path.is_symlink():
            continue
        target = dest / name
        for d in reversed([p for p in target.parents if dest in p.parents]):
            if not d.is_dir():
                d.mkdir()
                d.chmod(0o755)
        shutil.copyfile(path, target)
        shutil.copystat(path, target)
        target.chmod(0o755 if path.stat().st_mode & 0o100 else 0o644)
    return dest


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
    """This process's copy of the project with its venv built (made once, then reused)."""
    if "venv" not in _copies:
        src = fresh_copy()
        done = subprocess.run(as_user(["make", "-s", "venv", f"PYTHON={user_python()}"],
                                      unprivileged_user()),
                              env=user_env(src.parent), cwd=src, capture_output=True,
                              timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        _copies["venv"] = src
    return _copies["venv"]


def remove_copies() -> None:
    for src in _copies.values():
        shutil.rmtree(src.parent, ignore_errors=True)
    _copies.clear()
