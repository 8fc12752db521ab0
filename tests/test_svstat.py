"""svstat: every line shape, compared with C svstat on the same directories; read-only."""

import os
import time

import pytest
from hypothesis import given, settings, strategies as st

from supervise import status_file
from tests import support

NOW = lambda: status_file.now_tai64n()[0]  # noqa: E731


def fake_service(path, record: bytes | None, down=False, running=True):
    """path/supervise/{ok,status} as a supervise would leave them; the test holds ok open."""
    (path / "supervise").mkdir(parents=True)
    os.mkfifo(path / "supervise" / "ok", 0o600)
    if record is not None:
        (path / "supervise" / "status").write_bytes(record)
    if down:
        (path / "down").write_text("")
    if running:
        return os.open(path / "supervise" / "ok", os.O_RDONLY | os.O_NONBLOCK)
    return None


def record(age=5, pid=0, paused=0, want="u"):
    return status_file.pack(status_file.Status(NOW() - age, 123456789, pid, paused, want))


def svstat_both(argv, cwd):
    """Our output, C's and ours again: C ran between two of ours, so within the same
    second as one of them. Returns (ours_before, c, ours_after)."""
    first = support.run([support.prog("svstat"), *argv], cwd=cwd)
    theirs = support.run([support.c_tool("svstat"), *argv], cwd=cwd)
    second = support.run([support.prog("svstat"), *argv], cwd=cwd)
    for done in (first, theirs, second):
        assert done.returncode == 0 and done.stderr == b""
    return first.stdout, theirs.stdout, second.stdout


def assert_same_as_c(argv, cwd):
    first, theirs, second = svstat_both(argv, cwd)
    assert theirs in (first, second), (first, theirs, second)
    return theirs.decode()


@pytest.mark.parametrize("args, expected", [
    (dict(age=7, pid=4242), "s: up (pid 4242) 7 seconds\n"),
    (dict(age=7, pid=4242, want="d"), "s: up (pid 4242) 7 seconds, want down\n"),
    (dict(age=7, pid=4242, paused=1), "s: up (pid 4242) 7 seconds, paused\n"),
    (dict(age=7, pid=4242, paused=1, want="d", down=True),
     "s: up (pid 4242) 7 seconds, normally down, paused, want down\n"),
    (dict(age=3, want="d"), "s: down 3 seconds, normally up\n"),
    (dict(age=3, want="u"), "s: down 3 seconds, normally up, want up\n"),
    (dict(age=3, want="u", down=True), "s: down 3 seconds, want up\n"),
    (dict(age=3, want="", paused=1), "s: down 3 seconds, normally up\n"),
    (dict(age=-100, pid=9), "s: up (pid 9) 0 seconds\n"),
])
def test_status_lines_match_c_svstat(tmp_path, args, expected):
    down = args.pop("down", False)
    fake_service(tmp_path / "s", record(**args), down=down)
    line = assert_same_as_c(["s"], tmp_path)
    age = args["age"]
    if age > 0:  # the second may have turned since the record was made
        assert line in (expected, expected.replace(f" {age} seconds", f" {age + 1} seconds"))
    else:
        assert line == expected


@pytest.mark.parametrize("build, expected", [
    ("missing", "s: unable to chdir: file does not exist\n"),
    ("empty", "s: unable to open supervise/ok: file does not exist\n"),
    ("not-running", "s: supervise not running\n"),
    ("no-status", "s: unable to open supervise/status: file does not exist\n"),
    ("short-status", "s: unable to read supervise/status: bad format\n"),
    ("down-loop", "s: unable to stat down: symbolic link loop\n"),
])
def test_trouble_lines_match_c_svstat(tmp_path, build, expected):
    s = tmp_path / "s"
    if build == "empty":
        s.mkdir()
    elif build == "not-running":
        fake_service(s, record(), running=False)
    elif build == "no-status":
        fake_service(s, None)
    elif build == "short-status":
        fake_service(s, record()[:17])
    elif build == "down-loop":
        s.mkdir()
        os.symlink("down", s / "down")
    assert assert_same_as_c(["s"], tmp_path) == expected


def test_several_services_one_line_each_relative_to_the_start_directory(tmp_path):
    fake_service(tmp_path / "a", record(pid=77, age=1))
    fake_service(tmp_path / "b", record(age=1, want="d"), down=True)
    (tmp_path / "c").mkdir()
    text = assert_same_as_c(["a", "nothere", "b", "c", str(tmp_path / "a")], tmp_path)
    lines = text.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("a: up (pid 77) ")
    assert lines[1] == "nothere: unable to chdir: file does not exist"
    assert lines[2].startswith("b: down ") and lines[2].endswith(" seconds")
    assert lines[3] == "c: unable to open supervise/ok: file does not exist"
    assert lines[4].startswith(f"{tmp_path}/a: up (pid 77) ")


def test_no_arguments_prints_nothing(tmp_path):
    assert svstat_both([], tmp_path) == (b"", b"", b"")


def test_svstat_creates_and_changes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "half" / "supervise").mkdir(parents=True)
    fake_service(tmp_path / "full", record(pid=5))
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    time.sleep(0.01)
    support.run([support.prog("svstat"), "empty", "half", "full"], cwd=tmp_path)
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert before == after


@settings(max_examples=25, deadline=None)
@given(data=st.binary(min_size=18, max_size=24), down=st.booleans())
def test_any_status_bytes_print_as_c_svstat_prints_them(tmp_path_factory, data, down):
    base = tmp_path_factory.mktemp("svstat")
    fd = fake_service(base / "s", data, down=down)
    assert_same_as_c(["s"], base)
    os.close(fd)
