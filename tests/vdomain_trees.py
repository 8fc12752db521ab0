"""Embedded qmail trees with virtual domains, for the qmail-vuser, checkvpw and Dovecot tests.

    root, user = vtree                       # fixture: a tree owned by an ordinary user,
                                             # with example.org and bob@example.org (PASSWORD)
    done = vuser(root, user, "add", "x@example.org", input=b"pw\\n")
    record(b"bob@example.org", PASSWORD)     # what checkvpw reads on descriptor 3
    run_checkvpw(root, data, prog, user)     # run checkvpw PROG with data on descriptor 3
    rig                                      # fixture: qmail-send running in vtree's tree

Every program runs as that user (through setpriv when the tests run as root), as embedded
mode has it.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import qmail_trees, support
from tests.qmail_send_rig import Rig

DOMAIN = "example.org"
USER = "bob"
ADDRESS = f"{USER}@{DOMAIN}"
PASSWORD = "s3cret pass"


def env(root: str, **extra) -> dict:
    return support.suite_env(QMAIL_ROOT=root, **extra)


def vuser(root: str, user, *args: str, input: bytes | None = None, timeout: float = 60):
    """Run qmail-vuser ARGS as user in root's tree."""
    argv = support.as_user([support.prog("qmail-vuser"), *args], user)
    return support.run(argv, input=input, env=env(root), timeout=timeout)


def ok(done) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def record(login: bytes, password: str | bytes) -> bytes:
    if isinstance(password, str):
        password = password.encode()
    return login + b"\0" + password + b"\0\0"


def run_checkvpw(root: str, data: bytes | None, prog, user=None, vm_kb: int | None = None,
                 **extra):
    """Run checkvpw PROG (as user, or as this process's user when None) with data on
    descriptor 3 (None: descriptor 3 closed; support.run_with_fd3). vm_kb: the
    limits softlimit -m sets (address space, data, stack). extra: more environment (None
    removes a variable)."""
    limit = f"ulimit -v {vm_kb} -d {vm_kb} -s {vm_kb}; " if vm_kb else ""
    return support.run_with_fd3([support.prog("checkvpw"), *prog], data, user=user, setup=limit,
                                env=env(root, **extra), cwd="/", stdin=subprocess.DEVNULL)


def domain_dir(root: str, domain: str = DOMAIN) -> Path:
    return Path(root) / "vdomains" / domain


def maildir(root: str, address: str = ADDRESS) -> Path:
    user, domain = address.split("@")
    return domain_dir(root, domain) / user / "Maildir"


@pytest.fixture
def bare_tree():
    """(root, user, base): an embedded tree owned by an ordinary user, no virtual domain;
    base is a directory that user can read and write."""
    user = support.unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix="vdomain-tree-"))
    base.chmod(0o755)
    try:
        yield qmail_trees.embedded_tree(base, owner=user), user, base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def vtree(bare_tree):
    """(root, user): bare_tree with example.org and bob@example.org (PASSWORD)."""
    root, user, _ = bare_tree
    ok(vuser(root, user, "adddomain", DOMAIN))
    ok(vuser(root, user, "add", ADDRESS, input=PASSWORD.encode() + b"\n"))
    return root, user


@pytest.fixture
def rig(vtree):
    """qmail-start running as vtree's user in its tree (tests/qmail_send_rig.py)."""
    root, user = vtree
    running = Rig(root, user, Path(root).parent)
    running.start()
    try:
        yield running
    finally:
        running.stop()
