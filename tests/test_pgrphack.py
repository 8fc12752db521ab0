"""pgrphack against daemontools' C pgrphack: new session and process group, messages."""

import json

import pytest

from tests import support
from tests.chain_probe import env, ours, outcome, probe, run, shared_dir, state, theirs  # noqa: F401


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "exec"])
def test_child_leads_a_new_session_and_group_as_with_c(probe, shared_dir, warm):
    c = state([theirs("pgrphack"), theirs("envdir"), shared_dir, probe], env(warm))
    o = state([ours("pgrphack"), ours("envdir"), shared_dir, probe], env(warm))
    assert o == c
    assert o["pgrp_leader"] and o["session_leader"]


def test_already_a_session_leader_still_runs_the_child_as_c(probe):
    # support.Proc starts each program as a session leader already: setsid fails, ignored
    reports = []
    for tool in (theirs, ours):
        with support.Proc([tool("pgrphack"), probe], env=env(True)) as proc:
            assert proc.wait() == 0
            reports.append(json.loads(proc.out.wait_line("{")))
    assert reports[0] == reports[1]


def test_warm_started_program_is_in_its_own_group():
    report = json.loads(run([ours("pgrphack"), ours("ucspi-probe")]).stdout)
    assert report["warm"] is True


@pytest.mark.parametrize("args", [[], ["/nonexistent/prog"], ["nosuchprogram-xyz"], ["sh", "-c", "exit 8"], ["/"]],
                         ids=repr)
def test_usage_errors_and_exit_code_match_c(args):
    assert outcome([ours("pgrphack"), *args]) == outcome([theirs("pgrphack"), *args])
