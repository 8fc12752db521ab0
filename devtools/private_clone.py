"""make test-private-clone: `make test` as a root newcomer runs it (issue 21).

Synopsis: python -m devtools.private_clone [ --python PY ] [ --keep ] [ TEST ... ]

Clones the repository (its committed HEAD) into a private directory (mode 0700, as /root
or any `mktemp -d` is) and runs `make test PYTHON=PY PYTEST_ARGS="TEST..."` there twice:
once as started, once with SIGINT and SIGQUIT ignored (what `make test &`, nohup and CI
runners hand down). PY defaults to `python3` as found on PATH, root's default: often a
private interpreter (a pyenv under /root) that the ordinary user the embedded-mode tests
drop to can neither run nor reach, and the checkout is one that user cannot enter either;
the tests must cope: tests/conftest.py then moves the run into a world-readable copy
with a venv of an interpreter that user can run (devtools.ordinary_user.project_copy). TEST defaults to a representative slice: embedded end to end, qmail-local,
make run. Exit 0 when both runs pass; the clone is removed unless --keep.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from devtools.harness import ROOT

SLICE = ("tests/test_e2e.py", "tests/test_qmail_local.py", "tests/test_make_run.py")


def say(text: str) -> None:
    print(f"private-clone: {text}", flush=True)


def ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    args = list((sys.argv if argv is None else argv)[1:])
    keep = "--keep" in args
    args = [a for a in args if a != "--keep"]
    python = shutil.which("python3") or "python3"
    if args[:1] == ["--python"] and len(args) > 1:
        python, args = args[1], args[2:]
    tests = args or list(SLICE)
    base = tempfile.mkdtemp(prefix="djb-private-")
    os.chmod(base, 0o700)
    clone = os.path.join(base, "p")
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MAKEFLAGS", "MAKELEVEL")}
    failed = []
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), clone], check=True, timeout=300)
        for label, preexec in (("as started", None), ("SIGINT and SIGQUIT ignored", ignore_interrupts)):
            # A fresh venv each time: the second run must not lean on the first's.
            shutil.rmtree(os.path.join(clone, ".venv"), ignore_errors=True)
            say(f"{label}: make test PYTHON={python} in {clone} (mode 0700): {' '.join(tests)}")
            started = time.monotonic()
            done = subprocess.run(["make", "-s", "test", f"PYTHON={python}",
                                   f"PYTEST_ARGS=-q -p no:cacheprovider {' '.join(tests)}"],
                                  cwd=clone, env=env, stdin=subprocess.DEVNULL,
                                  preexec_fn=preexec)
            outcome = "passed" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
            say(f"{label}: {outcome} in {time.monotonic() - started:.0f} s")
            if done.returncode != 0:
                failed.append(label)
    finally:
        if keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
