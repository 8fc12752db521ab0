"""svok: exit 0 / 100 / 111 exactly as C svok, for each state of a service directory."""

import os

import pytest

from tests import support


def build(base, state):
    s = base / "s"
    if state == "missing":
        return None
    s.mkdir()
    if state == "no-supervise":
        return None
    (s / "supervise").mkdir()
    if state == "ok-is-directory":
        (s / "supervise" / "ok").mkdir()
        return None
    os.mkfifo(s / "supervise" / "ok")
    if state == "running":
        return os.open(s / "supervise" / "ok", os.O_RDONLY | os.O_NONBLOCK)
    return None


@pytest.mark.parametrize("state, code, message", [
    ("running", 0, b""),
    ("not-running", 100, b""),
    ("no-supervise", 100, b""),
    ("missing", 111, b"svok: fatal: unable to chdir to s: file does not exist\n"),
    ("ok-is-directory", 111, b"svok: fatal: unable to open s/supervise/ok: is a directory\n"),
])
def test_exit_code_and_message_match_c_svok(tmp_path, state, code, message):
    fd = build(tmp_path, state)
    ours = support.run([support.prog("svok"), "s"], cwd=tmp_path)
    theirs = support.run([support.c_tool("svok"), "s"], cwd=tmp_path)
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == (code, message)
    if fd is not None:
        os.close(fd)


def test_usage_without_a_directory():
    ours = support.run([support.prog("svok")])
    assert ours.returncode == 100
    assert ours.stderr == b"svok: usage: svok dir\n"
    assert support.run([support.c_tool("svok")]).stderr == ours.stderr


def test_svok_creates_nothing(tmp_path):
    (tmp_path / "s").mkdir()
    support.run([support.prog("svok"), "s"], cwd=tmp_path)
    assert os.listdir(tmp_path / "s") == []


def test_svok_sees_a_real_supervise_come_and_go(tmp_path):
    s = tmp_path / "s"
    s.mkdir()
    (s / "down").write_text("")
    (s / "run").write_text("#!/bin/sh\nexec sleep 30\n")
    (s / "run").chmod(0o755)
    assert support.run([support.prog("svok"), s]).returncode == 100
    sup = support.Proc([support.prog("supervise"), s])
    support.wait_for(lambda: support.run([support.prog("svok"), s]).returncode == 0, what="svok 0")
    sup.stop()
    assert support.run([support.prog("svok"), s]).returncode == 100
