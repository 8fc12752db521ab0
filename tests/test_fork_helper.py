"""The fork helper (ucspi.runtime.fork_helper) of tcpserver and unixserver: who forks the children,
what the server still counts and logs, and what happens when either process dies."""

import json
import os
import re
import signal
import subprocess

import pytest

from tests import support
from tests.test_launch import GLIBC_INTERNAL
from tests.ucspi_servers import exchange, start_tcpserver


def ppid_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def title_of(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode().strip()


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def helper_of(proc) -> int:
    # -1 prints the port before the server starts its helper
    support.wait_for(lambda: support.child_pids(proc.pid), what="fork helper")
    kids = support.child_pids(proc.pid)
    assert len(kids) == 1, kids
    # the helper names itself first thing, a moment after the fork
    support.wait_for(lambda: title_of(kids[0]) == "tcpserver: fork helper", what="helper's title")
    return kids[0]


def start_addcr(args=("-RHl0",)):
    return start_tcpserver(list(args), [support.prog("addcr")])


def test_connection_child_is_forked_by_the_helper_which_the_server_started():
    proc, port = start_addcr(["-v", "-RHl0"])
    helper = helper_of(proc)
    assert ppid_of(helper) == proc.pid
    with support.connect(port) as s:
        line = proc.err.wait_line(" ok ")
        child = int(line.split()[2])
        assert ppid_of(child) == helper
        assert support.connection_children(proc.pid) == [child]
        s.sendall(b"a\n")
        s.shutdown(1)
        assert support.recv_all(s) == b"a\r\n"
    assert proc.err.wait_line(" end ") == f"tcpserver: end {child} status 0"
    assert proc.err.wait_line("status: 0/40")


def test_sigterm_ends_server_and_helper_and_the_children_run_on():
    proc, port = start_addcr()
    helper = helper_of(proc)
    s = support.connect(port)
    support.wait_for(lambda: support.connection_children(proc.pid), what="connection child")
    child = support.connection_children(proc.pid)[0]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0
    support.wait_for(lambda: gone(helper), what="helper gone")
    assert not gone(child)
    s.sendall(b"still\n")
    s.shutdown(1)
    assert support.recv_all(s) == b"still\r\n"
    s.close()


def test_helper_goes_when_the_server_is_killed():
    proc, port = start_addcr()
    helper = helper_of(proc)
    assert exchange(port, b"x\n") == b"x\r\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    support.wait_for(lambda: gone(helper), what="helper gone after kill -9 of the server")


def test_server_forks_children_itself_once_the_helper_is_gone():
    proc, port = start_addcr(["-v", "-RHl0", "-c", "3"])
    helper = helper_of(proc)
    os.kill(helper, signal.SIGKILL)
    support.wait_for(lambda: not support.child_pids(proc.pid), what="helper reaped")
    for n in range(5):
        assert exchange(port, b"%d\n" % n) == b"%d\r\n" % n
    ends = [proc.err.wait_line(" end ") for _ in range(5)]
    assert all(line.endswith(" status 0") for line in ends)
    assert proc.err.wait_line("status: 0/3")


def test_limit_counts_the_helpers_children():
    proc, port = start_addcr(["-v", "-RHl0", "-c", "2"])
    first, second = support.connect(port), support.connect(port)
    proc.err.wait_line("status: 2/2")
    third = support.connect(port)
    third.sendall(b"3\n")
    third.shutdown(1)
    third.settimeout(0.5)
    try:
        early = third.recv(10)
    except TimeoutError:
        early = None
    assert early is None  # not accepted while two children run
    first.shutdown(1)
    assert support.recv_all(first) == b""
    third.settimeout(10)
    assert support.recv_all(third) == b"3\r\n"
    for s in (first, second, third):
        s.close()


def test_prepared_streams_give_way_when_a_rule_changes_buffering(tmp_path):
    """The helper makes its children's std streams in advance; a rule setting
    PYTHONUNBUFFERED must still give the unbuffered streams a cold child gets."""
    rules = tmp_path / "rules"
    (tmp_path / "rules.txt").write_text(":allow,PYTHONUNBUFFERED=\"1\"\n")
    subprocess.run([support.prog("tcprules"), str(rules), str(rules) + ".tmp"],
                   stdin=open(tmp_path / "rules.txt"), check=True)
    reports = []
    for warm in ("1", "0"):
        env = support.suite_env(UCSPI_WARMSTART=warm)
        env.pop("PYTHONUNBUFFERED", None)
        proc, port = start_tcpserver(["-RHl0", "-x", str(rules)], [support.prog("ucspi-probe")], env=env)
        reports.append(json.loads(exchange(port)))
        proc.stop()
    warm_report, cold_report = reports
    assert warm_report["warm"] and not cold_report["warm"]
    assert warm_report["stdio"]["stdout"]["write_through"] is True
    assert warm_report["stdio"] == cold_report["stdio"]


def rules_cdb(tmp_path, text: str):
    cdb = tmp_path / "rules.cdb"
    subprocess.run([support.prog("tcprules"), str(cdb), str(cdb) + ".tmp"], input=text.encode(),
                   check=True)
    return cdb


def masked(lines):
    out = []
    for line in lines:
        line = re.sub(r"\b(pid|ok|deny|end) \d+", r"\1 PID", line)
        out.append(re.sub(r":\d+( |$)", r":PORT\1", line))
    return out


@pytest.mark.parametrize("rules", ["127.0.0.1:allow,GREETING=\"hi\"\n", "127.0.0.1:deny\n"])
def test_parent_prepared_children_log_as_cs(tmp_path, rules):
    """With nothing slow per connection (-H -R -l), the server works out a warm child's
    environment and verdict itself; the -v lines must still be C's."""
    cdb = rules_cdb(tmp_path, rules)
    logs = []
    for binary in (support.prog("tcpserver"), support.c_tool("tcpserver")):
        proc, port = start_tcpserver(["-v", "-RHl", "local", "-x", str(cdb)], [support.prog("addcr")],
                                     binary=binary)
        try:
            reply = exchange(port, b"x\n")
        except ConnectionResetError:  # denied before reading what we sent
            reply = b""
        assert reply == (b"" if "deny" in rules else b"x\r\n")
        end = proc.err.wait_line(" end ")
        proc.stop()
        lines = [line for line in proc.err.history if "status:" not in line]
        pids = {int(re.search(r"\b(?:pid|ok|deny|end) (\d+)", line).group(1)) for line in lines}
        assert len(pids) == 1, lines  # one child: the pid it says is the pid that ended
        logs.append(masked(lines))
        assert end.endswith(" status 25600" if "deny" in rules else " status 0")
    assert logs[0] == logs[1]


def test_parent_prepared_environment_equals_cs(tmp_path):
    cdb = rules_cdb(tmp_path, '127.0.0.1:allow,GREETING="hi",TCPLOCALHOST="rule",PATH="/nowhere:%s"\n'
                    % os.path.dirname(support.prog("ucspi-probe")))
    envs = []
    for binary in (support.prog("tcpserver"), support.c_tool("tcpserver")):
        proc, port = start_tcpserver(["-RHl", "local", "-x", str(cdb)], ["ucspi-probe"], binary=binary)
        report = json.loads(exchange(port))
        proc.stop()
        assert report["warm"] is (binary == support.prog("tcpserver"))
        envs.append({k: v for k, v in report["env"].items() if k not in ("TCPREMOTEPORT", "TCPLOCALPORT")})
    assert envs[0] == envs[1]
    assert envs[0]["GREETING"] == "hi" and envs[0]["TCPLOCALHOST"] == "rule"


def test_children_forked_in_one_round_hold_only_their_own_connection():
    """Connections waiting while the helper is busy are forked in a row; each child must
    close the others' descriptors, or a connection would stay open until a sibling ends.
    The banner keeps the work in the forked child, which then execs a C program (cat),
    which would inherit whatever descriptor was left open."""
    proc, port = start_tcpserver(["-v", "-B", "hi\n", "-RHl0"], ["/bin/cat"])
    helper = helper_of(proc)
    os.kill(helper, signal.SIGSTOP)
    sockets = []
    try:
        for n in range(3):
            sockets.append(support.connect(port))
            proc.err.wait_line(f"status: {n + 1}/40")
    finally:
        os.kill(helper, signal.SIGCONT)
    first, *others = sockets
    oks = [proc.err.wait_line(" ok ") for _ in sockets]
    children = {int(line.split()[2]) for line in oks}
    assert {ppid_of(child) for child in children} == {helper}
    first.sendall(b"one\n")
    first.shutdown(1)
    # cat ends at the end of its input; the client sees the end while the others run on
    assert support.recv_all(first, timeout=10) == b"hi\none\n"
    proc.err.wait_line(" end ")
    for s in others:
        s.sendall(b"two\n")
        s.shutdown(1)
        assert support.recv_all(s, timeout=10) == b"hi\ntwo\n"
        s.close()
    first.close()


def probe_env(report) -> dict:
    """The environment a probe saw, what differs from run to run masked."""
    return {k: "X" if k in ("TCPREMOTEPORT", "TCPLOCALPORT", "UCSPI_WARMSTART") else v
            for k, v in report["env"].items()}


@pytest.mark.parametrize("locale", ["C.UTF-8", None])
def test_short_path_child_sees_what_the_general_path_and_exec_give(tmp_path, locale):
    """A helper's child whose work the server prepared (-H -R -l) takes warmstart's short
    path; a banner keeps the work in the child, which takes the general path; and the
    cold child is exec'd. Variables are set, changed (rules) and removed (-H, -R); all
    three must agree.
    With no locale set, tcpserver's Python puts LC_CTYPE into its environment (PEP 538)
    and warm children leave it out, as a C program's children never get it (a cold
    Python child coerces its own)."""
    cdb = rules_cdb(tmp_path, ':allow,GREETING="hi",HOME="/rule/home",TCPLOCALHOST="rule",TZ="EST5"\n')
    reports = {}
    for label, args, warm in (("short", [], "1"), ("general", ["-B", "x"], "1"), ("cold", [], "0")):
        env = support.suite_env(UCSPI_WARMSTART=warm, HOME="/home/x", TZ="UTC0", TCPREMOTEHOST="stale",
                                TCPREMOTEINFO="stale", LANG=locale, LC_ALL=None, LC_CTYPE=None)
        proc, port = start_tcpserver(["-RHl0", "-x", str(cdb), *args], [support.prog("ucspi-probe")],
                                     env=env, cwd=tmp_path)
        out = exchange(port)
        proc.stop()
        reports[label] = json.loads(out[1:] if args else out)
    assert [reports[k]["warm"] for k in ("short", "general", "cold")] == [True, True, False]
    env = probe_env(reports["short"])
    assert env == probe_env(reports["general"])
    cold = probe_env(reports["cold"])
    assert "LC_CTYPE" not in env and ("LC_CTYPE" in cold) == (locale is None)
    cold.pop("LC_CTYPE", None)
    assert env == cold
    assert env["GREETING"] == "hi" and env["HOME"] == "/rule/home" and env["TCPLOCALHOST"] == "rule"
    assert "TCPREMOTEHOST" not in env and "TCPREMOTEINFO" not in env  # -H and -R remove them
    for report in reports.values():
        # glibc's posix_spawn (the cold child's) leaves its own signals 32 and 33 ignored
        report["signals"] = {k: int(v, 16) & ~GLIBC_INTERNAL for k, v in report["signals"].items()}
    assert reports["short"]["tz"] == [18000, "EST", "EST", "-0500"]  # the rule's TZ, time.tzset()
    for key in ("argv", "fds", "signals", "stdio", "cwd", "umask", "limits", "ids", "tz"):
        assert reports["short"][key] == reports["general"][key] == reports["cold"][key], key
    # the kernel shows a cold script's interpreter first
    assert reports["short"]["title"] == reports["general"]["title"] == support.prog("ucspi-probe")
    assert reports["cold"]["title"].endswith(" " + support.prog("ucspi-probe"))


def test_short_path_child_holds_only_0_1_2_even_of_what_the_server_inherited(tmp_path):
    """A descriptor tcpserver inherited (not close-on-exec) is the helper's too; a warm
    child must not hold it, on the short path as on the general one (a banner)."""
    inherited_r, inherited_w = os.pipe()
    os.set_inheritable(inherited_w, True)
    try:
        for args in ([], ["-B", "x"]):
            proc = support.Proc([support.prog("tcpserver"), "-1", "-RHl0", *args, "127.0.0.1", "0",
                                 support.prog("ucspi-probe")], pass_fds=(inherited_w,))
            port = int(proc.out.wait_line(lambda l: l.strip().isdigit(), timeout=15))
            out = exchange(port)
            proc.stop()
            assert json.loads(out[1:] if args else out)["fds"] == [0, 1, 2], args
    finally:
        os.close(inherited_r)
        os.close(inherited_w)


def test_short_path_launcher_child_sees_its_pinned_variable(tmp_path):
    """A launcher of an embedded qmail tree pins QMAIL_ROOT before importing main; its
    warm children under tcpserver must see the pinned value, not the server's."""
    from tests import qmail_trees
    root = qmail_trees.embedded_tree(tmp_path)
    env = support.suite_env(QMAIL_ROOT="/nonexistent")
    proc, port = start_tcpserver(["-RHl0"], [os.path.join(root, "bin", "qmail-showctl")], env=env)
    out = exchange(port)
    proc.stop()
    assert f"qmail home directory: {root}.".encode() in out


def test_children_find_sigchld_at_its_default_when_the_server_started_with_it_ignored():
    """exec gives a caught signal its default: C tcpserver catches SIGCHLD, so its
    children find it at its default even when the server was started with it ignored;
    so must ours, warm (the helper forks them with SIGCHLD at its default) or not. No
    child's end may go unreported meanwhile: -c 2 must keep letting connections in."""
    sigchld_bit = 1 << (signal.SIGCHLD - 1)
    for binary, warm in ((support.prog("tcpserver"), "1"), (support.prog("tcpserver"), "0"),
                         (support.c_tool("tcpserver"), "0")):
        proc = support.Proc([binary, "-1", "-v", "-RHl0", "-c", "2", "127.0.0.1", "0",
                             support.prog("ucspi-probe")], env=support.suite_env(UCSPI_WARMSTART=warm),
                            preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN))
        port = int(proc.out.wait_line(lambda l: l.strip().isdigit(), timeout=15))
        reports = [json.loads(exchange(port)) for _ in range(6)]
        for _ in reports:
            proc.err.wait_line(" end ")
        proc.stop()
        assert [r["warm"] for r in reports] == [warm == "1"] * 6
        assert all(int(r["signals"]["SigIgn"], 16) & sigchld_bit == 0 for r in reports), binary
        assert all(int(r["signals"]["SigCgt"], 16) & sigchld_bit == 0 for r in reports), binary
