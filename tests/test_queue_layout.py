"""qmail/queue/queue_layout.py: qmail 1.03's queue paths, the split, numbers, the trigger."""

import os
import time

import pytest
from hypothesis import given, strategies as st

from qmail.queue import queue_layout


@given(st.integers(0, 2**40))
def test_split_directories_use_number_mod_23(num):
    assert queue_layout.mess("/q", num) == f"/q/mess/{num % 23}/{num}"
    for kind in ("intd", "todo", "info", "local", "remote"):
        assert queue_layout.path("/q", kind, num) == f"/q/{kind}/{num % 23}/{num}"
    assert queue_layout.bounce("/q", num) == f"/q/bounce/{num}"


def test_every_directory_with_qmail_owner_and_mode():
    table = {d.name: (d.owner, d.mode, d.split) for d in queue_layout.DIRS}
    assert table["mess"] == ("qmailq", 0o750, True)
    assert table["info"] == ("qmails", 0o700, True)
    assert table["bounce"] == ("qmails", 0o700, False)
    assert table["pid"] == ("qmailq", 0o700, False)
    dirs = list(queue_layout.all_dirs("/q"))
    assert len(dirs) == len(queue_layout.DIRS) + 6 * 23
    assert dirs[0][0] == "/q"


def test_numbers_finds_messages_in_split_and_flat_directories(tmp_path):
    q = str(tmp_path)
    for num in (5, 28, 1000):
        os.makedirs(os.path.dirname(queue_layout.todo(q, num)), exist_ok=True)
        open(queue_layout.todo(q, num), "w").close()
    os.makedirs(os.path.join(q, "bounce"))
    open(queue_layout.bounce(q, 7), "w").close()
    open(os.path.join(q, "bounce", "junk"), "w").close()
    assert sorted(queue_layout.numbers(q, "todo")) == [5, 28, 1000]
    assert list(queue_layout.numbers(q, "bounce")) == [7]
    assert list(queue_layout.numbers(q, "info")) == []


def test_trigger_without_a_reader_neither_blocks_nor_fails(tmp_path):
    os.makedirs(tmp_path / "lock")
    os.mkfifo(tmp_path / "lock" / "trigger")
    start = time.monotonic()
    queue_layout.pull_trigger(str(tmp_path))
    queue_layout.pull_trigger(str(tmp_path / "missing"))
    assert time.monotonic() - start < 1


def test_trigger_wakes_a_reader(tmp_path):
    os.makedirs(tmp_path / "lock")
    os.mkfifo(tmp_path / "lock" / "trigger")
    fd = os.open(tmp_path / "lock" / "trigger", os.O_RDONLY | os.O_NONBLOCK)
    try:
        queue_layout.pull_trigger(str(tmp_path))
        assert os.read(fd, 5) == b"\0"
    finally:
        os.close(fd)


@pytest.mark.parametrize("root, sock", [("/var/qmail", "/var/qmail/run/qmail-queued.sock")])
def test_service_socket_lives_under_root(root, sock):
    assert queue_layout.service_socket(root) == sock
