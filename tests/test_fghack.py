"""fghack against daemontools' C fghack: the child's extra pipe descriptors, waiting for
a daemon that backgrounds itself, exit codes and messages."""

import os

import pytest

from tests import support
from tests.chain_probe import env, ours, outcome, probe, run, shared_dir, state, theirs  # noqa: F401


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "exec"])
def test_child_gets_the_same_extra_descriptors_as_with_c(probe, shared_dir, warm):
    c = state([theirs("fghack"), theirs("envdir"), shared_dir, probe], env(warm))
    o = state([ours("fghack"), ours("envdir"), shared_dir, probe], env(warm))
    assert o == c
    assert sorted(int(fd) for fd in o["fds"]) == list(range(34))


def test_descriptors_land_around_ones_already_open(probe):
    # descriptors 5 and 9 already taken: 0.76's dup()s fill the lowest free numbers
    argv = ["sh", "-c", 'exec 5</dev/null 9</dev/null "$0" "$@"']
    c = state([*argv, theirs("fghack"), probe])
    o = state([*argv, ours("fghack"), probe])
    assert o == c
    assert sorted(int(fd) for fd in o["fds"]) == list(range(36))


@pytest.mark.parametrize("tool", ["C", "ours"])
def test_waits_for_the_background_process_too(shared_dir, tool):
    mark = os.path.join(shared_dir, "mark")
    daemon = f"(sleep 0.5; echo done > {mark}) & exit 3"
    done = run([{"C": theirs, "ours": ours}[tool]("fghack"), "sh", "-c", daemon])
    assert done.returncode == 3
    assert os.path.exists(mark)


@pytest.mark.parametrize("tool", ["C", "ours"])
def test_background_process_closing_its_descriptors_is_not_waited_for(tool):
    # the pipe closes when every copy is closed: a daemon that closes them is let go
    daemon = "(exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- 10>&- 11>&- 12>&- 13>&- 14>&- 15>&- 16>&- " \
             "17>&- 18>&- 19>&- 20>&- 21>&- 22>&- 23>&- 24>&- 25>&- 26>&- 27>&- 28>&- 29>&- " \
             "30>&- 31>&- 32>&- 33>&- ; sleep 30) & exit 0"
    fghack = {"C": theirs, "ours": ours}[tool]("fghack")
    with support.Proc([fghack, "sh", "-c", daemon], env=env(True)) as proc:
        assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("args", [
    [], ["/nonexistent/prog"], ["nosuchprogram-xyz"], ["sh", "-c", "exit 9"], ["sh", "-c", "kill $$"],
    ["sh", "-c", "echo out; echo err >&2"],
], ids=repr)
def test_usage_errors_crash_and_exit_code_match_c(args):
    assert outcome([ours("fghack"), *args]) == outcome([theirs("fghack"), *args])
