"""qmail-install in root mode (as `make setup check`): qmail's users and groups, the
queue's owners and modes; the queue then written only by qmailq, directly (root) or
through qmail-queued (any other user), with the Received wording of qmail-queue.c."""

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from qmail.formats import envelope
from qmail.queue import queue_layout
from tests import qmail_trees, support

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="root mode needs root")


@pytest.fixture(scope="module")
def root_tree():
    base = Path(tempfile.mkdtemp(prefix="qmail-root-"))
    base.chmod(0o755)
    root = str(base / "qmail")
    done = support.run([support.prog("qmail-install"), "--fqdn", "mx.example.net", root],
                       timeout=120)
    assert done.returncode == 0, done.stderr
    try:
        yield root
    finally:
        shutil.rmtree(base, ignore_errors=True)


def ids(name):
    return pwd.getpwnam(name).pw_uid


def test_qmail_users_and_groups_exist(root_tree):
    qmail, nofiles = grp.getgrnam("qmail").gr_gid, grp.getgrnam("nofiles").gr_gid
    for user, group in (("alias", nofiles), ("qmaild", nofiles), ("qmaill", nofiles),
                        ("qmailp", nofiles), ("qmailq", qmail), ("qmailr", qmail),
                        ("qmails", qmail)):
        assert pwd.getpwnam(user).pw_gid == group


def test_queue_owners_and_modes_are_qmails(root_tree):
    qmail = grp.getgrnam("qmail").gr_gid
    for path, d in queue_layout.all_dirs(queue_layout.queue_dir(root_tree)):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (ids(d.owner), qmail, d.mode), path
    lock = os.path.join(queue_layout.queue_dir(root_tree), "lock")
    for name, owner, mode, _ in queue_layout.LOCK_FILES:
        st = os.stat(os.path.join(lock, name))
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (ids(owner), mode), name
    st = os.stat(os.path.join(root_tree, "run"))
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (ids("qmailq"), 0o755)
    st = os.stat(os.path.join(root_tree, "alias"))
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (ids("alias"), 0o2755)
    assert os.path.getsize(os.path.join(root_tree, "alias", ".qmail-postmaster")) == 0


def test_second_run_is_idempotent(root_tree):
    before = sorted(os.listdir(os.path.join(root_tree, "bin")))
    done = support.run([support.prog("qmail-install"), root_tree], timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(os.path.join(root_tree, "bin"))) == before
    assert open(os.path.join(root_tree, "control", "me")).read() == "mx.example.net\n"


def queue_as(root, user_name, message=b"x\n"):
    with tempfile.TemporaryFile() as m, tempfile.TemporaryFile() as e:
        m.write(message)
        e.write(envelope.encode("s@x", ["r@x"]))
        m.seek(0)
        e.seek(0)
        argv = [os.path.join(root, "bin", "qmail-queue")]
        if user_name != "root":
            user = pwd.getpwnam(user_name)
            argv = support.as_user(argv, user)
        done = subprocess.run(argv, stdin=m, stdout=e, stderr=subprocess.PIPE, timeout=30,
                              env=support.suite_env())
    return done.returncode


def newest(root, before):
    [num] = sorted(set(qmail_trees.queued(root)) - set(before))
    return num


@pytest.mark.parametrize("user_name, words", [
    ("root", b"invoked by uid 0)"),
    ("qmaild", b"invoked from network)"),
    ("alias", b"invoked by alias)"),
    ("qmails", b"invoked for bounce)"),
    (None, None),  # an ordinary user
])
def test_every_caller_queues_and_only_qmailq_writes(root_tree, user_name, words):
    if user_name is None:
        user_name = support.unprivileged_user().pw_name
        words = f"invoked by uid {ids(user_name)})".encode()
    sock = queue_layout.service_socket(root_tree)
    # started as qmailq (not unixserver -u): a Python whose library only root can read
    # could not import after switching
    proc = support.Proc(support.as_user([support.prog("unixserver"), "-p", "0666", sock,
                                         os.path.join(root_tree, "bin", "qmail-queued")],
                                        pwd.getpwnam("qmailq")))
    try:
        support.wait_for(lambda: os.path.exists(sock), what="service socket")
        before = qmail_trees.queued(root_tree)
        assert queue_as(root_tree, user_name) == 0
        num = newest(root_tree, before)
        assert words in qmail_trees.message(root_tree, num).split(b"\n")[0]
        qdir = queue_layout.queue_dir(root_tree)
        for path in (queue_layout.mess(qdir, num), queue_layout.todo(qdir, num)):
            assert os.stat(path).st_uid == ids("qmailq")
    finally:
        proc.stop()
