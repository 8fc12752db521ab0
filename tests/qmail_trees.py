"""qmail installation trees for tests: built by our qmail-install, never by hand.

    root = qmail_trees.embedded_tree(tmp_path)             # ROOT = tmp_path/"qmail"
    root = qmail_trees.embedded_tree(tmp_path, fqdn="mx.example.org", owner=user)

embedded_tree runs `qmail-install --embedded --fqdn FQDN ROOT` (as `owner`, a pwd entry,
when given: the tree then belongs to that user, for tests running as an ordinary user;
tmp_path must then be reachable by that user: use the user_tree fixture, which gives
(root, user) in a directory outside pytest's root-only tmp tree and removes it after).
Helpers read the queue the way qmail-send would see it.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from qmail.formats import envelope
from qmail.queue import queue_layout
from tests import support

FQDN = "mail.example.com"


def embedded_tree(tmp_path, fqdn: str = FQDN, owner=None, name: str = "qmail") -> str:
    """A fresh embedded-mode installation under tmp_path/name; returns its root (str)."""
    root = Path(tmp_path) / name
    argv = [support.prog("qmail-install"), "--embedded", "--fqdn", fqdn, str(root)]
    if owner is not None:
        os.makedirs(root, exist_ok=True)
        os.chown(root, owner.pw_uid, owner.pw_gid)
        argv = support.as_user(argv, owner)
    done = support.run(argv, env=support.suite_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    return str(root)


@pytest.fixture
def user_tree():
    """(root, user): an embedded tree owned by an ordinary user (support.unprivileged_user)."""
    user = support.unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix="qmail-tree-"))
    base.chmod(0o755)
    try:
        yield embedded_tree(base, owner=user), user
    finally:
        shutil.rmtree(base, ignore_errors=True)


def queued(root: str) -> list[int]:
    """Numbers of the messages visible to qmail-send (those with a todo file), sorted."""
    return sorted(queue_layout.numbers(queue_layout.queue_dir(root), "todo"))


def message(root: str, num: int) -> bytes:
    with open(queue_layout.mess(queue_layout.queue_dir(root), num), "rb") as f:
        return f.read()


def todo(root: str, num: int) -> envelope.TodoFile:
    with open(queue_layout.todo(queue_layout.queue_dir(root), num), "rb") as f:
        return envelope.decode_todo(f.read())


def files(root: str, kind: str) -> list[int]:
    """Message numbers present in queue/kind (mess, intd, todo, info ...)."""
    return sorted(queue_layout.numbers(queue_layout.queue_dir(root), kind))


def pid_files(root: str) -> list[str]:
    return os.listdir(os.path.join(queue_layout.queue_dir(root), "pid"))
