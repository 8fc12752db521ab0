"""setuidgid against daemontools' C setuidgid: the state the child gets, messages, codes."""

import json
import os

import pytest

from tests import support
from tests.chain_probe import env, ours, outcome, probe, run, shared_dir, state, theirs  # noqa: F401

# changing to another account needs root (CI runs as root); the rest runs for anyone
needs_root = pytest.mark.skipif(os.getuid() != 0, reason="setuidgid can change uid only as root")


@pytest.fixture
def user():
    return support.unprivileged_user()


@needs_root
@pytest.mark.parametrize("warm", [True, False], ids=["warm", "exec"])
def test_child_has_account_ids_and_only_primary_group_as_with_c(probe, shared_dir, user, warm):
    empty = os.path.join(shared_dir, "env")
    os.mkdir(empty)
    # warm: our envdir continues in the process setuidgid left; exec: the probe directly
    tail = ["envdir", empty, probe] if warm else [probe]
    c = state([theirs("setuidgid"), user.pw_name, *[theirs(w) if w == "envdir" else w for w in tail]], env(warm))
    o = state([ours("setuidgid"), user.pw_name, *[ours(w) if w == "envdir" else w for w in tail]], env(warm))
    assert o == c
    assert o["ids"]["Uid"] == [str(user.pw_uid)] * 4
    assert o["ids"]["Gid"] == [str(user.pw_gid)] * 4
    assert o["ids"]["Groups"] == [str(user.pw_gid)]


@needs_root
def test_warm_started_program_runs_under_the_account(user):
    done = run([ours("setuidgid"), user.pw_name, ours("ucspi-probe")], env(True))
    report = json.loads(done.stdout)
    assert report["warm"] is True
    assert report["ids"] == [user.pw_uid, user.pw_uid, user.pw_gid, user.pw_gid, [user.pw_gid]]


@pytest.mark.parametrize("args", [
    [], ["root"], ["nosuchaccount", "true"], ["", "true"], ["-s", "root", "true"],
    ["root", "/nonexistent/program"], ["root", "nosuchprogram-xyz"], ["root", "/"],
], ids=repr)
def test_usage_unknown_account_and_run_failures_match_c(args):
    assert outcome([ours("setuidgid"), *args]) == outcome([theirs("setuidgid"), *args])


@needs_root
def test_exit_code_is_the_childs():
    args = ["root", "sh", "-c", "exit 42"]
    assert outcome([ours("setuidgid"), *args])[0] == 42 == outcome([theirs("setuidgid"), *args])[0]


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "exec"])
def test_unprivileged_caller_cannot_setgid_as_with_c(user, warm):
    # the second setuidgid runs as the unprivileged account (warm: in the same process)
    c = outcome([theirs("setuidgid"), user.pw_name, theirs("setuidgid"), "root", "true"], env(warm))
    o = outcome([ours("setuidgid"), user.pw_name, ours("setuidgid") if warm else theirs("setuidgid"),
                 "root", "true"], env(warm))
    assert o == c == (111, b"", b"setuidgid: fatal: unable to setgid: permission denied\n")
