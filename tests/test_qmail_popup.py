"""qmail-popup: the AUTHORIZATION state's replies (notqmail's), the record on descriptor
3, one login attempt per connection, CAPA, pipelining across the login, hostile clients,
the timeout; under our tcpserver with poplib and raw sockets."""

import hashlib
import poplib
import re
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from qmail.pop3 import pop3_io
from tests import pop3_rig, support, tls_certs
from tests.tls_certs import certs  # noqa: F401  (the fixture)
from tests.pop3_rig import HOST, PASSWORD, USER, Client
from tests.ucspi_servers import start_tcpserver

GREETING = re.compile(rb"\+OK <(\d+)\.(\d+)@pop\.example\.test>\r\n")
CAPA = (b"+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nPIPELINING\r\n"
        b"IMPLEMENTATION qmail-popup (djb-suite)\r\n.\r\n")


@pytest.fixture
def user():
    u = pop3_rig.PopUser()
    yield u
    u.remove()


def popup(subprogram, env=None):
    """tcpserver running qmail-popup HOST SUBPROGRAM...; the port."""
    _, port = start_tcpserver([], [support.prog("qmail-popup"), HOST, *subprogram],
                              env=env or support.suite_env(), cwd="/")
    return port


@pytest.fixture
def recorder(tmp_path):
    """qmail-popup whose subprogram saves descriptor 3 to a file and fails; (port, file)."""
    out = tmp_path / "fd3"
    port = popup(["sh", "-c", f'cat <&3 > {out}; exit 1'])
    return port, out


def greet(c: Client) -> bytes:
    line = c.line()
    assert GREETING.fullmatch(line), line
    return line[4:-2]  # <pid.time@host>


def test_greeting_and_the_authorization_replies(recorder):
    c = Client(recorder[0])
    greet(c)
    assert c.cmd(b"NOOP") == b"+OK \r\n"
    assert c.cmd(b"STAT") == b"-ERR authorization first\r\n"
    assert c.cmd(b"") == b"-ERR authorization first\r\n"
    assert c.cmd(b"PASS x") == b"-ERR USER first\r\n"
    assert c.cmd(b"USER") == b"-ERR syntax error\r\n"
    assert c.cmd(b"APOP nospace") == b"-ERR syntax error\r\n"
    assert c.cmd(b"STLS") == b"-ERR authorization first\r\n"  # not offered without UCSPITLS
    c.send(b"CAPA\r\n")
    assert c.multi() == CAPA
    assert c.cmd(b"user joe") == b"+OK \r\n"
    assert c.cmd(b"PASS") == b"-ERR syntax error\r\n"
    assert c.cmd(b"QUIT") == b"+OK \r\n"
    assert c.rest() == b""


def test_capa_lists_what_is_offered(recorder):
    c = Client(recorder[0])
    greet(c)
    c.send(b"CAPA\r\n")
    assert c.multi() == CAPA


def test_the_record_on_descriptor_3_and_a_failed_login(recorder):
    port, out = recorder
    c = Client(port)
    stamp = greet(c)
    assert c.cmd(b"USER joe") == b"+OK \r\n"
    assert c.cmd(b"PASS pass word") == b"-ERR authorization failed\r\n"
    assert c.rest() == b""  # one attempt per connection, as qmail
    assert out.read_bytes() == b"joe\0pass word\0" + stamp + b"\0"


def test_apop_record(recorder):
    port, out = recorder
    c = Client(port)
    stamp = greet(c)
    assert c.cmd(b"APOP joe 0123abcd ef") == b"-ERR authorization failed\r\n"
    assert out.read_bytes() == b"joe\x000123abcd ef\0" + stamp + b"\0"


def test_a_nul_ends_the_line_as_in_c(recorder):
    port, out = recorder
    c = Client(port)
    stamp = greet(c)
    assert c.cmd(b"USER joe\0other\0x") == b"+OK \r\n"
    assert c.cmd(b"PASS pw\0more") == b"-ERR authorization failed\r\n"
    assert out.read_bytes() == b"joe\0pw\0" + stamp + b"\0"


def test_a_crashed_child():
    port = popup(["sh", "-c", "kill -9 $$"])
    c = Client(port)
    greet(c)
    c.cmd(b"USER a")
    assert c.cmd(b"PASS b") == b"-ERR aack, child crashed\r\n"
    assert c.rest() == b""


def test_a_subprogram_that_cannot_run():
    port = popup(["/nonexistent/checkpassword", "qmail-pop3d", "Maildir"])
    c = Client(port)
    greet(c)
    c.cmd(b"USER a")
    assert c.cmd(b"PASS b") == b"-ERR authorization failed\r\n"


def test_the_subprogram_talks_to_the_client_and_sees_no_tls_variables():
    port = popup(["sh", "-c", 'echo "+OK from child ${UCSPITLS-none} ${SSLCTLFD-none}"'],
                 env=support.suite_env(UCSPITLS="", SSLCTLFD="9"))
    c = Client(port)
    greet(c)
    c.cmd(b"USER a")
    assert c.cmd(b"PASS b") == b"+OK from child none none\n"
    assert c.rest() == b""


def test_usage():
    for argv in ([], ["host"]):
        result = support.run([support.prog("qmail-popup"), *argv])
        assert (result.returncode, result.stdout) == (1, b"-ERR usage: popup hostname subprogram\r\n")


def test_poplib_login_and_session(user):
    user.deliver(b"Subject: hi\n\nhello\n")
    _, port = user.start()
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    assert p.user(USER) == b"+OK "
    assert p.pass_(PASSWORD) == b"+OK "
    assert p.stat() == (1, len(b"Subject: hi\n\nhello\n"))
    assert p.quit() == b"+OK "


def test_poplib_wrong_password_and_unknown_user(user):
    _, port = user.start()
    for name, password in ((USER, "wrong"), ("nobody-here", PASSWORD), (USER, "")):
        p = poplib.POP3("127.0.0.1", port, timeout=30)
        p.user(name)
        with pytest.raises(poplib.error_proto) as failed:
            p.pass_(password)
        assert failed.value.args[0] == (b"-ERR syntax error" if not password
                                        else b"-ERR authorization failed")


def test_poplib_apop(user):
    user.deliver(b"Subject: hi\n\nhello\n")
    _, port = user.start(checkpassword=user.apop_checkpassword())
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    assert p.apop(USER, PASSWORD) == b"+OK "
    assert p.stat()[0] == 1
    p.quit()
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    with pytest.raises(poplib.error_proto, match="authorization failed"):
        p.apop(USER, "wrong")


def test_pipelined_login_reaches_qmail_pop3d(user):
    user.deliver(b"Subject: hi\n\nhello\n")
    _, port = user.start()
    c = Client(port)
    greet(c)
    c.send(b"USER %s\r\nPASS %s\r\nSTAT\r\nUIDL\r\nQUIT\r\n" % (USER.encode(), PASSWORD.encode()))
    reply = c.rest()
    assert reply.startswith(b"+OK \r\n+OK \r\n+OK 1 19\r\n+OK \r\n1 ")
    assert reply.endswith(b"\r\n.\r\n+OK \r\n")


def test_hostile_lines(recorder):
    port, out = recorder
    c = Client(port)
    stamp = greet(c)
    c.send(b"A" * 1_000_000 + b"\r\n")
    assert c.line() == b"-ERR authorization first\r\n"
    c.send(b"NOOP\n" * 10000)  # bare LF, pipelined
    for _ in range(10000):
        assert c.line() == b"+OK \r\n"
    c.send(b"USER " + b"u" * 200_000 + b"\r\n")  # kept up to the line limit
    assert c.line() == b"+OK \r\n"
    c.send(b"USER joe\nPASS pw\n")
    assert c.line() == b"+OK \r\n"
    assert c.line() == b"-ERR authorization failed\r\n"
    assert out.read_bytes() == b"joe\0pw\0" + stamp + b"\0"


def test_a_long_user_name_reaches_checkpassword_as_misuse(user):
    _, port = user.start()
    c = Client(port)
    greet(c)
    assert c.cmd(b"USER " + b"u" * 600) == b"+OK \r\n"
    assert c.cmd(b"PASS " + PASSWORD.encode()) == b"-ERR authorization failed\r\n"


TIMED = textwrap.dedent("""
    import sys
    from qmail.pop3 import pop3_io
    pop3_io.TIMEOUT = float(sys.argv[1])
    from qmail.pop3 import qmail_popup
    sys.exit(qmail_popup.main(["qmail-popup", "host", "true"]))
""")


def test_the_timeout_is_qmails_and_ends_an_idle_session():
    """1200 s as qmail-popup(8) says; the mechanism seen with the module's constant at
    1 s (the original has no knob for it)."""
    assert pop3_io.TIMEOUT == 1200
    mine, theirs = socket.socketpair()
    proc = subprocess.Popen([sys.executable, "-c", TIMED, "1"], stdin=theirs, stdout=theirs,
                            env=support.suite_env(), start_new_session=True)
    theirs.close()
    with mine:
        assert mine.recv(100).startswith(b"+OK <")
        mine.sendall(b"NOOP\r\n")
        assert mine.recv(100) == b"+OK \r\n"
        start = time.monotonic()
        assert proc.wait(timeout=20) == 1
        assert 0.9 < time.monotonic() - start < 10


def test_slow_client_is_served(recorder):
    c = Client(recorder[0])
    greet(c)
    time.sleep(2)
    for byte in b"NOOP\r\n":
        c.send(bytes([byte]))
        time.sleep(0.1)
    assert c.line() == b"+OK \r\n"


def test_apop_digest_format_matches_the_greeting(recorder):
    """The digest a client computes from the greeting is what the subprogram receives."""
    port, out = recorder
    c = Client(port)
    stamp = greet(c)
    digest = hashlib.md5(stamp + b"secret").hexdigest().encode()
    c.cmd(b"APOP joe " + digest)
    user, got, record_stamp = out.read_bytes().split(b"\0")[:3]
    assert (user, got, record_stamp) == (b"joe", digest, stamp)
    assert hashlib.md5(record_stamp + b"secret").hexdigest().encode() == got


# --- STLS through sslserver -n (UCSPI-TLS) ----------------------------------------


@pytest.fixture
def certificate(certs):
    """The session's test certificates (tests/tls_certs.py): the server's for sslserver."""
    return certs


def start_stls(user, certificate, **extra):
    """sslserver -n ... qmail-popup HOST checkpassword qmail-pop3d Maildir; the port."""
    env = user.env(**certificate.server_env(**extra))
    chain = [support.prog("qmail-popup"), HOST, support.prog("checkpassword"),
             support.prog("qmail-pop3d"), "Maildir"]
    _, port = start_tcpserver(["-n"], chain, env=env, binary=support.prog("sslserver"), cwd="/")
    return port


def client_context():
    """A client trusting the test CA, checking that the certificate names 127.0.0.1."""
    return tls_certs.session_certs().client_context()


def test_stls_offered_and_used(user, certificate):
    user.deliver(b"Subject: tls\n\nover tls\n")
    port = start_stls(user, certificate)
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    assert "STLS" in p.capa() and "USER" in p.capa()
    assert p.stls(client_context()).startswith(b"+OK")
    assert "STLS" not in p.capa()
    assert p.user(USER) == b"+OK "
    assert p.pass_(PASSWORD) == b"+OK "
    assert p.retr(1)[1] == [b"Subject: tls", b"", b"over tls", b""]
    assert p.quit() == b"+OK "


def test_stls_required(user, certificate):
    port = start_stls(user, certificate, UCSPITLS="!")
    c = Client(port)
    greet(c)
    assert c.cmd(b"USER " + USER.encode()) == b"-ERR STLS first\r\n"
    assert c.cmd(b"PASS x") == b"-ERR STLS first\r\n"
    assert c.cmd(b"APOP a b") == b"-ERR STLS first\r\n"
    c.send(b"CAPA\r\n")
    capa = c.multi()
    assert b"STLS\r\n" in capa and b"USER\r\n" not in capa
    c.close()
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    p.stls(client_context())
    assert "USER" in p.capa()
    p.user(USER)
    assert p.pass_(PASSWORD) == b"+OK "
    assert p.stat() == (0, 0)
    p.quit()


def test_stls_forgets_the_user_given_before(user, certificate):
    port = start_stls(user, certificate)
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    p.user(USER)
    p.stls(client_context())
    with pytest.raises(poplib.error_proto, match="USER first"):
        p.pass_(PASSWORD)


def test_cleartext_after_stls_is_not_a_command(user, certificate):
    """STLS and USER in one packet: the USER is not answered in cleartext (no command
    injection); the TLS handshake fails on it and the connection ends."""
    port = start_stls(user, certificate)
    c = Client(port)
    greet(c)
    c.send(b"STLS\r\nUSER " + USER.encode() + b"\r\n")
    assert c.line() == b"+OK begin TLS negotiation\r\n"
    assert b"+OK" not in c.rest()
