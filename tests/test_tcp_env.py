"""tcp-env: the tcp-environ(5) variables for a program run on a TCP connection (inetd)."""

import socket

import pytest

from tests import identd, support
from tests.dns_server import DNSServer

SHOW = ["/bin/sh", "-c", 'for v in PROTO TCPLOCALIP TCPLOCALPORT TCPLOCALHOST TCPREMOTEIP '
        'TCPREMOTEPORT TCPREMOTEHOST TCPREMOTEINFO; do eval "echo $v=\\${$v-unset}"; done']


@pytest.fixture
def connection():
    """(server side, client side) of a TCP connection from 127.0.0.1 to 127.0.0.7."""
    listener = socket.socket()
    listener.bind(("127.0.0.7", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname(), timeout=5, source_address=("127.0.0.1", 0))
    server, _ = listener.accept()
    listener.close()
    yield server, client
    server.close()
    client.close()


def tcp_env(args, stdin, **env):
    done = support.run([support.prog("tcp-env"), *args], stdin=stdin, env=support.suite_env(**env))
    return done.returncode, dict(line.split("=", 1) for line in done.stdout.decode().splitlines())


def test_variables_from_the_socket_and_dns(connection):
    server, client = connection
    zone = {("1.0.0.127.in-addr.arpa", "PTR"): ["Client.Example."],
            ("7.0.0.127.in-addr.arpa", "PTR"): ["server.example."]}
    with DNSServer(zone) as dns:
        code, env = tcp_env(["-R", *SHOW], server, DNSCACHEIP=dns.ip, PROTO=None,
                            TCPREMOTEINFO="stale")
    assert code == 0
    assert env == {
        "PROTO": "TCP", "TCPLOCALIP": "127.0.0.7", "TCPLOCALPORT": str(server.getsockname()[1]),
        "TCPLOCALHOST": "server.example", "TCPREMOTEIP": "127.0.0.1",
        "TCPREMOTEPORT": str(client.getsockname()[1]), "TCPREMOTEHOST": "client.example",
        "TCPREMOTEINFO": "unset"}


def test_names_absent_or_dns_in_trouble(connection):
    server, _ = connection
    with DNSServer({}) as dns:
        dns.rcodes["7.0.0.127.in-addr.arpa"] = 2  # SERVFAIL
        code, env = tcp_env(["-R", *SHOW], server, DNSCACHEIP=dns.ip, TCPREMOTEHOST="stale")
    assert (env["TCPLOCALHOST"], env["TCPREMOTEHOST"]) == ("softdnserror", "unset")


def test_remote_info_from_ident(connection):
    identd.need_root()
    server, _ = connection
    with DNSServer({}) as dns, identd.FakeIdentd(identd.good("alice"), host="127.0.0.1"):
        code, env = tcp_env(["-t5", *SHOW], server, DNSCACHEIP=dns.ip)
    assert env["TCPREMOTEINFO"] == "alice"


def test_existing_tcp_environment_is_kept(connection):
    server, _ = connection
    code, env = tcp_env(SHOW, server, PROTO="TCP", TCPREMOTEIP="10.1.1.1", TCPLOCALIP=None)
    assert (env["TCPREMOTEIP"], env["TCPLOCALIP"]) == ("10.1.1.1", "unset")


def test_not_a_socket_or_no_program_exits_111(tmp_path):
    done = support.run([support.prog("tcp-env"), "-R", "true"], env=support.suite_env(PROTO=None))
    assert (done.returncode, done.stdout, done.stderr) == (111, b"", b"")
    done = support.run([support.prog("tcp-env")], env=support.suite_env(PROTO="TCP"))
    assert (done.returncode, done.stderr) == (111, b"")
    done = support.run([support.prog("tcp-env"), "/nonexistent"], env=support.suite_env(PROTO="TCP"))
    assert (done.returncode, done.stderr) == (111, b"")


def test_program_exit_code_passes_through():
    done = support.run([support.prog("tcp-env"), "sh", "-c", "exit 5"], env=support.suite_env(PROTO="TCP"))
    assert done.returncode == 5
