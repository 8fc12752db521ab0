"""Warm start (docs/architecture.md, "Launch and warm start"): a warm-started program sees exactly what exec gives it."""

import json
import os
import re
import signal

import pytest

from tests import support
from tests.ucspi_servers import exchange, start_tcpserver

COMPARED = ("argv", "env", "cwd", "ids", "saved_ids", "dumpable", "umask", "limits", "fds", "signals", "stdio")


def probe_via_tcpserver(tmp_path, warm: bool, probe_args=(), extra_env=None):
    env = support.suite_env(UCSPI_WARMSTART="1" if warm else "0", **(extra_env or {}))
    proc, port = start_tcpserver(["-RHl0", "-v"], [support.prog("ucspi-probe"), *probe_args],
                                 env=env, cwd=tmp_path)
    report = json.loads(exchange(port))
    proc.err.wait_line(" end ")
    proc.stop()
    return report


# glibc reserves signals 32 and 33 for itself (sigaction refuses them to programs); its
# posix_spawn leaves them ignored in the child. No program can see or change that.
GLIBC_INTERNAL = (1 << 31) | (1 << 32)


def masked(report):
    out = {k: report[k] for k in COMPARED}
    out["signals"] = {k: int(v, 16) & ~GLIBC_INTERNAL for k, v in report["signals"].items()}
    out["env"] = {k: v for k, v in report["env"].items() if k not in ("TCPREMOTEPORT", "TCPLOCALPORT", "UCSPI_WARMSTART")}
    return out


def test_warm_child_sees_what_an_execd_child_sees(tmp_path):
    warm = probe_via_tcpserver(tmp_path, True, ["one", "two words"])
    cold = probe_via_tcpserver(tmp_path, False, ["one", "two words"])
    assert warm["warm"] is True and cold["warm"] is False
    for key in COMPARED:
        if key == "env":
            assert masked(warm)["env"] == masked(cold)["env"]
        elif key == "signals":
            assert masked(warm)["signals"] == masked(cold)["signals"]
        elif key == "argv":
            assert warm["argv"][1:] == cold["argv"][1:] == ["one", "two words"]
            assert os.path.basename(warm["argv"][0]) == os.path.basename(cold["argv"][0]) == "ucspi-probe"
        else:
            assert warm[key] == cold[key], key


def test_warm_child_holds_only_descriptors_0_1_2(tmp_path):
    # tcpserver holds a listening socket, a wake-up pipe and the log pipe of this test.
    report = probe_via_tcpserver(tmp_path, True)
    assert report["fds"] == [0, 1, 2]


def test_warm_child_has_default_signals_and_empty_mask(tmp_path):
    report = probe_via_tcpserver(tmp_path, True)
    assert int(report["signals"]["SigBlk"], 16) == 0
    caught = int(report["signals"]["SigCgt"], 16)
    ignored = int(report["signals"]["SigIgn"], 16)
    # A fresh interpreter catches only SIGINT (unless it inherited SIGINT ignored: then it
    # leaves it so) and ignores SIGPIPE and SIGXFSZ, besides what it inherited ignored
    # (exec keeps those).
    assert caught == (0 if support.inherited_ignored(signal.SIGINT) else 1 << (signal.SIGINT - 1))
    assert ignored == (1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1)) | support.inherited_ignored_signals()


def test_warm_child_gets_a_truthful_process_title(tmp_path):
    report = probe_via_tcpserver(tmp_path, True, ["x"])
    assert re.fullmatch(r"\S*ucspi-probe x", report["title"])


def test_rules_environment_reaches_warm_child(tmp_path):
    report = probe_via_tcpserver(tmp_path, True, extra_env={"EXTRA": "kept"})
    assert report["env"]["EXTRA"] == "kept"
    assert report["env"]["PROTO"] == "TCP"
    assert report["env"]["TCPREMOTEIP"] == "127.0.0.1"


@pytest.mark.parametrize("probe_args,expected", [(["-x", "0"], 0), (["-x", "3"], 3 << 8),
                                                 (["-x", "100"], 100 << 8), (["-k", "9"], 9),
                                                 (["-k", "15"], 15)])
def test_exit_status_and_signal_death_look_the_same_warm_and_cold(tmp_path, probe_args, expected):
    statuses = []
    for warm in (True, False):
        env = support.suite_env(UCSPI_WARMSTART="1" if warm else "0")
        proc, port = start_tcpserver(["-RHl0", "-v"], [support.prog("ucspi-probe"), *probe_args],
                                     env=env, cwd=tmp_path)
        exchange(port)
        line = proc.err.wait_line(" end ")
        statuses.append(int(line.rsplit(" ", 1)[1]))
        proc.stop()
    assert statuses == [expected, expected]


def test_other_programs_are_execd_even_with_warm_start_on(tmp_path):
    script = tmp_path / "hello"
    script.write_text("#!/bin/sh\necho \"sh says $PROTO $#\"\n")
    script.chmod(0o755)
    proc, port = start_tcpserver(["-RHl0"], [str(script), "a", "b"], env=support.suite_env())
    assert exchange(port) == b"sh says TCP 2\n"


def test_execd_c_program_gets_default_sigpipe(tmp_path):
    # Python ignores SIGPIPE; a C program exec'd by us must find it default, as from C tcpserver.
    proc, port = start_tcpserver(["-RHl0"], ["/bin/sh", "-c", "grep SigIgn /proc/self/status"],
                                 env=support.suite_env())
    ignored = int(exchange(port).split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))


def test_chain_tool_continues_warm_in_the_same_process():
    result = support.run([support.prog("argv0"), support.prog("ucspi-probe"), "renamed", "arg"])
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["warm"] is True
    assert report["argv"] == ["renamed", "arg"]
    assert report["fds"] == [0, 1, 2]
    assert report["title"] == "renamed arg"


@pytest.mark.parametrize("warm", ["1", "0"])
def test_chain_tools_hand_on_the_descriptors_exec_would(tmp_path, warm):
    """softlimit, envdir, pgrphack, argv0 before a program of ours: descriptor 3, open
    without close-on-exec, reaches it warm as after exec (checkpassword's fd 3 behind
    softlimit); what the tools opened themselves (envdir's directory) does not."""
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "X").write_text("1\n")
    argv = ["/bin/sh", "-c", 'exec 3</dev/null; exec "$@"', "sh",
            support.prog("softlimit"), "-m", "300000000", support.prog("envdir"), tmp_path / "env",
            support.prog("pgrphack"), support.prog("argv0"), support.prog("ucspi-probe"), "probe"]
    result = support.run([str(a) for a in argv], env=support.suite_env(UCSPI_WARMSTART=warm))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["warm"] is (warm == "1") and report["env"]["X"] == "1"
    assert report["fds"] == [0, 1, 2, 3]


def test_switch_turns_warm_start_off_for_chains():
    result = support.run([support.prog("argv0"), support.prog("ucspi-probe"), "renamed", "a"],
                         env=support.suite_env(UCSPI_WARMSTART="0"))
    report = json.loads(result.stdout)
    assert report["warm"] is False
    # A cold interpreter replaces argv[0] by the script's path; the arguments are kept.
    assert report["argv"][1:] == ["a"]


def test_uncaught_exception_exits_1_as_a_cold_interpreter_would():
    # ucspi-probe -x with a non-number raises ValueError inside main.
    for warm in ("1", "0"):
        result = support.run([support.prog("argv0"), support.prog("ucspi-probe"), "p", "-x", "zz"],
                             env=support.suite_env(UCSPI_WARMSTART=warm))
        assert result.returncode == 1
        assert b"ValueError" in result.stderr


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "exec"])
def test_signals_a_server_started_with_ignored_stay_ignored_in_its_children(tmp_path, warm):
    """A server started from a shell that ignores SIGINT and SIGQUIT (nohup, `make test &`)
    passes them on ignored, as exec keeps an ignored signal, warm or not."""
    env = support.suite_env(UCSPI_WARMSTART="1" if warm else "0")
    argv = ["/bin/sh", "-c", "trap '' INT QUIT; exec \"$@\"", "sh", support.prog("tcpserver"),
            "-1", "-RHl0", "127.0.0.1", "0", support.prog("ucspi-probe")]
    proc = support.Proc(argv, env=env, cwd=tmp_path)
    try:
        port = int(proc.out.wait_line(lambda line: line.strip().isdigit(), timeout=15))
        report = json.loads(exchange(port))
    finally:
        proc.stop()
    ignored = int(report["signals"]["SigIgn"], 16) & ~GLIBC_INTERNAL
    for sig in (signal.SIGINT, signal.SIGQUIT):
        assert ignored & (1 << (sig - 1)), sig
    assert report["warm"] is warm
