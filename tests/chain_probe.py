"""The final program of the chain-tool tests: a script (exec'd, never one of ours) that
dumps the process state a daemontools chain tool hands over, so that the state left by
the C tool and by ours can be compared field by field."""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from tests import support

PROBE = r'''#!/usr/bin/python3 -I
import json, os, resource, sys
status = {}
with open("/proc/self/status") as f:
    for line in f:
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            status[key] = value.split()
with open("/proc/self/environ", "rb") as f:
    env = [e.decode("utf-8", "surrogateescape") for e in f.read().split(b"\0")[:-1]]
limits = {}
for name in dir(resource):
    if name.startswith("RLIMIT_"):
        limits[name] = list(resource.getrlimit(getattr(resource, name)))
fds = {}
for name in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink("/proc/self/fd/" + name)
        with open("/proc/self/fdinfo/" + name) as f:
            flags = [l.split()[1] for l in f if l.startswith("flags:")][0]
    except OSError:
        continue  # the listing's own descriptor
    if target.startswith("pipe:"):
        target = "pipe"
    # close-on-exec says nothing after exec; the access mode and O_APPEND/O_NONBLOCK do
    fds[name] = [target, oct(int(flags, 8) & ~0o2000000)]
umask = os.umask(0)
pid = os.getpid()
print(json.dumps({
    "argv": sys.argv[1:], "ids": status, "env": env, "limits": limits, "fds": fds,
    "umask": umask, "cwd": os.getcwd(),
    "pgrp_leader": os.getpgid(0) == pid, "session_leader": os.getsid(0) == pid,
}, sort_keys=True))
'''


@pytest.fixture
def shared_dir():
    """A directory every user can read (tmp_path is private to root)."""
    path = tempfile.mkdtemp(prefix="chaintest.", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def probe(shared_dir):
    """Path of the state-dumping script."""
    path = os.path.join(shared_dir, "probe")
    with open(path, "w") as f:
        f.write(PROBE)
    os.chmod(path, 0o755)
    return path


def ours(name: str) -> str:
    return support.prog(name)


def theirs(name: str) -> str:
    return support.c_tool(name)


def env(warm: bool, **extra) -> dict:
    """A small fixed environment (no locale), warm start on or off."""
    base = {"PATH": f"{support.BIN}:/usr/bin:/bin", "HOME": "/", "UCSPI_WARMSTART": "1" if warm else "0"}
    base.update({k: str(v) for k, v in extra.items()})
    return base


def run(argv, environ=None, timeout: float = 20, **kw) -> subprocess.CompletedProcess:
    return support.run(argv, env=environ if environ is not None else env(True), timeout=timeout, **kw)


def state(argv, environ=None, **kw) -> dict:
    """Run a chain ending in the probe; its report (the chain must succeed)."""
    done = run(argv, environ, **kw)
    assert done.returncode == 0, (argv, done.returncode, done.stderr)
    return json.loads(done.stdout)


def outcome(argv, environ=None, **kw) -> tuple:
    """(exit code, stdout, stderr) of a run, for comparing C and ours."""
    done = run(argv, environ, **kw)
    return done.returncode, done.stdout, done.stderr
