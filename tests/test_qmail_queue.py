"""qmail-queue: the queue writer's interface (fds 0 and 1, exit codes of qmail-queue(8)),
the files it leaves, and what a crash or a full disk leaves behind."""

import calendar
import os
import re
import signal
import stat
import subprocess
import tempfile
import time

import pytest

from qmail.formats import envelope
from qmail.queue import queue_layout
from tests import qmail_trees, support
from tests.qmail_trees import user_tree  # noqa: F401  (fixture)

RECEIVED = re.compile(rb"^Received: \(qmail (\d+) invoked by uid (\d+)\); "
                      rb"(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) "
                      rb"(\d\d):(\d\d):(\d\d) -0000\n")


def queue_run(root, message: bytes, env_bytes: bytes, argv=None, extra_env=None):
    """Run qmail-queue with message on fd 0 and env_bytes on fd 1; returns exit code."""
    with tempfile.TemporaryFile() as m, tempfile.TemporaryFile() as e:
        m.write(message)
        e.write(env_bytes)
        m.seek(0)
        e.seek(0)
        done = subprocess.run(argv or [support.prog("qmail-queue")], stdin=m, stdout=e,
                              stderr=subprocess.PIPE, timeout=30,
                              env=support.suite_env(QMAIL_ROOT=root, **(extra_env or {})))
    return done.returncode


def nothing_left(root):
    return (qmail_trees.files(root, "mess"), qmail_trees.files(root, "intd"),
            qmail_trees.files(root, "todo"), qmail_trees.pid_files(root)) == ([], [], [], [])


def test_message_and_envelope_are_queued_with_a_received_line(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    before = int(time.time())
    code = queue_run(root, b"Subject: hi\n\nbody\n", envelope.encode("a@b.c", ["d@e.f", "g@h"]))
    assert code == 0
    [num] = qmail_trees.queued(root)
    data = qmail_trees.message(root, num)
    match = RECEIVED.match(data)
    assert match, data
    assert int(match.group(2)) == os.getuid()
    assert data[match.end():] == b"Subject: hi\n\nbody\n"
    stamp = time.strptime(b" ".join(match.group(3, 4, 5)).decode() + " "
                          + b":".join(match.group(6, 7, 8)).decode(), "%d %b %Y %H:%M:%S")
    assert abs(calendar.timegm(stamp) - before) < 5
    todo = qmail_trees.todo(root, num)
    assert (todo.uid, todo.sender, todo.recipients) == (os.getuid(), b"a@b.c", [b"d@e.f", b"g@h"])
    assert todo.pid == int(match.group(1))


def test_message_number_is_the_inode_and_mess_is_split_by_23(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    assert queue_run(root, b"x\n", envelope.encode("", ["r@x"])) == 0
    [num] = qmail_trees.queued(root)
    qdir = queue_layout.queue_dir(root)
    path = os.path.join(qdir, "mess", str(num % 23), str(num))
    assert os.stat(path).st_ino == num
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.path.exists(os.path.join(qdir, "todo", str(num % 23), str(num)))
    assert qmail_trees.pid_files(root) == []


def test_date_in_received_line_is_qmail_date822(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    assert queue_run(root, b"", envelope.encode("", ["r@x"])) == 0
    [num] = qmail_trees.queued(root)
    line = qmail_trees.message(root, num).split(b"\n")[0]
    day = line.split(b"; ")[1].split(b" ")[0]
    assert not day.startswith(b"0")  # date822fmt writes the day without padding
    assert line.endswith(b" -0000")


def test_large_message_is_copied_exactly(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    body = bytes(range(256)) * 8000 + b"no final newline"
    assert queue_run(root, body, envelope.encode("s@x", ["r@x"])) == 0
    [num] = qmail_trees.queued(root)
    assert qmail_trees.message(root, num).split(b"\n", 1)[1] == body


def test_trigger_is_pulled_after_queueing(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    fd = os.open(queue_layout.trigger(queue_layout.queue_dir(root)), os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert queue_run(root, b"x", envelope.encode("s@x", ["r@x"])) == 0
        assert os.read(fd, 10) == b"\0"
    finally:
        os.close(fd)


@pytest.mark.parametrize("env_bytes, code", [
    (b"Xs@x\0Tr@x\0\0", 91),                       # first record not F
    (b"Fs@x\0Xr@x\0\0", 91),                       # recipient record not T
    (b"F" + b"a" * 1003 + b"\0Tr@x\0\0", 11),      # sender over the limit
    (b"Fs@x\0T" + b"a" * 1003 + b"\0\0", 11),      # recipient over the limit
    (b"Fs@x\0Tr@x\0", 54),                         # missing terminator: EOF early
    (b"Fs@x", 54),                                 # EOF inside an address
    (b"", 54),                                     # no envelope at all
])
def test_malformed_envelope_gets_its_exit_code_and_nothing_is_queued(tmp_path, env_bytes, code):
    root = qmail_trees.embedded_tree(tmp_path)
    assert queue_run(root, b"Subject: x\n\nx\n", env_bytes) == code
    assert nothing_left(root)


def test_longest_accepted_address_is_1002_bytes(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    longest = "a" * 1002
    assert queue_run(root, b"x", envelope.encode(longest, [longest])) == 0
    [num] = qmail_trees.queued(root)
    assert qmail_trees.todo(root, num).recipients == [longest.encode()]


def test_missing_root_is_61_and_missing_queue_is_62(tmp_path):
    assert queue_run(str(tmp_path / "none"), b"x", envelope.encode("s", ["r"])) == 61
    (tmp_path / "bare").mkdir()
    assert queue_run(str(tmp_path / "bare"), b"x", envelope.encode("s", ["r"])) == 62


def test_unwritable_queue_without_service_is_temporary_74(user_tree):
    # an ordinary user facing a queue it cannot write, and no qmail-queued running
    root, user = user_tree
    qdir = queue_layout.queue_dir(root)
    if os.getuid() != 0:
        pytest.skip("needs root to make a queue another user cannot write")
    os.chown(os.path.join(qdir, "pid"), 0, 0)
    os.chmod(os.path.join(qdir, "pid"), 0o700)
    argv = support.as_user([support.prog("qmail-queue")], user)
    assert queue_run(root, b"x", envelope.encode("s", ["r"]), argv=argv) == 74
    assert qmail_trees.queued(root) == []


def test_ordinary_user_queues_into_the_tree_it_owns(user_tree):
    root, user = user_tree
    argv = support.as_user([support.prog("qmail-queue")], user)
    assert queue_run(root, b"hello\n", envelope.encode("s@x", ["demo@x"]), argv=argv) == 0
    [num] = qmail_trees.queued(root)
    assert qmail_trees.todo(root, num).uid == user.pw_uid
    assert f"invoked by uid {user.pw_uid})".encode() in qmail_trees.message(root, num)
    st = os.stat(queue_layout.mess(queue_layout.queue_dir(root), num))
    assert st.st_uid == user.pw_uid


def crash_while_waiting(tmp_path, message_done: bool):
    """Start qmail-queue on pipes, feed part of the input, kill -9 it, return root."""
    root = qmail_trees.embedded_tree(tmp_path)
    mr, mw = os.pipe()
    er, ew = os.pipe()
    proc = support.Proc([support.prog("qmail-queue")], env=support.suite_env(QMAIL_ROOT=root),
                        stdin=mr, stdout=er, pass_fds=())
    os.close(mr)
    os.close(er)
    try:
        os.write(mw, b"Subject: partial\n\nsome of the body")
        if message_done:
            os.close(mw)
            mw = -1
            os.write(ew, b"Fs@x\0Tr@x\0")  # terminator not yet sent
            support.wait_for(lambda: qmail_trees.files(root, "intd"), what="intd file")
        else:
            support.wait_for(lambda: qmail_trees.files(root, "mess"), what="mess file")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        for fd in (mw, ew):
            if fd >= 0:
                os.close(fd)
    return root


def test_kill_during_message_leaves_only_mess_debris_and_nothing_queued(tmp_path):
    root = crash_while_waiting(tmp_path, message_done=False)
    assert qmail_trees.queued(root) == []
    assert qmail_trees.files(root, "intd") == []
    assert len(qmail_trees.files(root, "mess")) == 1  # debris for qmail-send's cleanup


def test_kill_during_envelope_leaves_mess_and_intd_debris_and_nothing_queued(tmp_path):
    root = crash_while_waiting(tmp_path, message_done=True)
    assert qmail_trees.queued(root) == []
    [num] = qmail_trees.files(root, "intd")
    assert qmail_trees.files(root, "mess") == [num]


def test_kill_before_message_leaves_nothing_but_at_most_a_pid_file(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    mr, mw = os.pipe()
    er, ew = os.pipe()
    proc = support.Proc([support.prog("qmail-queue")], env=support.suite_env(QMAIL_ROOT=root),
                        stdin=mr, stdout=er)
    os.close(mr)
    os.close(er)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    os.close(mw)
    os.close(ew)
    assert qmail_trees.queued(root) == []
    assert qmail_trees.files(root, "intd") == []


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (root only; skipped visibly elsewhere)."""
    if os.getuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                          capture_output=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def test_full_disk_is_53_and_nothing_is_queued(small_disk):
    root = qmail_trees.embedded_tree(small_disk)
    assert queue_run(root, b"x" * (2 << 20), envelope.encode("s", ["r"])) == 53
    assert nothing_left(root)
    # and the queue still works for a message that fits
    assert queue_run(root, b"small\n", envelope.encode("s", ["r"])) == 0
    assert len(qmail_trees.queued(root)) == 1
