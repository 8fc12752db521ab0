"""svc: command bytes written to supervise/control, messages and exit codes (vs C svc)."""

import os

import pytest
from hypothesis import given, settings, strategies as st

from tests import support

USAGE = (b"svc options: u up, d down, o once, x exit, p pause, c continue, h hup, a alarm, "
         b"i interrupt, t term, k kill\n")


def fake_service(path):
    """A directory whose supervise/control FIFO the test itself reads, as supervise would."""
    (path / "supervise").mkdir(parents=True)
    os.mkfifo(path / "supervise" / "control", 0o600)
    return os.open(path / "supervise" / "control", os.O_RDONLY | os.O_NONBLOCK)


def drain(fd):
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


def both(argv, cwd):
    """(ours, C's) CompletedProcess for the same argv."""
    ours = support.run([support.prog("svc"), *argv], cwd=cwd)
    theirs = support.run([support.c_tool("svc"), *argv], cwd=cwd)
    return ours, theirs


def test_each_option_is_written_once_in_order_of_first_appearance(tmp_path):
    fd = fake_service(tmp_path / "a")
    done = support.run([support.prog("svc"), "-dudx", "-k", "-d", "a"], cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == b""
    assert drain(fd) == b"duxk"


def test_every_service_named_gets_the_commands(tmp_path):
    fds = [fake_service(tmp_path / name) for name in ("a", "b", "c")]
    done = support.run([support.prog("svc"), "-t", "a", "b", str(tmp_path / "c")], cwd=tmp_path)
    assert done.returncode == 0
    assert [drain(fd) for fd in fds] == [b"t", b"t", b"t"]


def test_unknown_option_prints_illegal_option_and_the_options_line(tmp_path):
    ours, theirs = both(["-uZ", "x"], tmp_path)
    assert ours.returncode == theirs.returncode == 100
    assert ours.stderr == theirs.stderr == b"svc: illegal option -- Z\n" + USAGE


def test_supervise_not_running_is_a_warning_and_the_next_service_is_controlled(tmp_path):
    (tmp_path / "dead" / "supervise").mkdir(parents=True)
    os.mkfifo(tmp_path / "dead" / "supervise" / "control")
    fd = fake_service(tmp_path / "live")
    ours = support.run([support.prog("svc"), "-h", "dead", "live"], cwd=tmp_path)
    assert drain(fd) == b"h"
    theirs = support.run([support.c_tool("svc"), "-h", "dead", "live"], cwd=tmp_path)
    assert drain(fd) == b"h"
    assert ours.returncode == theirs.returncode == 0
    assert ours.stderr == theirs.stderr == b"svc: warning: unable to control dead: supervise not running\n"


@pytest.mark.parametrize("setup, message", [
    ("missing", b"svc: warning: unable to chdir to missing: file does not exist\n"),
    ("nosupervise", b"svc: warning: unable to control nosupervise: file does not exist\n"),
])
def test_unusable_directories_get_c_warnings_and_exit_0(tmp_path, setup, message):
    if setup == "nosupervise":
        (tmp_path / setup).mkdir()
    ours, theirs = both(["-u", setup], tmp_path)
    assert ours.returncode == theirs.returncode == 0
    assert ours.stderr == theirs.stderr == message


def test_no_service_and_no_option_do_nothing(tmp_path):
    fd = fake_service(tmp_path / "a")
    for argv in ([], ["-u"], ["a"]):
        ours, theirs = both(argv, tmp_path)
        assert ours.returncode == theirs.returncode == 0
        assert ours.stdout == theirs.stdout == b"" and ours.stderr == theirs.stderr == b""
    assert drain(fd) == b""


@settings(max_examples=20, deadline=None)
@given(st.lists(st.lists(st.sampled_from("udopchaitkx"), min_size=1, max_size=4).map("".join),
                min_size=1, max_size=4))
def test_bytes_written_match_c_svc(tmp_path_factory, words):
    base = tmp_path_factory.mktemp("svc")
    fd = fake_service(base / "s")
    argv = ["-" + word for word in words] + ["s"]
    support.run([support.prog("svc"), *argv], cwd=base)
    ours = drain(fd)
    support.run([support.c_tool("svc"), *argv], cwd=base)
    assert ours == drain(fd)
    os.close(fd)
