"""qmail/queue/spawn_protocol.py: the qmail-send <-> spawn wire format, the report
translations of qmail-lspawn and qmail-rspawn, and spawn.c's server loop run for real."""

import os
import select
import signal
import subprocess
import time

from hypothesis import given, strategies as st

from qmail.queue import spawn_protocol as sp
from tests import support

FAKE_SPAWN = """
import os, sys, time
from qmail.queue import spawn_protocol

def child(req):
    data = os.read(0, 65536)
    box = req.recip[:req.at]
    if box == b"sleep":
        time.sleep(0.5)
    if box == b"long":
        os.write(1, b"x" * 5000)
        return 100
    if box == b"parent":
        with open("/proc/%d/cmdline" % os.getppid(), "rb") as f:
            os.write(1, b"%d %s\\n" % (os.getppid(), f.read().rstrip(b"\\0")))
        return 0
    if box == b"block":
        time.sleep(30)
    os.write(1, b"got %d bytes from <%s> for %s\\n" % (len(data), req.sender, req.recip))
    if box == b"crash":
        os.kill(os.getpid(), 9)
    return {b"soft": 111, b"hard": 100}.get(box, 0)

sys.exit(spawn_protocol.serve(child, spawn_protocol.local_report, 3000, root=sys.argv[1]))
"""

addresses = st.binary(max_size=40).filter(lambda b: b"\0" not in b)


def test_command_round_trip_survives_any_chunking():
    @given(st.lists(st.tuples(st.integers(0, 255), addresses, addresses, addresses),
                    max_size=5), st.integers(1, 7))
    def check(commands, chunk):
        wire = b"".join(sp.encode_command(*c) for c in commands)
        reader = sp.CommandReader()
        got = []
        for i in range(0, len(wire), chunk):
            got += reader.feed(wire[i:i + chunk])
        assert [(r.delnum, r.messid, r.sender, r.recip) for r in got] == commands
    check()


def test_report_round_trip_survives_any_chunking():
    @given(st.lists(st.tuples(st.integers(0, 255), addresses.filter(bool)), max_size=5),
           st.integers(1, 7))
    def check(reports, chunk):
        wire = b"".join(sp.encode_report(*r) for r in reports)
        reader = sp.ReportReader()
        got = []
        for i in range(0, len(wire), chunk):
            got += reader.feed(wire[i:i + chunk])
        assert got == reports
    check()


def test_report_reader_cuts_overlong_reports():
    reader = sp.ReportReader(limit=10)
    assert reader.feed(b"\x01K" + b"a" * 50 + b"\0") == [(1, b"K" + b"a" * 8)]


def _exit(code):
    return code << 8


def test_local_report_translates_exit_codes_as_qmail_lspawn():
    assert sp.local_report(_exit(0), b"did 0+0+1/\n") == b"Kdid 0+0+1/\n"
    assert sp.local_report(_exit(111), b"busy\n") == b"Zbusy\n"
    for code in (71, 74, 75):
        assert sp.local_report(_exit(code), b"t\n") == b"Zt\n"
    assert sp.local_report(_exit(100), b"no\n") == b"Dno\n"
    assert sp.local_report(_exit(7), b"no\n") == b"Dno\n"
    assert sp.local_report(_exit(0), b"cut\0here") == b"Kcut"
    assert sp.local_report(9, b"") == b"Zqmail-local crashed.\n"
    assert sp.local_report(_exit(sp.QLX_ROOT), b"x") == b"ZNot allowed to perform deliveries as root.\n"
    assert sp.local_report(_exit(sp.QLX_EXECHARD), b"") == b"DUnable to run qmail-local.\n"


def test_remote_report_translates_qmail_remote_output_as_qmail_rspawn():
    assert sp.remote_report(_exit(0), b"r\0Kok\0") == b"Kok"
    assert (sp.remote_report(_exit(0), b"rok\0K1.2.3.4 accepted message.\nRemote host said: 250 ok\n\0")
            == b"Kok1.2.3.4 accepted message.\nRemote host said: 250 ok\n")
    assert (sp.remote_report(_exit(0), b"hSorry, no mailbox here.\n\0DGiving up.\n\0")
            == b"DSorry, no mailbox here.\nGiving up.\n")
    assert (sp.remote_report(_exit(0), b"hSorry, no mailbox here.\n\0Kbut the rest went.\n\0")
            == b"DSorry, no mailbox here.\n")
    assert (sp.remote_report(_exit(0), b"sRemote said 451.\n\0Zbusy\n\0")
            == b"ZRemote said 451.\nbusy\n")
    assert (sp.remote_report(_exit(0), b"ZSorry, I couldn't find any host.\n\0")
            == b"ZSorry, I couldn't find any host.\n")
    assert sp.remote_report(_exit(0), b"") == b"Zqmail-remote produced no output.\n"
    assert sp.remote_report(_exit(111), b"x") == b"ZUnable to run qmail-remote.\n"
    assert sp.remote_report(_exit(100), b"x") == b"DUnable to run qmail-remote.\n"
    assert sp.remote_report(6, b"x") == b"Zqmail-remote crashed.\n"


def test_check_refuses_bad_commands_with_qmail_texts():
    ok = sp.Request(0, b"5/123", b"a@b", b"c@d")
    assert sp.check(ok, False, 120) is None
    assert sp.check(ok, True, 120) == b"ZInternal error: delnum in use. (#4.3.5)\n"
    assert sp.check(sp.Request(120, b"5/1", b"", b"c@d"), False, 120).startswith(b"ZInternal error: delnum too big.")
    assert sp.check(sp.Request(0, b"/5", b"", b"c@d"), False, 120).startswith(b"DInternal error: messid has nonnumerics.")
    assert sp.check(sp.Request(0, b"5/x", b"", b"c@d"), False, 120).startswith(b"DInternal error: messid has nonnumerics.")
    assert sp.check(sp.Request(0, b"1" * 100, b"", b"c@d"), False, 120).startswith(b"DInternal error: messid too long.")
    assert sp.check(sp.Request(0, b"", b"", b"c@d"), False, 120).startswith(b"DInternal error: messid too short.")
    assert sp.check(sp.Request(0, b"5/1", b"", b"cd"), False, 120) == b"DSorry, address must include host name. (#5.1.3)\n"


# --- the server loop, run as a real process ------------------------------------------

def _tree(tmp_path):
    mess = tmp_path / "queue" / "mess" / "5"
    mess.mkdir(parents=True)
    (mess / "123").write_bytes(b"Subject: hi\n\nbody\n")
    (tmp_path / "fake_spawn.py").write_text(FAKE_SPAWN)
    return tmp_path


def _start(tmp_path):
    return support.Proc([support.PYTHON, tmp_path / "fake_spawn.py", tmp_path],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def _read_reports(proc, count, timeout=10.0):
    reader = sp.ReportReader()
    got = []
    fd = proc.popen.stdout.fileno()
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        data = os.read(fd, 4096)
        if not data:
            break
        got += reader.feed(data)
    return got


def _read_exact(proc, n, timeout=10.0):
    fd = proc.popen.stdout.fileno()
    ready, _, _ = select.select([fd], [], [], timeout)
    assert ready
    return os.read(fd, n)


def _send(proc, data):
    proc.popen.stdin.write(data)
    proc.popen.stdin.flush()


def test_server_announces_its_concurrency_then_reports_each_delivery(tmp_path):
    _tree(tmp_path)
    proc = _start(tmp_path)
    assert _read_exact(proc, 1) == bytes([sp.AUTO_SPAWN])
    _send(proc, sp.encode_command(3, b"5/123", b"me@here", b"ok@there"))
    _send(proc, sp.encode_command(4, b"5/123", b"", b"soft@there"))
    _send(proc, sp.encode_command(5, b"5/123", b"", b"hard@there"))
    got = dict(_read_reports(proc, 3))
    assert got[3] == b"Kgot 18 bytes from <me@here> for ok@there\n"
    assert got[4] == b"Zgot 18 bytes from <> for soft@there\n"
    assert got[5] == b"Dgot 18 bytes from <> for hard@there\n"
    proc.popen.stdin.close()
    assert proc.wait() == 0


def test_server_refuses_missing_message_and_busy_slot(tmp_path):
    _tree(tmp_path)
    proc = _start(tmp_path)
    _read_exact(proc, 1)
    _send(proc, sp.encode_command(1, b"5/999", b"", b"ok@there"))
    assert _read_reports(proc, 1) == [(1, b"Zqmail-spawn unable to open message. (#4.3.0)\n")]
    _send(proc, sp.encode_command(2, b"5/123", b"", b"sleep@there")
          + sp.encode_command(2, b"5/123", b"", b"ok@there"))
    got = _read_reports(proc, 2)
    assert got[0] == (2, b"ZInternal error: delnum in use. (#4.3.5)\n")
    assert got[1][0] == 2 and got[1][1].startswith(b"Kgot 18 bytes")


def test_server_runs_deliveries_concurrently(tmp_path):
    _tree(tmp_path)
    proc = _start(tmp_path)
    _read_exact(proc, 1)
    start = time.monotonic()
    _send(proc, b"".join(sp.encode_command(i, b"5/123", b"", b"sleep@x") for i in range(6)))
    got = _read_reports(proc, 6)
    assert sorted(d for d, _ in got) == list(range(6))
    assert time.monotonic() - start < 2.5  # six 0.5 s deliveries, not one after another


def test_server_reports_a_crash_and_truncates_long_output(tmp_path):
    _tree(tmp_path)
    proc = _start(tmp_path)
    _read_exact(proc, 1)
    _send(proc, sp.encode_command(0, b"5/123", b"", b"crash@x") + sp.encode_command(1, b"5/123", b"", b"long@x"))
    got = dict(_read_reports(proc, 2))
    assert got[0] == b"Zqmail-local crashed.\n"
    assert got[1].endswith(sp.TRUNCATED) and len(got[1]) == 1 + 3000 - 3


def test_server_refuses_a_message_owned_by_someone_else(tmp_path):
    if os.geteuid() != 0:
        import pytest
        pytest.skip("needs root to give the message another owner")
    _tree(tmp_path)
    os.chown(tmp_path / "queue" / "mess" / "5" / "123", 1, 1)
    proc = _start(tmp_path)
    _read_exact(proc, 1)
    _send(proc, sp.encode_command(0, b"5/123", b"", b"ok@x"))
    assert _read_reports(proc, 1) == [(0, b"ZSorry, message has wrong owner. (#4.3.5)\n")]


def test_server_finishes_deliveries_after_input_ends(tmp_path):
    _tree(tmp_path)
    proc = _start(tmp_path)
    _read_exact(proc, 1)
    _send(proc, sp.encode_command(0, b"5/123", b"", b"sleep@x"))
    proc.popen.stdin.close()
    assert _read_reports(proc, 1)[0][1].startswith(b"K")
    assert proc.wait() == 0
    proc.send_signal(signal.SIGTERM)


def test_deliveries_are_forked_by_the_servers_fork_helper(tmp_path):
    _tree(tmp_path)
    proc = _start(tmp_path)
    _read_exact(proc, 1)
    _send(proc, sp.encode_command(0, b"5/123", b"", b"parent@x"))
    [(_, text)] = _read_reports(proc, 1)
    helper, title = text[1:].split(b" ", 1)
    assert title.strip().endswith(b": fork helper")
    assert support.child_pids(proc.pid) == [int(helper)]
    proc.popen.stdin.close()
    assert proc.wait() == 0


def test_deliveries_go_on_when_the_fork_helper_dies(tmp_path):
    """A delivery the dead helper had started is reported as crashed (qmail-send tries
    it again later); the server then forks deliveries itself."""
    _tree(tmp_path)
    proc = _start(tmp_path)
    _read_exact(proc, 1)
    support.wait_for(lambda: support.child_pids(proc.pid), what="fork helper")
    [helper] = support.child_pids(proc.pid)
    _send(proc, sp.encode_command(0, b"5/123", b"", b"block@x"))
    support.wait_for(lambda: support.child_pids(helper), what="delivery under way")
    [delivery] = support.child_pids(helper)
    os.kill(helper, signal.SIGKILL)
    assert _read_reports(proc, 1) == [(0, b"Zqmail-local crashed.\n")]
    os.kill(delivery, signal.SIGKILL)  # orphaned: it would have run on, as qmail-local would
    _send(proc, sp.encode_command(1, b"5/123", b"me@here", b"ok@there"))
    assert _read_reports(proc, 1) == [(1, b"Kgot 18 bytes from <me@here> for ok@there\n")]
    assert support.child_pids(proc.pid) == []  # forked and reaped by the server itself
    proc.popen.stdin.close()
    assert proc.wait() == 0


@given(st.integers(0, 0xFFFF), st.binary(max_size=60))
def test_report_translations_always_give_k_z_or_d(wstat, output):
    for translate in (sp.local_report, sp.remote_report):
        text = translate(wstat, output)
        assert text[:1] in (b"K", b"Z", b"D")
        assert b"\0" not in text
