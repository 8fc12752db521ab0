"""make test-interpreters: the runtime's tests on each Python 3.11, 3.12 and 3.13 present.

Synopsis: python -m devtools.interpreters [ --keep ] [ VERSION ... ]   (default 3.11 3.12 3.13)

For each version it finds an interpreter (python3.X in /usr/bin, /usr/local/bin, on PATH,
then pyenv's versions/3.X.* under $PYENV_ROOT or ~/.pyenv, newest first) with venv and
ensurepip, and runs `make test PYTHON=it PYTEST_ARGS="TESTS"` (TESTS: warm start, fork
helper, CPython internals, privileges, tcpserver, end to end) in a copy of the project of its own, so each version
builds a .venv of its own; a version with no interpreter prints `skipped: no Python 3.X
here`. It exits 1 when a version's tests fail, 0 otherwise.

Run as root, some tests drop to an ordinary user (devtools.ordinary_user), who must be
able to run the interpreter and read the project. So the copies of the project live in a
world-readable temporary directory, and an interpreter that user cannot run (a pyenv
under /root, mode 0700) is copied there too, its standard test package left out: CPython
finds its prefix from its executable's place, and the only path a build stores absolutely
is the RUNPATH of a shared-library build (libpython in PREFIX/lib), which patchelf turns
into $ORIGIN/../lib. The copy must then run as that user with its prefix in the new
place, or the version fails (nothing is skipped quietly). Everything is removed at the
end unless --keep is given.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devtools.ordinary_user import as_user, copy_project, unprivileged_user, user_env

VERSIONS = ("3.11", "3.12", "3.13")
TESTS = ("tests/test_launch.py", "tests/test_fork_helper.py", "tests/test_cpython.py", "tests/test_sslserver.py",
         "tests/test_privileges.py", "tests/test_tcpserver.py", "tests/test_e2e.py")
PROBE = ("import sys, os, venv, ensurepip; "
         "print(f'{sys.version_info[0]}.{sys.version_info[1]}'); "
         "print(os.path.realpath(sys.executable)); print(sys.base_prefix); "
         "print(sys.version.split()[0])")


class Trouble(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    args = (sys.argv if argv is None else argv)[1:]
    keep = "--keep" in args
    versions = [a for a in args if a != "--keep"] or list(VERSIONS)
    os.umask(0o022)
    base = Path(tempfile.mkdtemp(prefix="djb-interpreters-"))
    base.chmod(0o755)
    results = []
    try:
        for version in versions:
            results.append((version, *one_version(version, base)))
    finally:
        if keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    say("summary:")
    for version, outcome, seconds in results:
        say(f"  Python {version}: {outcome} ({seconds:.0f} s)")
    return 1 if any(outcome.startswith("FAILED") for _, outcome, _ in results) else 0


def one_version(version: str, base: Path) -> tuple[str, float]:
    started = time.monotonic()
    found = find(version)
    if found is None:
        say(f"Python {version}: skipped: no Python {version} here (none with venv and ensurepip)")
        return "skipped: not here", 0.0
    executable, prefix, full = found
    try:
        runnable = usable_by_user(executable, base / f"python-{version}", prefix)
    except Trouble as trouble:
        say(f"Python {version}: FAILED: {trouble}")
        return f"FAILED: {trouble}", time.monotonic() - started
    where = "" if runnable == executable else f", run from {runnable}"
    say(f"== Python {full}: {executable}{where}: {' '.join(TESTS)}")
    src = copy_project(base / version / "src")
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MAKEFLAGS", "MAKELEVEL")}
    done = subprocess.run(["make", "-s", "test", f"PYTHON={runnable}",
                           f"PYTEST_ARGS=-q -p no:cacheprovider {' '.join(TESTS)}"],
                          cwd=src, env=env)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        return f"FAILED (make test exit {done.returncode}) with {runnable}", seconds
    return f"passed with {runnable}", seconds


def find(version: str) -> tuple[str, str, str] | None:
    """(real executable, its prefix, full version) of the first interpreter of version
    found with venv and ensurepip, or None."""
    for candidate in candidates(version):
        try:
            done = subprocess.run([candidate, "-c", PROBE], capture_output=True, text=True,
                                  timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        lines = done.stdout.split("\n")
        if done.returncode == 0 and lines[0] == version:
            return lines[1], lines[2], lines[3]
    return None


def candidates(version: str):
    for directory in ("/usr/bin", "/usr/local/bin"):
        yield f"{directory}/python{version}"
    on_path = shutil.which(f"python{version}")
    if on_path:
        yield on_path
    roots = [os.environ.get("PYENV_ROOT"), os.path.expanduser("~/.pyenv")]
    for root in dict.fromkeys(r for r in roots if r):
        versions = Path(root) / "versions"
        try:
            names = os.listdir(versions)
        except OSError:
            continue
        releases = [n for n in names if n.startswith(version + ".")
                    and n[len(version) + 1:].isdigit()]
        for name in sorted(releases, key=lambda n: int(n.split(".")[2]), reverse=True):
            yield str(versions / name / "bin" / f"python{version}")


def usable_by_user(executable: str, place: Path, prefix: str) -> str:
    """executable when the ordinary user can run it, else a copy of its installation in
    place that the user can run (Trouble when there is none)."""
    if user_can_run(executable, prefix):
        return executable
    if os.getuid() != 0:
        raise Trouble(f"{executable} does not run here")
    say(f"{executable}: {unprivileged_user().pw_name} cannot run it; copying {prefix} "
        f"to {place}")
    stdlib = os.path.join(prefix, "lib", f"python{version_of(executable)}")
    shutil.copytree(prefix, place, symlinks=True,
                    ignore=lambda d, names: ["test"] if d == stdlib else [])
    copied = os.path.join(place, os.path.relpath(executable, prefix))
    relink(copied, prefix, str(place))
    if not user_can_run(copied, str(place)):
        raise Trouble(f"its copy {copied} does not run as {unprivileged_user().pw_name} "
                      "with its prefix in the new place")
    return copied


def relink(executable: str, old: str, new: str) -> None:
    """Point the executable's RUNPATH entries inside old at the same places under new,
    relative to the executable ($ORIGIN)."""
    if not shutil.which("patchelf"):
        raise Trouble("patchelf is needed to move a shared-library build (apt-get install "
                      "patchelf)")
    current = subprocess.run(["patchelf", "--print-rpath", executable], capture_output=True,
                             text=True, check=True).stdout.strip()
    entries = []
    for entry in filter(None, current.split(":")):
        if entry == old or entry.startswith(old + "/"):
            moved = new + entry[len(old):]
            entry = "$ORIGIN/" + os.path.relpath(moved, os.path.dirname(executable))
        entries.append(entry)
    if entries != current.split(":") and current:
        subprocess.run(["patchelf", "--set-rpath", ":".join(entries), executable], check=True)


def version_of(executable: str) -> str:
    """3.X from the executable's name (python3.X)."""
    return os.path.basename(executable).removeprefix("python")


def user_can_run(executable: str, prefix: str) -> bool:
    """Whether the ordinary user runs executable, with venv and ensurepip, from prefix."""
    try:
        done = subprocess.run(as_user([executable, "-c", PROBE], unprivileged_user()),
                              cwd="/", env=user_env(Path("/")), capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    lines = done.stdout.split("\n")
    return done.returncode == 0 and len(lines) > 2 and lines[2] == prefix


def say(text: str) -> None:
    print(f"test-interpreters: {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
