"""qmail-clean: removes finished messages and processed envelopes on request."""

import os
import time

from qmail.queue import queue_layout
from tests import support
from tests.qmail_trees import embedded_tree, user_tree  # noqa: F401 (fixture)


def _touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"x")


def _clean(root, requests: bytes):
    return support.run([support.prog("qmail-clean")], input=requests,
                       env=support.suite_env(QMAIL_ROOT=root), timeout=30)


def test_foop_removes_message_and_intd_todo_removes_envelope(tmp_path):
    root = embedded_tree(tmp_path)
    q = queue_layout.queue_dir(root)
    for kind in ("mess", "intd", "todo"):
        _touch(queue_layout.path(q, kind, 100))
        _touch(queue_layout.path(q, kind, 201))
    done = _clean(root, b"foop/100\0todo/201\0")
    assert done.returncode == 0
    assert done.stdout == b"++"
    assert not os.path.exists(queue_layout.mess(q, 100))
    assert not os.path.exists(queue_layout.intd(q, 100))
    assert os.path.exists(queue_layout.todo(q, 100))  # foop leaves todo alone
    assert not os.path.exists(queue_layout.todo(q, 201))
    assert not os.path.exists(queue_layout.intd(q, 201))
    assert os.path.exists(queue_layout.mess(q, 201))  # todo leaves the message alone


def test_files_already_gone_are_fine(tmp_path):
    root = embedded_tree(tmp_path)
    assert _clean(root, b"foop/4242\0todo/4242\0").stdout == b"++"


def test_malformed_requests_get_x(tmp_path):
    root = embedded_tree(tmp_path)
    bad = [b"foop/", b"x", b"mess/123", b"foop/12a", b"todo/-1", b"foop/" + b"1" * 100]
    done = _clean(root, b"".join(r + b"\0" for r in bad) + b"foop/7\0")
    assert done.stdout == b"x" * len(bad) + b"+"


def test_a_file_that_cannot_be_removed_gets_bang(user_tree):
    root, user = user_tree
    q = queue_layout.queue_dir(root)
    _touch(queue_layout.mess(q, 5))
    directory = os.path.dirname(queue_layout.mess(q, 5))
    os.chmod(directory, 0o500)
    try:
        done = support.run(support.as_user([support.prog("qmail-clean")], user), input=b"foop/5\0",
                           env=support.suite_env(QMAIL_ROOT=root), timeout=30)
        assert done.stdout == b"!"
    finally:
        os.chmod(directory, 0o750)


def test_old_pid_files_are_removed_recent_ones_kept(tmp_path):
    root = embedded_tree(tmp_path)
    q = queue_layout.queue_dir(root)
    old = os.path.join(q, "pid", "1.2.3")
    new = os.path.join(q, "pid", "4.5.6")
    _touch(old)
    _touch(new)
    past = time.time() - 129600 - 60
    os.utime(old, (past, past))
    assert _clean(root, b"foop/1\0").stdout == b"+"
    assert not os.path.exists(old)
    assert os.path.exists(new)


def test_missing_queue_is_a_temporary_failure(tmp_path):
    done = _clean(str(tmp_path / "nowhere"), b"foop/1\0")
    assert done.returncode == 111
