"""qmail-remote: the SMTP client qmail-rspawn runs, against a scripted SMTP server on
127.0.0.1 reached through control/smtproutes (no DNS query is made)."""

import socket
import threading

import pytest
from hypothesis import given, strategies as st

from qmail.remote import qmail_remote
from tests import support
from tests.dns_server import DNSServer
from tests.qmail_trees import embedded_tree

OK_SCRIPT = {"": b"220 sink ESMTP\r\n", "HELO": b"250 hi\r\n", "MAIL": b"250 ok\r\n",
             "RCPT": b"250 ok\r\n", "DATA": b"354 go\r\n", ".": b"250 ok 42\r\n",
             "QUIT": b"221 bye\r\n"}


class Sink:
    """One SMTP connection answered from a script: {verb: reply}; RCPT replies may be a
    list (one per RCPT). transcript: every line received, CRLF kept."""

    def __init__(self, script, host="127.0.0.1", port=0):
        self.script = dict(script)
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, port))
        self.server.listen(1)
        self.server.settimeout(10)
        self.port = self.server.getsockname()[1]
        self.transcript: list[bytes] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def reply(self, conn, verb):
        answer = self.script.get(verb)
        if isinstance(answer, list):
            answer = answer.pop(0)
        if answer is None:
            conn.close()
            raise ConnectionError
        conn.sendall(answer)

    def serve(self):
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        conn.settimeout(10)
        buf = b""
        in_data = False
        try:
            self.reply(conn, "")
            while True:
                while b"\r\n" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\r\n", 1)
                self.transcript.append(line + b"\r\n")
                if in_data:
                    if line == b".":
                        in_data = False
                        self.reply(conn, ".")
                    continue
                verb = line.split(b" ")[0].split(b":")[0].decode()
                self.reply(conn, verb)
                if verb == "DATA" and self.script["DATA"].startswith(b"354"):
                    in_data = True
                if verb == "QUIT":
                    return
        except (OSError, ConnectionError):
            return
        finally:
            conn.close()
            self.server.close()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return embedded_tree(tmp_path_factory.mktemp("remote"), fqdn="me.example")


def _route(root, port, domain="remote.example"):
    with open(f"{root}/control/smtproutes", "w") as f:
        f.write(f"{domain}:[127.0.0.1]:{port}\n")


def _remote(root, *args, message=b"Subject: x\n\nhello\n.dot line\n"):
    env = support.suite_env(QMAIL_ROOT=root, DNSCACHEIP="127.0.0.254")
    return support.run([support.prog("qmail-remote"), *args], input=message, env=env, timeout=30)


def test_delivers_with_qmails_dialogue_and_reports_success(root):
    sink = Sink(OK_SCRIPT)
    _route(root, sink.port)
    done = _remote(root, "remote.example", "me@me.example", "you@remote.example", "two@remote.example")
    sink.thread.join(10)
    assert done.returncode == 0
    assert done.stdout == (b"r\0r\0K127.0.0.1 accepted message.\n"
                           b"Remote host said: 250 ok 42\n\0")
    assert sink.transcript == [
        b"HELO me.example\r\n", b"MAIL FROM:<me@me.example>\r\n",
        b"RCPT TO:<you@remote.example>\r\n", b"RCPT TO:<two@remote.example>\r\n",
        b"DATA\r\n", b"Subject: x\r\n", b"\r\n", b"hello\r\n", b"..dot line\r\n", b".\r\n",
        b"QUIT\r\n"]


def test_each_recipient_gets_its_own_verdict(root):
    sink = Sink(dict(OK_SCRIPT, RCPT=[b"550 no such user\r\n", b"451 later\r\n", b"250 ok\r\n"]))
    _route(root, sink.port)
    done = _remote(root, "remote.example", "", "a@remote.example", "b@remote.example", "c@remote.example")
    assert done.stdout == (
        b"h127.0.0.1 does not like recipient.\nRemote host said: 550 no such user\n\0"
        b"s127.0.0.1 does not like recipient.\nRemote host said: 451 later\n\0"
        b"r\0"
        b"K127.0.0.1 accepted message.\nRemote host said: 250 ok 42\n\0")
    sink.thread.join(10)
    assert b"MAIL FROM:<>\r\n" in sink.transcript


def test_no_recipient_accepted_gives_up(root):
    sink = Sink(dict(OK_SCRIPT, RCPT=b"553 relaying denied\r\n"))
    _route(root, sink.port)
    done = _remote(root, "remote.example", "a@me.example", "x@remote.example")
    assert done.stdout == (b"h127.0.0.1 does not like recipient.\n"
                           b"Remote host said: 553 relaying denied\n\0"
                           b"DGiving up on 127.0.0.1.\n\0")


@pytest.mark.parametrize("script, expected", [
    ({"": b"421 busy\r\n"}, b"ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 421 busy\n\0"),
    ({"HELO": b"501 who?\r\n"}, b"ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 501 who?\n\0"),
    ({"MAIL": b"553 bad sender\r\n"}, b"DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 553 bad sender\n\0"),
    ({"MAIL": b"451 try later\r\n"}, b"ZConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 451 try later\n\0"),
    ({"DATA": b"554 no data\r\n"}, b"r\0D127.0.0.1 failed on DATA command.\nRemote host said: 554 no data\n\0"),
    ({".": b"452 full\r\n"}, b"r\0Z127.0.0.1 failed after I sent the message.\nRemote host said: 452 full\n\0"),
    ({".": b"552 too big\r\n"}, b"r\0D127.0.0.1 failed after I sent the message.\nRemote host said: 552 too big\n\0"),
    ({"": b"220-first\r\n220-second\r\n220 last\r\n"},
     b"r\0K127.0.0.1 accepted message.\nRemote host said: 250 ok 42\n\0"),
])
def test_smtp_replies_become_qmails_reports(root, script, expected):
    sink = Sink(dict(OK_SCRIPT, **script))
    _route(root, sink.port)
    done = _remote(root, "remote.example", "a@me.example", "x@remote.example")
    assert done.stdout == expected


def test_connection_dying_after_the_message_warns_of_a_duplicate(root):
    sink = Sink(dict(OK_SCRIPT, **{".": None}))
    _route(root, sink.port)
    done = _remote(root, "remote.example", "a@me.example", "x@remote.example")
    assert done.stdout == (b"r\0ZConnected to 127.0.0.1 but connection died. "
                           b"Possible duplicate! (#4.4.2)\n\0")


def test_no_server_is_a_temporary_failure(root):
    port = support.free_port()
    _route(root, port)
    done = _remote(root, "remote.example", "a@me.example", "x@remote.example")
    assert done.stdout == b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\0"


def test_partial_final_line_is_refused(root):
    sink = Sink(OK_SCRIPT)
    _route(root, sink.port)
    done = _remote(root, "remote.example", "a@me.example", "x@remote.example", message=b"no newline")
    assert done.stdout == b"r\0DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n\0"


def test_usage(root):
    done = _remote(root, "remote.example", "a@me.example")
    assert done.stdout == b"DI (qmail-remote) was invoked improperly. (#5.3.5)\n\0"
    assert done.returncode == 0


def test_route_by_suffix_and_literal_host(root):
    sink = Sink(OK_SCRIPT)
    _route(root, sink.port, domain=".example.net")
    done = _remote(root, "mx.example.net", "a@me.example", "x@mx.example.net")
    assert done.stdout.endswith(b"K127.0.0.1 accepted message.\nRemote host said: 250 ok 42\n\0")


@pytest.mark.parametrize("routes, host, expected", [
    (["a.example:relay.example"], "a.example", "relay.example"),
    (["A.Example:relay.example"], "a.EXAMPLE", "relay.example"),
    ([".example:dot"], "a.example", "dot"),
    ([".example:dot"], "example", None),
    ([":smarthost:2525"], "anything.org", "smarthost:2525"),
    (["a.example:", ":smarthost"], "a.example", None),  # empty relay: use MX
    (["a.example:one", "a.example:two"], "a.example", "two"),
    (["no-colon"], "no-colon", None),
])
def test_find_route(routes, host, expected):
    assert qmail_remote.find_route(routes, host) == expected


def test_mangle_quotes_the_box():
    assert qmail_remote.mangle(b"joe@x.org") == b"joe@x.org"
    assert qmail_remote.mangle(b"joe smith@x.org") == b'"joe smith"@x.org'
    assert qmail_remote.mangle(b"") == b""


@given(st.lists(st.text(alphabet="ab.:-", max_size=10), max_size=5), st.text(alphabet="ab.-", max_size=10))
def test_find_route_never_fails(routes, host):
    relay = qmail_remote.find_route(routes, host)
    assert relay is None or relay != ""


def _no_routes(root):
    with open(f"{root}/control/smtproutes", "w"):
        pass


def _dns(zone):
    import os
    if os.geteuid() != 0:
        pytest.skip("the DNS responder needs port 53 (root)")
    return DNSServer(zone).start()


def test_mx_records_are_followed(root):
    _no_routes(root)
    dns = _dns({("mx.test", "MX"): ["20 backup.mx.test.", "10 primary.mx.test."],
                ("primary.mx.test", "A"): ["127.0.0.2"], ("backup.mx.test", "A"): ["127.0.0.3"]})
    try:
        sink = Sink(OK_SCRIPT, host="127.0.0.2", port=25)
    except OSError:
        dns.stop()
        pytest.skip("127.0.0.2:25 is busy")
    try:
        env = support.suite_env(QMAIL_ROOT=root, DNSCACHEIP=dns.ip)
        done = support.run([support.prog("qmail-remote"), "mx.test", "a@me.example", "x@mx.test"],
                           input=b"hi\n", env=env, timeout=30)
        assert done.stdout == b"r\0K127.0.0.2 accepted message.\nRemote host said: 250 ok 42\n\0"
        assert ("mx.test", "MX") in dns.queries
    finally:
        dns.stop()


def test_host_without_mx_gets_its_a_record_and_errors_are_qmails(root):
    _no_routes(root)
    dns = _dns({("plain.test", "A"): ["127.0.0.1"], ("me.test", "MX"): ["0 lo.test."],
                ("lo.test", "A"): ["127.0.0.1"]})
    dns.rcodes["broken.test"] = __import__("dns.rcode").rcode.SERVFAIL
    try:
        env = support.suite_env(QMAIL_ROOT=root, DNSCACHEIP=dns.ip)

        def remote(host):
            return support.run([support.prog("qmail-remote"), host, "a@me.example", f"x@{host}"],
                               input=b"hi\n", env=env, timeout=60).stdout

        assert remote("nx.test") == b"DSorry, I couldn't find any host named nx.test. (#5.1.2)\n\0"
        assert remote("broken.test") == b"ZSorry, I couldn't find any host by that name. (#4.1.2)\n\0"
        ambiguous = (b"DSorry. Although I'm listed as a best-preference MX or A for that host,\n"
                     b"it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n\0")
        assert remote("me.test") == ambiguous
        assert remote("plain.test") == ambiguous  # its A record is this host
        assert ("plain.test", "A") in dns.queries
    finally:
        dns.stop()
