"""envuidgid against daemontools' C envuidgid: the child's environment, messages, codes."""

import json

import pytest

from tests.chain_probe import env, ours, outcome, probe, run, shared_dir, state, theirs  # noqa: F401


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "exec"])
@pytest.mark.parametrize("extra", [{}, {"UID": "7", "GID": "8"}, {"GID": "x", "A": "1", "UID": "y", "B": "2"}],
                         ids=["fresh", "replaced", "interleaved"])
def test_child_environment_is_the_same_as_with_c_in_order(probe, shared_dir, warm, extra):
    # warm: our envdir (empty directory) continues in envuidgid's process
    c = state([theirs("envuidgid"), "nobody", theirs("envdir"), shared_dir, probe], env(warm, **extra))
    o = state([ours("envuidgid"), "nobody", ours("envdir"), shared_dir, probe], env(warm, **extra))
    assert o == c
    assert "UID=65534" in o["env"] and "GID=65534" in o["env"]


def test_warm_started_program_sees_uid_and_gid():
    report = json.loads(run([ours("envuidgid"), "root", ours("ucspi-probe")]).stdout)
    assert report["warm"] is True
    assert report["env"]["UID"] == "0" and report["env"]["GID"] == "0"


@pytest.mark.parametrize("args", [
    [], ["root"], ["nosuchaccount", "true"], ["", "true"],
    ["root", "/nonexistent/program"], ["root", "nosuchprogram-xyz"], ["root", "sh", "-c", "exit 9"],
], ids=repr)
def test_usage_unknown_account_run_failures_and_exit_code_match_c(args):
    assert outcome([ours("envuidgid"), *args]) == outcome([theirs("envuidgid"), *args])
