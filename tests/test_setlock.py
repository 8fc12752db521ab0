"""setlock against daemontools' C setlock: the lock (flock) excludes the C tool's and
back, -n/-N, -x/-X, the locked descriptor handed to the child, messages and codes."""

import json
import os
import subprocess
import time

import pytest

from tests import support
from tests.chain_probe import env, ours, outcome, probe, run, shared_dir, state, theirs  # noqa: F401

TOOLS = {"C": theirs, "ours": ours}


def locked(path) -> bool:
    """Whether some process holds the lock (asked of the C tool, the reference)."""
    return run([theirs("setlock"), "-n", path, "true"]).returncode == 111


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "exec"])
def test_child_gets_the_locked_descriptor_as_with_c(probe, shared_dir, warm):
    lock = os.path.join(shared_dir, "lock")
    empty = os.path.join(shared_dir, "empty")
    os.mkdir(empty)
    # warm: our envdir continues in setlock's process and must keep descriptor 3
    c = state([theirs("setlock"), lock, theirs("envdir"), empty, probe], env(warm))
    o = state([ours("setlock"), lock, ours("envdir"), empty, probe], env(warm))
    assert o == c
    assert o["fds"]["3"][0] == lock
    assert int(o["fds"]["3"][1], 8) & 0o7777 == os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK


def test_warm_started_program_holds_the_lock(shared_dir):
    lock = os.path.join(shared_dir, "lock")
    script = f"{theirs('setlock')} -n {lock} true; echo $?"
    done = run([ours("setlock"), lock, ours("envdir"), shared_dir, "sh", "-c", script])
    assert done.stdout == b"111\n"
    report = json.loads(run([ours("setlock"), lock, ours("ucspi-probe")]).stdout)
    assert report["warm"] is True and 3 in report["fds"]


@pytest.mark.parametrize("holder,other", [("C", "ours"), ("ours", "C"), ("ours", "ours")])
def test_held_lock_excludes_the_other_tool(shared_dir, holder, other):
    lock = os.path.join(shared_dir, "lock")
    with support.Proc([TOOLS[holder]("setlock"), lock, "sleep", "30"], env=env(True)):
        support.wait_for(lambda: locked(lock), what="the holder's lock")
        expected = (111, b"", f"setlock: fatal: unable to lock {lock}: temporary failure\n".encode())
        assert outcome([TOOLS[other]("setlock"), "-n", lock, "true"]) == expected
        assert outcome([TOOLS[other]("setlock"), "-nx", lock, "echo", "ran"]) == (0, b"", b"")
        assert outcome([TOOLS[other]("setlock"), "-xn", lock, "echo", "ran"]) == (0, b"", b"")
    assert outcome([TOOLS[other]("setlock"), "-n", lock, "echo", "free"]) == (0, b"free\n", b"")


@pytest.mark.parametrize("holder,waiter", [("C", "ours"), ("ours", "C")])
def test_without_n_waits_until_the_lock_is_released(shared_dir, holder, waiter):
    lock = os.path.join(shared_dir, "lock")
    with support.Proc([TOOLS[holder]("setlock"), lock, "cat"], env=env(True),
                      stdin=subprocess.PIPE) as first:
        support.wait_for(lambda: locked(lock), what="the holder's lock")
        with support.Proc([TOOLS[waiter]("setlock"), "-N", lock, "echo", "got it"], env=env(True)) as second:
            time.sleep(0.3)
            assert second.alive()  # still waiting for the lock
            first.popen.stdin.close()
            assert first.wait() == 0
            assert second.wait() == 0
            assert second.out.wait_line("got it")


def test_lock_file_is_created_like_c(shared_dir):
    for name, tool in TOOLS.items():
        path = os.path.join(shared_dir, name)
        assert run([tool("setlock"), path, "true"], preexec_fn=lambda: os.umask(0)).returncode == 0
        assert os.stat(path).st_mode & 0o7777 == 0o600
        with open(path, "w") as f:
            f.write("kept")
        run([tool("setlock"), path, "true"])
        with open(path) as f:
            assert f.read() == "kept"  # opened for appending, never truncated


@pytest.mark.parametrize("args", [
    [], ["-n"], ["f"], ["-z", "f", "true"], ["-nNxXq", "f", "true"],
    ["/nonexistent/dir/lock", "true"], ["-x", "/nonexistent/dir/lock", "true"],
    ["-xX", "/nonexistent/dir/lock", "true"], ["-Xx", "/nonexistent/dir/lock", "true"],
    ["/", "true"], ["-x", "/", "true"],
    ["LOCK", "/nonexistent/prog"], ["-x", "LOCK", "nosuchprogram-xyz"], ["LOCK", "sh", "-c", "exit 6"],
    ["--", "LOCK", "sh", "-c", "exit 7"],
], ids=repr)
def test_usage_and_errors_match_c(shared_dir, args):
    args = [os.path.join(shared_dir, "lock") if a == "LOCK" else a for a in args]
    assert outcome([ours("setlock"), *args], cwd=shared_dir) == outcome([theirs("setlock"), *args], cwd=shared_dir)
