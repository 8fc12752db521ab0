"""qmail-smtpd behind our tcpserver (-RHl0) with real clients: smtplib (EHLO, pipelining,
STARTTLS, AUTH PLAIN/LOGIN/CRAM-MD5), swaks transcripts, relay rules from a tcprules cdb,
and hostile clients (early talkers, TLS garbage, floods, disconnects)."""

import base64
import hashlib
import hmac
import os
import smtplib
import socket
import ssl
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests import support
from tests.test_qmail_smtpd import FQDN, OK_QP, queued, smtpd_env, tree  # noqa: F401 (fixture)
from tests.tls_certs import certs  # noqa: F401  (the fixture)
from tests.ucspi_servers import start_tcpserver

DEMO = f"demo@{FQDN}"
USER, PASSWORD = "joe", "s3cret pass"

CHECKPASSWORD = f"""#!{support.PYTHON}
import hashlib, hmac, os, sys
data = os.read(3, 4096)
while True:
    more = os.read(3, 4096)
    if not more:
        break
    data += more
user, second, third = data.split(b"\\0")[:3]
ok = user == {USER.encode()!r} and (second == {PASSWORD.encode()!r} or third and
     hmac.new({PASSWORD.encode()!r}, second, hashlib.md5).hexdigest().encode() == third)
if user == b"tempfail":
    sys.exit(111)
if not ok:
    sys.exit(1)
os.execvp(sys.argv[1], sys.argv[1:])
"""


@pytest.fixture
def certificate(certs) -> bytes:
    """The test server's key and certificate in one PEM (control/servercert.pem's form),
    from the session's certificates (tests/tls_certs.py)."""
    return Path(certs.server_pem).read_bytes()


def start_smtpd(root: Path, tmp_path: Path, rules: str | None = None, args=(), **extra):
    """tcpserver -RHl0 [-x rules.cdb] 127.0.0.1 0 qmail-smtpd ARGS; returns (proc, port)."""
    opts = ["-RHl0"]
    if rules is not None:
        (tmp_path / "rules.txt").write_text(rules)
        with open(tmp_path / "rules.txt", "rb") as f:
            made = support.run([support.prog("tcprules"), tmp_path / "rules.cdb", tmp_path / "rules.tmp"],
                               input=f.read())
        assert made.returncode == 0, made.stderr
        opts += ["-x", str(tmp_path / "rules.cdb")]
    env = smtpd_env(root, TCPREMOTEIP=None, TCPLOCALIP=None, **extra)
    return start_tcpserver(opts, [support.prog("qmail-smtpd"), *args], env=env)


def checkpassword(tmp_path) -> list[str]:
    script = tmp_path / "checkpassword"
    script.write_text(CHECKPASSWORD)
    script.chmod(0o755)
    return [FQDN, str(script), "/bin/true"]


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def message(to=DEMO) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "a@b.example"
    msg["To"] = to
    msg["Subject"] = "test"
    msg.set_content("hello\n.leading dot\n")
    return msg


def test_smtplib_sends_a_message_through_tcpserver(tree, tmp_path):
    _, port = start_smtpd(tree, tmp_path)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        code, text = smtp.ehlo("client")
        assert code == 250 and text == b"mx.example.org\nPIPELINING\n8BITMIME"
        assert smtp.send_message(message()) == {}
    [(mess, env)] = queued(tree)
    assert env.endswith(b"Fa@b.example\0T" + DEMO.encode() + b"\0")
    assert b"\n  by 0 with SMTP; " in mess and b"\n.leading dot\n" in mess  # -l0: TCPLOCALHOST=0
    assert b"Received: from unknown (HELO client) (127.0.0.1)\n" in mess


def test_foreign_recipient_refused_without_relayclient(tree, tmp_path):
    _, port = start_smtpd(tree, tmp_path)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.send_message(message("x@foreign.example"))
    assert refused.value.recipients == {"x@foreign.example": (
        553, b"sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")}
    assert queued(tree) == []


def test_rules_setting_relayclient_allow_relaying(tree, tmp_path):
    _, port = start_smtpd(tree, tmp_path, rules='127.:allow,RELAYCLIENT=""\n:allow\n')
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        assert smtp.send_message(message("x@foreign.example")) == {}
    assert queued(tree)[0][1].endswith(b"Tx@foreign.example\0")


def test_swaks_transcript_with_pipelining(tree, tmp_path):
    swaks = "/usr/bin/swaks"
    if not os.path.exists(swaks):
        pytest.skip("swaks not installed (apt-get install swaks)")
    _, port = start_smtpd(tree, tmp_path)
    result = support.run([swaks, "--server", "127.0.0.1", "--port", str(port), "--from", "a@b.example",
                          "--to", DEMO, "--helo", "swaks.example", "--pipeline", "--timeout", "10",
                          "--body", "swaks body"], timeout=30)
    out = result.stdout.decode()
    assert result.returncode == 0, out
    assert "<-  220 mx.example.org ESMTP" in out
    assert "<-  250-PIPELINING" in out and "<-  250 8BITMIME" in out
    assert "<-  354 go ahead" in out and "<-  221 mx.example.org" in out
    assert any(OK_QP.match((line[4:] + "\r\n").encode()) for line in out.splitlines()
               if line.startswith("<-  250 ok "))
    assert len(queued(tree)) == 1


def test_starttls_then_auth_plain_grants_relaying(tree, tmp_path, certificate):
    (tree / "control" / "servercert.pem").write_bytes(certificate)
    _, port = start_smtpd(tree, tmp_path, args=checkpassword(tmp_path))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("client")
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
        assert smtp.docmd("AUTH", "PLAIN") == (503, b"auth not available (#5.3.3)")
        assert smtp.starttls(context=client_context())[0] == 220
        smtp.ehlo("client")
        assert not smtp.has_extn("starttls")
        assert smtp.ehlo_resp.endswith(b"\nAUTH LOGIN PLAIN\nAUTH=LOGIN PLAIN")
        assert smtp.sock.version() in ("TLSv1.2", "TLSv1.3")
        smtp.user, smtp.password = USER, PASSWORD
        assert smtp.auth("PLAIN", smtp.auth_plain) == (235, b"ok, go ahead (#2.0.0)")
        assert smtp.docmd("AUTH", "PLAIN") == (503, b"you're already authenticated (#5.5.0)")
        assert smtp.send_message(message("x@foreign.example")) == {}
    mess = queued(tree)[0][0]
    assert b"Received: from unknown (HELO client) (joe@127.0.0.1)\n" in mess
    assert b" encrypted) SMTP; " in mess


def test_auth_login_and_wrong_password(tree, tmp_path, certificate):
    (tree / "control" / "servercert.pem").write_bytes(certificate)
    _, port = start_smtpd(tree, tmp_path, args=checkpassword(tmp_path))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.starttls(context=client_context())
        smtp.ehlo("client")
        smtp.user, smtp.password = USER, "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
        assert failed.value.smtp_code == 535 and failed.value.smtp_error == b"authorization failed (#5.7.0)"
        smtp.mail("a@b")
        assert smtp.rcpt("x@foreign.example")[0] == 553  # no relaying after a failure
        smtp.rset()
        smtp.password = PASSWORD
        assert smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)[0] == 235


def test_auth_in_cleartext_when_forcetls_is_0_and_cram_md5(tree, tmp_path):
    _, port = start_smtpd(tree, tmp_path, args=checkpassword(tmp_path), FORCETLS="0", SMTPAUTH_CRAM="1")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("client")
        assert smtp.ehlo_resp.endswith(b"\nAUTH LOGIN PLAIN CRAM-MD5\nAUTH=LOGIN PLAIN CRAM-MD5")
        assert smtp.login(USER, PASSWORD)[0] == 235  # smtplib prefers CRAM-MD5
        assert smtp.send_message(message("x@foreign.example")) == {}


@pytest.mark.parametrize("dialogue, reply", [
    ([b"AUTH PLAIN !!!"], b"501 malformed auth input (#5.5.4)"),
    ([b"AUTH PLAIN", b"*"], b"501 auth exchange cancelled (#5.0.0)"),
    ([b"AUTH KERBEROS_V4"], b"504 auth type unimplemented (#5.5.1)"),
    ([b"AUTH PLAIN " + base64.b64encode(b"\0tempfail\0x")], b"454 temporary authentication failure (#4.3.0)"),
    ([b"MAIL FROM:<a@b>", b"AUTH PLAIN"], b"503 no auth during mail transaction (#5.5.0)"),
])
def test_auth_error_replies(tree, tmp_path, dialogue, reply):
    _, port = start_smtpd(tree, tmp_path, args=checkpassword(tmp_path), FORCETLS="0")
    with support.connect(port) as s:
        s.sendall(b"".join(line + b"\r\n" for line in dialogue) + b"QUIT\r\n")
        lines = support.recv_all(s).split(b"\r\n")
    assert reply in lines


def test_tls_handshake_garbage_ends_the_session_and_the_server_goes_on(tree, tmp_path, certificate):
    (tree / "control" / "servercert.pem").write_bytes(certificate)
    _, port = start_smtpd(tree, tmp_path)
    with support.connect(port) as s:
        s.sendall(b"EHLO x\r\nSTARTTLS\r\n")
        time.sleep(0.3)
        s.sendall(b"\x16\x03\x01\x00\x04abcd")  # a complete record that is no ClientHello
        data = support.recv_all(s, timeout=10)
    before, _, after = data.partition(b"220 ready for tls\r\n")
    assert before.endswith(b"250 STARTTLS\r\n")
    assert after == b"" or after[:1] == b"\x15"  # nothing, or a TLS alert record, then the end
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        assert smtp.noop()[0] == 250


def test_starttls_drops_plaintext_pipelined_after_it(tree, tmp_path, certificate):
    (tree / "control" / "servercert.pem").write_bytes(certificate)
    _, port = start_smtpd(tree, tmp_path)
    raw = support.connect(port)
    raw.sendall(b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<injected@x>\r\n")
    buf = b""
    while b"220 ready for tls\r\n" not in buf:
        buf += raw.recv(4096)
    tls = client_context().wrap_socket(raw)
    tls.sendall(b"RCPT TO:<demo@mx.example.org>\r\nQUIT\r\n")
    answer = support.recv_all(tls)
    assert answer.startswith(b"503 MAIL first (#5.5.1)\r\n")


def test_early_talker_is_refused_with_greetdelay(tree, tmp_path):
    _, port = start_smtpd(tree, tmp_path, GREETDELAY="2")
    with support.connect(port) as s:
        s.sendall(b"EHLO impatient\r\n")
        data = support.recv_all(s, timeout=10)
    assert data == b"554 sorry, SMTP protocol violation: talking before the greeting (#5.5.1)\r\n"
    start = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        assert smtp.noop()[0] == 250
    assert time.monotonic() - start >= 1.9


def test_thousands_of_pipelined_recipients(tree, tmp_path):
    _, port = start_smtpd(tree, tmp_path)
    n = 3000
    with support.connect(port, timeout=30) as s:
        s.sendall(b"EHLO x\r\nMAIL FROM:<a@b>\r\n"
                  + b"".join(b"RCPT TO:<demo-%d@mx.example.org>\r\n" % i for i in range(n))
                  + b"DATA\r\n")
        buf = b""
        while b"354 go ahead\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk
            buf += chunk
        s.sendall(b"hi\r\n.\r\nQUIT\r\n")
        buf += support.recv_all(s, timeout=30)
    assert buf.count(b"250 ok\r\n") == n + 1
    [(_, env)] = queued(tree)
    assert env.count(b"\0T") == n


def test_client_gone_after_final_dot_still_queues_once(tree, tmp_path):
    _, port = start_smtpd(tree, tmp_path)
    with support.connect(port) as s:
        s.sendall(b"MAIL FROM:<a@b>\r\nRCPT TO:<demo@mx.example.org>\r\nDATA\r\nbody\r\n.\r\n")
        s.shutdown(socket.SHUT_WR)
        s.close()
    support.wait_for(lambda: len(queued(tree)) == 1 and queued(tree)[0][1], what="the message in the queue")
    time.sleep(0.3)
    assert len(queued(tree)) == 1


def test_disconnect_in_the_middle_of_data_queues_nothing(tree, tmp_path):
    proc, port = start_smtpd(tree, tmp_path)
    with support.connect(port) as s:
        s.sendall(b"MAIL FROM:<a@b>\r\nRCPT TO:<demo@mx.example.org>\r\nDATA\r\n")
        time.sleep(0.2)
        s.sendall(b"half a message\r\nwithout the end")
    time.sleep(0.5)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:  # server still serves
        assert smtp.noop()[0] == 250
    # qmail-queue may still be cleaning up its half-written file: wait for the final state
    support.wait_for(lambda: queued(tree) == [], what="no message in the queue")
    assert not any(p.is_file() for p in (tree / "queue" / "todo").rglob("*"))


def test_garbage_gets_502_and_the_session_survives(tree, tmp_path):
    _, port = start_smtpd(tree, tmp_path)
    garbage = bytes(range(256)).replace(b"\n", b"") * 40
    with support.connect(port) as s:
        s.sendall(garbage + b"\r\n\x00\xff\xfe\r\nNOOP\r\nQUIT\r\n")
        lines = support.recv_all(s).split(b"\r\n")
    assert lines[1:5] == [b"502 unimplemented (#5.5.1)", b"502 unimplemented (#5.5.1)", b"250 ok",
                          b"221 mx.example.org"]


def test_swaks_starttls_and_auth_login_relay(tree, tmp_path, certificate):
    swaks = "/usr/bin/swaks"
    if not os.path.exists(swaks):
        pytest.skip("swaks not installed (apt-get install swaks)")
    (tree / "control" / "servercert.pem").write_bytes(certificate)
    _, port = start_smtpd(tree, tmp_path, args=checkpassword(tmp_path))
    result = support.run([swaks, "--server", "127.0.0.1", "--port", str(port), "--from", "a@b.example",
                          "--to", "x@foreign.example", "--tls", "--auth", "LOGIN", "--auth-user", USER,
                          "--auth-password", PASSWORD, "--timeout", "10"], timeout=30)
    out = result.stdout.decode()
    assert result.returncode == 0, out
    assert "<-  220 ready for tls" in out and "<~  250-AUTH LOGIN PLAIN" in out
    assert "<~  334 VXNlcm5hbWU6" in out and "<~  334 UGFzc3dvcmQ6" in out
    assert "<~  235 ok, go ahead (#2.0.0)" in out
    assert queued(tree)[0][1].endswith(b"Tx@foreign.example\0")


def test_ipv6_client_address_in_received_line(tree, tmp_path):
    env = smtpd_env(tree, TCPREMOTEIP=None, TCPLOCALIP=None)
    try:
        proc, port = start_tcpserver(["-RHl0"], [support.prog("qmail-smtpd")], env=env, host="::1")
    except AssertionError:
        pytest.skip("no IPv6 loopback here")
    with smtplib.SMTP("::1", port, timeout=10) as smtp:
        assert smtp.send_message(message()) == {}
    assert b"Received: from unknown (HELO " in queued(tree)[0][0]
    assert b") (::1)\n  by 0 with SMTP; " in queued(tree)[0][0]
