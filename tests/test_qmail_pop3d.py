"""qmail-pop3d: notqmail's replies, the Maildir changes (only at QUIT), hostile clients,
concurrent sessions; through the whole chain under our tcpserver (poplib, curl, raw
sockets), and run directly where the chain adds nothing."""

import os
import poplib
import re
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from qmail.pop3 import pop3_io, qmail_pop3d
from tests import pop3_rig, support
from tests.pop3_rig import PASSWORD, USER, Client, wire

MSG1 = b"From: a@example.test\nSubject: one\n\nfirst body line\n.dotted line\nlast\n"
MSG2 = b"Subject: two\n\n..two dots\n\n.\nno final newline"
MSG3 = b"Subject: three\n\nbody\n"


@pytest.fixture
def user():
    u = pop3_rig.PopUser()
    yield u
    u.remove()


@pytest.fixture
def three(user):
    """The user's Maildir with MSG1 (new, oldest), MSG2 (cur), MSG3 (new, newest)."""
    names = [user.deliver(MSG1, "new", age=300), user.deliver(MSG2, "cur", age=200, name="200.M2.host:2,S"),
             user.deliver(MSG3, "new", age=100)]
    return names


@pytest.fixture
def server(user):
    proc, port = user.start()
    yield port
    proc.stop()


def session(port) -> Client:
    c = Client(port)
    c.login()
    return c


def test_stat_list_uidl_and_their_replies(user, three, server):
    c = session(server)
    assert c.cmd(b"STAT") == b"+OK 3 %d\r\n" % (len(MSG1) + len(MSG2) + len(MSG3))
    assert c.cmd(b"LIST") == b"+OK \r\n"
    assert c.multi() == b"1 %d\r\n2 %d\r\n3 %d\r\n.\r\n" % (len(MSG1), len(MSG2), len(MSG3))
    assert c.cmd(b"LIST 2") == b"+OK 2 %d\r\n" % len(MSG2)
    assert c.cmd(b"UIDL") == b"+OK \r\n"
    assert c.multi() == b"1 %s\r\n2 200.M2.host\r\n3 %s\r\n.\r\n" % (three[0].encode(), three[2].encode())
    assert c.cmd(b"uidl 3") == b"+OK 3 %s\r\n" % three[2].encode()
    assert c.cmd(b"NOOP") == b"+OK \r\n"
    assert c.cmd(b"QUIT") == b"+OK \r\n"
    assert c.rest() == b""


def test_retr_and_top_on_the_wire(user, three, server):
    c = session(server)
    assert c.cmd(b"RETR 1") == b"+OK \r\n"
    assert c.multi() == wire(MSG1)
    assert c.cmd(b"RETR 2") == b"+OK \r\n"
    got = c.multi()
    assert got == wire(MSG2)
    assert got == b"Subject: two\r\n\r\n...two dots\r\n\r\n..\r\nno final newline\r\n\r\n.\r\n"
    assert c.cmd(b"TOP 1 0") == b"+OK \r\n"
    assert c.multi() == b"From: a@example.test\r\nSubject: one\r\n\r\n\r\n.\r\n"
    assert c.cmd(b"TOP 1 2") == b"+OK \r\n"
    assert c.multi() == b"From: a@example.test\r\nSubject: one\r\n\r\nfirst body line\r\n..dotted line\r\n\r\n.\r\n"
    assert c.cmd(b"TOP 1") == b"+OK \r\n"  # no line count: the whole message, as qmail
    assert c.multi() == wire(MSG1)
    assert c.cmd(b"RETR 3 0") == b"+OK \r\n"  # RETR is TOP in qmail-pop3d
    assert c.multi() == b"Subject: three\r\n\r\n\r\n.\r\n"
    c.cmd(b"QUIT")


@pytest.mark.parametrize("command, reply", [
    (b"RETR", b"-ERR syntax error\r\n"),
    (b"RETR x", b"-ERR syntax error\r\n"),
    (b"RETR 0", b"-ERR messages are counted from 1\r\n"),
    (b"RETR 4", b"-ERR not that many messages\r\n"),
    (b"TOP 99999999999999999999 1", b"-ERR not that many messages\r\n"),
    (b"DELE 0", b"-ERR messages are counted from 1\r\n"),
    (b"LIST 9", b"-ERR not that many messages\r\n"),
    (b"UIDL -1", b"-ERR syntax error\r\n"),
    (b"APOP x y", b"-ERR unimplemented\r\n"),
    (b"USER x", b"-ERR unimplemented\r\n"),
    (b"", b"-ERR unimplemented\r\n"),
    (b"STLS", b"-ERR unimplemented\r\n"),
])
def test_error_replies(user, three, server, command, reply):
    c = session(server)
    assert c.cmd(command) == reply
    assert c.cmd(b"STAT").startswith(b"+OK 3 ")
    c.cmd(b"QUIT")
    assert len(user.files()) == 3


def test_capa_in_the_transaction_state(user, server):
    c = session(server)
    assert c.cmd(b"CAPA") == b"+OK capability list follows\r\n"
    assert c.multi() == b"TOP\r\nUIDL\r\nPIPELINING\r\nIMPLEMENTATION qmail-pop3d (djb-suite)\r\n.\r\n"


def test_dele_quit_removes_and_moves_the_rest_to_cur(user, three, server):
    c = session(server)
    assert c.cmd(b"DELE 1") == b"+OK \r\n"
    assert c.cmd(b"DELE 1") == b"-ERR already deleted\r\n"
    assert c.cmd(b"RETR 1") == b"-ERR already deleted\r\n"
    assert c.cmd(b"STAT") == b"+OK 3 %d\r\n" % (len(MSG2) + len(MSG3))  # qmail counts deleted ones
    assert c.cmd(b"LIST") == b"+OK \r\n"
    assert c.multi() == b"2 %d\r\n3 %d\r\n.\r\n" % (len(MSG2), len(MSG3))
    assert c.cmd(b"QUIT") == b"+OK \r\n"
    assert c.rest() == b""
    assert user.files() == {"cur/200.M2.host:2,S": MSG2, f"cur/{three[2]}:2,": MSG3}


def test_dele_rset_keeps_everything_and_last(user, three, server):
    c = session(server)
    assert c.cmd(b"LAST") == b"+OK 0\r\n"
    assert c.cmd(b"RETR 3").startswith(b"+OK")
    c.multi()
    assert c.cmd(b"LAST") == b"+OK 0\r\n"  # qmail-pop3d: only DELE moves LAST
    assert c.cmd(b"DELE 2") == b"+OK \r\n"
    assert c.cmd(b"DELE 1") == b"+OK \r\n"
    assert c.cmd(b"LAST") == b"+OK 2\r\n"
    assert c.cmd(b"RSET") == b"+OK \r\n"
    assert c.cmd(b"LAST") == b"+OK 0\r\n"
    assert c.cmd(b"STAT") == b"+OK 3 %d\r\n" % (len(MSG1) + len(MSG2) + len(MSG3))
    assert c.cmd(b"QUIT") == b"+OK \r\n"
    files = user.files()
    assert sorted(files.values()) == sorted([MSG1, MSG2, MSG3])
    assert all(name.startswith("cur/") for name in files)


def test_no_quit_changes_nothing(user, three, server):
    before = user.files()
    c = session(server)
    assert c.cmd(b"DELE 1") == b"+OK \r\n"
    assert c.cmd(b"DELE 3") == b"+OK \r\n"
    c.close()
    time.sleep(0.5)
    assert user.files() == before


def test_poplib_session(user, three, server):
    p = poplib.POP3("127.0.0.1", server, timeout=30)
    assert re.fullmatch(rb"\+OK <\d+\.\d+@pop\.example\.test>", p.getwelcome())
    assert p.user(USER) == b"+OK "
    assert p.pass_(PASSWORD) == b"+OK "
    assert p.stat() == (3, len(MSG1) + len(MSG2) + len(MSG3))
    resp, lines, _ = p.retr(1)
    assert lines == MSG1.rstrip(b"\n").split(b"\n") + [b""]  # qmail-pop3d's extra empty line
    resp, lines, _ = p.top(1, 1)
    assert lines == [b"From: a@example.test", b"Subject: one", b"", b"first body line", b""]
    assert p.uidl(2) == b"+OK 2 200.M2.host"
    assert p.dele(3) == b"+OK "
    assert p.quit() == b"+OK "
    assert sorted(user.files().values()) == sorted([MSG1, MSG2])


def test_retr_of_a_5mb_message_is_exact(user, server):
    rng = __import__("random").Random(16)
    lines = []
    for i in range(80000):
        body = bytes(rng.choice(b"abc.xyz \t") for _ in range(rng.randrange(0, 120)))
        lines.append(b"." + body if i % 7 == 0 else body)
    message = b"Subject: big\n\n" + b"\n".join(lines) + b"\n"
    assert len(message) > 4_000_000
    user.deliver(message)
    c = session(server)
    assert c.cmd(b"LIST 1") == b"+OK 1 %d\r\n" % len(message)
    start = time.monotonic()
    assert c.cmd(b"RETR 1") == b"+OK \r\n"
    got = c.multi()
    elapsed = time.monotonic() - start
    assert got == wire(message)
    assert elapsed < 10, f"RETR of {len(message)} bytes took {elapsed:.1f}s"
    p = poplib.POP3("127.0.0.1", server, timeout=30)
    p.user(USER)
    p.pass_(PASSWORD)
    assert b"\n".join(p.retr(1)[1]) == message  # poplib undoes the stuffing; + the empty line
    p.quit()


def test_disconnect_mid_retr_changes_nothing(user, server):
    user.deliver(b"Subject: big\n\n" + b"x" * 100 + (b"\n" + b"y" * 200) * 50000)
    user.deliver(MSG1)
    before = user.files()
    c = session(server)
    assert c.cmd(b"DELE 2") == b"+OK \r\n"
    c.send(b"RETR 1\r\n")
    c.sock.recv(1000)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    c.sock.close()  # RST
    time.sleep(1)
    assert user.files() == before
    c = session(server)  # the server still serves
    assert c.cmd(b"STAT").startswith(b"+OK 2 ")


def test_huge_line_bare_lf_and_10000_commands(user, three, server):
    c = session(server)
    c.send(b"X" * 1_000_000 + b"\r\n")
    assert c.line() == b"-ERR unimplemented\r\n"
    c.send(b"STAT\nLIST 1\n")
    assert c.line().startswith(b"+OK 3 ")
    assert c.line() == b"+OK 1 %d\r\n" % len(MSG1)
    c.send(b"NOOP\r\n" * 10000)
    for _ in range(10000):
        assert c.line() == b"+OK \r\n"
    c.send(b"DELE 1 " + b"9" * 100000 + b"\r\n")  # a huge argument: message 1 all the same
    assert c.line() == b"+OK \r\n"
    c.send(b"RSET\r\nQUIT\r\n")
    assert c.line() == b"+OK \r\n"
    assert c.line() == b"+OK \r\n"
    assert sorted(user.files().values()) == sorted([MSG1, MSG2, MSG3])


def test_two_sessions_and_a_delivery_lose_nothing(user, three, server):
    a, b = session(server), session(server)
    assert a.cmd(b"STAT") == b.cmd(b"STAT")
    fresh = user.deliver(b"Subject: during\n\nnew one\n", age=0)  # this second: not listed
    assert a.cmd(b"STAT").startswith(b"+OK 3 ")
    assert a.cmd(b"DELE 1") == b"+OK \r\n"
    assert a.cmd(b"QUIT") == b"+OK \r\n"
    a.rest()
    # b still lists message 1, which a removed: qmail's answer, nothing else changes
    assert b.cmd(b"RETR 1") == b"-ERR unable to open that message\r\n"
    assert b.cmd(b"RETR 3") == b"+OK \r\n"
    assert b.multi() == wire(MSG3)
    assert b.cmd(b"QUIT") == b"+OK \r\n"  # its renames of what a renamed fail quietly
    files = user.files()
    assert sorted(files.values()) == sorted([MSG2, MSG3, b"Subject: during\n\nnew one\n"])
    assert f"new/{fresh}" in files
    time.sleep(1.1)  # the delivery's second has passed: the next session lists it
    c = session(server)
    assert c.cmd(b"STAT").startswith(b"+OK 3 ")


def test_concurrent_sessions_deleting_the_same_message(user, three, server):
    clients = [session(server) for _ in range(4)]
    for c in clients:
        assert c.cmd(b"DELE 2") == b"+OK \r\n"
    replies = []
    for c in clients:
        c.send(b"QUIT\r\n")
    for c in clients:
        replies.append(c.rest())
    assert replies.count(b"+OK \r\n") >= 1
    assert all(r in (b"+OK \r\n", b"-ERR unable to unlink all deleted messages\r\n+OK \r\n") for r in replies)
    assert sorted(user.files().values()) == sorted([MSG1, MSG3])


def test_curl_lists_and_retrieves(user, three):
    """curl logs in by APOP when the greeting has a timestamp (qmail's): so the chain has
    the tests' APOP-capable checkpassword."""
    curl = "/usr/bin/curl"
    if not os.path.exists(curl):
        pytest.skip("curl not installed (apt-get install curl)")
    _, server = user.start(checkpassword=user.apop_checkpassword())
    url = f"pop3://127.0.0.1:{server}/"
    listing = subprocess.run([curl, "-s", "--user", f"{USER}:{PASSWORD}", url],
                             capture_output=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout == b"1 %d\r\n2 %d\r\n3 %d\r\n" % (len(MSG1), len(MSG2), len(MSG3))
    got = subprocess.run([curl, "-s", "--user", f"{USER}:{PASSWORD}", url + "1"],
                         capture_output=True, timeout=30)
    assert got.returncode == 0, got.stderr
    assert got.stdout == MSG1.replace(b"\n", b"\r\n") + b"\r\n"
    bad = subprocess.run([curl, "-s", "--user", f"{USER}:wrong", url], capture_output=True, timeout=30)
    assert bad.returncode != 0


# --- run directly ---------------------------------------------------------------


def run_direct(user, args, send=b"", as_user=True, code=None):
    """qmail-pop3d ARGS with a socketpair as 0 and 1, as the POP user; (exit code, output)."""
    argv = [support.prog("qmail-pop3d"), *args]
    if as_user and os.getuid() == 0:
        argv = support.as_user(argv, user.pw)
    mine, theirs = socket.socketpair()
    proc = subprocess.Popen(argv, stdin=theirs, stdout=theirs, stderr=subprocess.PIPE,
                            cwd=user.home, env=support.suite_env(), start_new_session=True)
    theirs.close()
    mine.sendall(send)
    mine.shutdown(socket.SHUT_WR)
    out = support.recv_all(mine, timeout=30)
    mine.close()
    return proc.wait(timeout=30), out, proc.stderr.read()


def test_no_maildir(user):
    code, out, _ = run_direct(user, ["Nonexistent"])
    assert (code, out) == (0, b"-ERR this user has no $HOME/Maildir\r\n")
    code, out, _ = run_direct(user, [])
    assert (code, out) == (0, b"-ERR this user has no $HOME/Maildir\r\n")


def test_unreadable_maildir(user, three):
    os.chmod(user.maildir / "cur", 0)
    try:
        code, out, _ = run_direct(user, ["Maildir"])
    finally:
        os.chmod(user.maildir / "cur", 0o700)
    assert (code, out) == (0, b"-ERR unable to scan $HOME/Maildir\r\n")
    assert len(user.files()) == 3


def test_refuses_uid_0(user):
    if os.getuid() != 0:
        pytest.skip("qmail-pop3d's refusal of uid 0 needs root to be seen")
    code, out, err = run_direct(user, ["Maildir"], as_user=False)
    assert (code, out, err) == (1, b"", b"qmail-pop3d invoked as uid 0, terminating\n")


def test_end_of_input_exits_0_and_old_tmp_files_are_cleaned(user, three):
    old = user.maildir / "tmp" / "1.old.host"
    young = user.maildir / "tmp" / "2.young.host"
    for path in (old, young):
        path.write_bytes(b"x")
        user.chown(path)
    os.utime(old, (time.time() - 129700, time.time() - 129700))
    code, out, _ = run_direct(user, ["Maildir"], b"STAT\r\nDELE 1\r\n")
    assert code == 0
    assert out == b"+OK \r\n+OK 3 %d\r\n+OK \r\n" % (len(MSG1) + len(MSG2) + len(MSG3))
    assert not old.exists() and young.exists()
    assert len(user.files()) == 3


def test_the_timeout_is_qmails():
    assert pop3_io.TIMEOUT == 1200
    assert pop3_io.Conn(0, 1).timeout == 1200


TIMED = textwrap.dedent("""
    import sys
    from qmail.pop3 import pop3_io
    pop3_io.TIMEOUT = float(sys.argv[1])
    from qmail.pop3 import qmail_pop3d
    sys.exit(qmail_pop3d.main(["qmail-pop3d", "Maildir"]))
""")


def timed_pop3d(user, seconds):
    argv = [sys.executable, "-c", TIMED, str(seconds)]
    if os.getuid() == 0:
        argv = support.as_user(argv, user.pw)
    mine, theirs = socket.socketpair()
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    proc = subprocess.Popen(argv, stdin=theirs, stdout=theirs, cwd=user.home,
                            env=support.suite_env(), start_new_session=True)
    theirs.close()
    return proc, mine


def test_idle_client_is_dropped_after_the_timeout(user, three):
    """The 1200 s of qmail, shortened to 1 s in the module (the original has no knob)."""
    proc, sock = timed_pop3d(user, 1)
    with sock:
        assert sock.recv(100) == b"+OK \r\n"
        start = time.monotonic()
        assert proc.wait(timeout=20) == 0
        assert 0.9 < time.monotonic() - start < 10
    assert len(user.files()) == 3


def test_client_that_stops_reading_is_dropped_after_the_timeout(user):
    user.deliver(b"Subject: big\n\n" + b"z" * 70 + (b"\n" + b"w" * 70) * 60000)
    proc, sock = timed_pop3d(user, 1)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"RETR 1\r\n")
        start = time.monotonic()
        assert proc.wait(timeout=20) == 0
        assert 0.9 < time.monotonic() - start < 10
    assert len(user.files()) == 1


def test_slow_client_within_the_timeout_is_served(user, three, server):
    c = session(server)
    time.sleep(3)
    assert c.cmd(b"STAT").startswith(b"+OK 3 ")
    for byte in b"LIST 1\r\n":
        c.send(bytes([byte]))
        time.sleep(0.05)
    assert c.line() == b"+OK 1 %d\r\n" % len(MSG1)


@pytest.mark.parametrize("message", [b"", b"\n", b".", b"..\n.\n", b"a\r\nb\n", b"x" * 70000,
                                     b"no newline", b"\n\n\n.x\n"])
def test_blast_matches_the_line_by_line_definition(message, tmp_path):
    path = tmp_path / "m"
    path.write_bytes(message)

    class Out:
        data = b""

        def write(self, data):
            self.data += bytes(data)

    out = Out()
    with open(path, "rb") as f:
        qmail_pop3d.blast(out, f, 0)
    assert out.data == wire(message)
