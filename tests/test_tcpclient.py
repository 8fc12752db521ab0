"""tcpclient: options, environment, descriptors 6/7, messages and exit codes, side by side
with the C tcpclient (ucspi-tcp 0.88) against the C tcpserver and Python servers."""

import os
import select
import socket
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, strategies as st

from tests import identd, support
from ucspi import tcpclient

BASE_ENV = {"PATH": "/usr/bin:/bin"}
DUMP_ENV = ["sh", "-c", "env"]
FAKE_DNS = "127.0.0.77"


def ours() -> str:
    return support.prog("tcpclient")


def theirs() -> str:
    return support.c_tool("tcpclient")


def run(tool: str, *args, env=None, timeout=30):
    return support.run([tool, *args], env=dict(BASE_ENV, **(env or {})), timeout=timeout)


def both(*args, env=None):
    """The same command line run by ours and by the C tcpclient."""
    c = theirs()
    return run(ours(), *args, env=env), run(c, *args, env=env)


def env_of(result) -> dict:
    return dict(line.split("=", 1) for line in result.stdout.decode().splitlines() if "=" in line)


def masked(env: dict) -> dict:
    """The environment with what differs between two connections (the client port)."""
    return {k: ("PORT" if k == "TCPLOCALPORT" else v) for k, v in env.items()}


class Server:
    """A Python TCP server thread: sends greeting to each client, keeps what it receives."""

    def __init__(self, host="127.0.0.1", port=0, greeting=b"", backlog=16):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(backlog)
        self.port = self.listener.getsockname()[1]
        self.greeting = greeting
        self.received: list[bytes] = []
        self.peers: list[tuple] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(10)
        self.listener.close()

    def _serve(self):
        while not self.stopping.is_set():
            if not select.select([self.listener], [], [], 0.05)[0]:
                continue
            conn, peer = self.listener.accept()
            self.peers.append(peer)
            conn.settimeout(5)
            try:
                conn.sendall(self.greeting)
                self.received.append(support.recv_all(conn, timeout=5))
            except OSError:
                pass
            conn.close()


class FakeDNS:
    """An in-process DNS server on FAKE_DNS:53 answering from {(name, type): [data]}."""

    def __init__(self, records):
        self.records = {(n.lower().rstrip(".") + ".", t): v for (n, t), v in records.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((FAKE_DNS, 53))
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(10)
        self.sock.close()

    def _serve(self):
        while not self.stopping.is_set():
            if not select.select([self.sock], [], [], 0.05)[0]:
                continue
            data, peer = self.sock.recvfrom(4096)
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.RA
            question = query.question[0]
            key = (question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype))
            if key in self.records:
                reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", key[1],
                                                        *self.records[key]))
            elif not any(name == key[0] for name, _ in self.records):
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), peer)


def stuck_listener(host: str, port: int = 0) -> tuple[socket.socket, socket.socket]:
    """A listener whose accept queue is full: further connection attempts hang."""
    listener = socket.socket()
    listener.bind((host, port))
    listener.listen(0)
    filler = socket.socket()
    filler.connect(listener.getsockname())
    return listener, filler


# ---- parsers

@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=4, max_size=4),
       st.text(alphabet="x.:/ ", max_size=5))
def test_ip4_scan_reads_a_dotted_quad_modulo_256_ignoring_what_follows(parts, tail):
    text = ".".join(map(str, parts))
    assert tcpclient.ip4_scan(text + tail) == (".".join(str(p % 256) for p in parts), len(text))


@pytest.mark.parametrize("text", ["", "1.2.3", "a.b.c.d", "1..2.3", ".1.2.3.4", "1.2.3."])
def test_ip4_scan_rejects_incomplete_quads(text):
    assert tcpclient.ip4_scan(text) is None


@pytest.mark.parametrize("host,ips", [
    ("127.0.0.1", ["127.0.0.1"]),
    ("[127.0.0.1]", ["127.0.0.1"]),
    ("127.0.0.1.", ["127.0.0.1"]),
    ("1.2.3", []),
    ("127.0.0.2.127.0.0.3", ["127.0.0.2", "127.0.0.3"]),
    ("::1", ["::1"]),
    ("0:0::1", ["::1"]),
    ("::ffff:127.0.0.1", ["127.0.0.1"]),
    ("example.com", None),
    ("1.2.3.x", None),
])
def test_literal_hosts_need_no_dns(host, ips):
    assert tcpclient.literal_ips(host) == ips


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9))
def test_timeoutconn_option_reads_x_plus_y(x, y):
    assert tcpclient.parse_timeouts(f"{x}+{y}") == (x, y)
    assert tcpclient.parse_timeouts(f"{x}") == (x, 0)


@given(st.integers(min_value=0, max_value=10**12))
def test_numeric_port_is_taken_modulo_65536(n):
    assert tcpclient.parse_port(str(n)) == n % 65536


def test_port_names_come_from_etc_services():
    assert tcpclient.parse_port("tcpmux") == 1
    assert tcpclient.parse_port("") == 0
    assert tcpclient.parse_port("no-such-service-here") is None


# ---- usage and failures, compared with the C tool

@pytest.mark.parametrize("args", [
    [], ["-q"], ["-Z"], ["-q", "-Z"], ["0"], ["0", "25"], ["-i", "bad", "0", "25", "true"],
    ["-t"], ["-T"],
])
def test_bad_usage_exits_100_with_the_c_usage_line(args):
    mine, c = both(*args)
    assert (mine.returncode, mine.stderr, mine.stdout) == (c.returncode, c.stderr, c.stdout)
    assert mine.returncode == 100


def test_connection_refused_message_and_exit_code_as_c():
    port = support.free_port()
    for args in (["0", str(port), "true"], ["-q", "0", str(port), "true"],
                 ["-v", "127.0.0.1", str(port), "true"]):
        mine, c = both(*args)
        assert (mine.returncode, mine.stderr) == (c.returncode, c.stderr)
        assert mine.returncode == 111
    assert mine.stderr == f"tcpclient: unable to connect to 127.0.0.1 port {port}: connection refused\n".encode()


def test_service_name_is_looked_up_in_etc_services():
    mine, c = both("0", "tcpmux", "true")
    assert (mine.returncode, mine.stderr) == (c.returncode, c.stderr)
    assert b"port 1: connection refused" in mine.stderr


def test_unknown_service_name_is_fatal_as_c():
    mine, c = both("0", "no-such-service-here", "true")
    assert (mine.returncode, mine.stderr) == (c.returncode, c.stderr)
    assert mine.stderr == b"tcpclient: fatal: unable to figure out port number for no-such-service-here\n"


def test_host_without_address_is_fatal_as_c():
    mine, c = both("1.2.3", "25", "true")
    assert (mine.returncode, mine.stderr) == (c.returncode, c.stderr)
    assert mine.stderr == b"tcpclient: fatal: no IP address for 1.2.3\n"


def test_every_address_is_tried_in_turn():
    with Server(greeting=b"hi\n") as server:
        for tool in (ours(), theirs()):
            result = run(tool, "-RHl0", "127.0.0.2.127.0.0.1", str(server.port),
                         "sh", "-c", "head -1 <&6")
            assert result.returncode == 0
            assert result.stdout == b"hi\n"
            assert result.stderr == (f"tcpclient: unable to connect to 127.0.0.2 port "
                                     f"{server.port}: connection refused\n").encode()


def test_connection_timeout_message_and_exit_code_as_c():
    listener, filler = stuck_listener("127.0.0.3")
    port = listener.getsockname()[1]
    try:
        for tool in (ours(), theirs()):
            start = time.monotonic()
            result = run(tool, "-T1", "-RHl0", "127.0.0.3", str(port), "true")
            took = time.monotonic() - start
            assert result.returncode == 111
            assert result.stderr == f"tcpclient: unable to connect to 127.0.0.3 port {port}: timed out\n".encode()
            assert 0.9 < took < 5
    finally:
        filler.close()
        listener.close()


def test_timed_out_address_is_retried_after_the_others():
    # -T1+1 over (stuck, refused): the refusal is reported at once, the timeout only
    # after the second try.
    listener, filler = stuck_listener("127.0.0.3")
    port = listener.getsockname()[1]
    try:
        outputs = []
        for tool in (ours(), theirs()):
            start = time.monotonic()
            result = run(tool, "-T1+1", "-RHl0", "127.0.0.3.127.0.0.2", str(port), "true")
            outputs.append((result.returncode, result.stderr))
            assert 1.8 < time.monotonic() - start < 6
        assert outputs[0] == outputs[1]
        assert outputs[0] == (111, (
            f"tcpclient: unable to connect to 127.0.0.2 port {port}: connection refused\n"
            f"tcpclient: unable to connect to 127.0.0.3 port {port}: timed out\n").encode())
    finally:
        filler.close()
        listener.close()


def test_unable_to_run_program_as_c():
    with Server() as server:
        mine, c = both("-RHl0", "0", str(server.port), "/nonexistent/program")
    assert (mine.returncode, mine.stderr) == (c.returncode, c.stderr)
    assert mine.stderr == b"tcpclient: fatal: unable to run /nonexistent/program: file does not exist\n"


def test_local_port_in_use_is_fatal_as_c():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    with Server() as server:
        args = ("-RHl0", "-i", "127.0.0.1", "-p", str(busy.getsockname()[1]), "0",
                str(server.port), "true")
        mine, c = both(*args)
    busy.close()
    assert (mine.returncode, mine.stderr) == (c.returncode, c.stderr)
    assert mine.stderr == b"tcpclient: fatal: unable to bind socket: address already used\n"


# ---- the connection and the program's environment

def test_environment_as_c_tcpclient_gives_against_c_tcpserver():
    port = support.free_port()
    with support.Proc([support.c_tool("tcpserver"), "-RHl0", "127.0.0.1", port, "sh", "-c",
                       "echo hello"], env=BASE_ENV):
        support.wait_port(port)
        mine, c = both("-RHl0", "127.0.0.1", str(port), *DUMP_ENV)
    assert mine.returncode == c.returncode == 0
    assert masked(env_of(mine)) == masked(env_of(c))
    assert env_of(mine)["TCPREMOTEPORT"] == str(port)
    assert env_of(mine)["PROTO"] == "TCP"
    assert env_of(mine)["TCPLOCALHOST"] == "0"
    assert "TCPREMOTEHOST" not in env_of(mine) and "TCPREMOTEINFO" not in env_of(mine)


def test_stale_connection_variables_are_removed_as_c_does():
    stale = {"TCPREMOTEHOST": "stale", "TCPREMOTEINFO": "stale", "TCPLOCALHOST": "stale"}
    with Server() as server:
        mine, c = both("-RH", "-l", "me.example", "0", str(server.port), *DUMP_ENV, env=stale)
    assert masked(env_of(mine)) == masked(env_of(c))
    assert env_of(mine)["TCPLOCALHOST"] == "me.example"
    assert "TCPREMOTEHOST" not in env_of(mine) and "TCPREMOTEINFO" not in env_of(mine)


def test_program_reads_network_on_6_and_writes_on_7():
    with Server(greeting=b"hello\n") as server:
        result = run(ours(), "-RHl0", "0", str(server.port), "sh", "-c",
                     'read line <&6; echo "got $line" >&7; echo done')
    assert result.returncode == 0 and result.stdout == b"done\n"
    assert server.received == [b"got hello\n"]


def test_only_descriptors_0_1_2_6_7_reach_the_program():
    with Server() as server:
        result = run(ours(), "-RHl0", "0", str(server.port), "sh", "-c",
                     "ls /proc/self/fd")
    fds = sorted(int(x) for x in result.stdout.split())
    # ls itself opens one descriptor to list the directory
    assert [fd for fd in fds if fd not in (0, 1, 2, 6, 7)] in ([], [3])
    assert 6 in fds and 7 in fds


def test_program_exit_status_is_passed_on():
    with Server() as server:
        result = run(ours(), "-RHl0", "0", str(server.port), "sh", "-c", "exit 42")
    assert result.returncode == 42


def test_verbose_reports_the_connection_as_c():
    with Server() as server:
        mine, c = both("-vRHl0", "0", str(server.port), "true")
    assert mine.stderr == c.stderr == f"tcpclient: connected to 127.0.0.1 port {server.port}\n".encode()


def test_local_ip_and_port_options_as_c():
    with Server() as server:
        results = []
        for tool in (ours(), theirs()):
            local_port = support.free_port()
            result = run(tool, "-RHl0", "-i", "127.0.0.1", "-p", str(local_port), "127.0.0.1",
                         str(server.port), *DUMP_ENV)
            env = env_of(result)
            assert env["TCPLOCALPORT"] == str(local_port)
            assert env["TCPLOCALIP"] == "127.0.0.1"
            results.append(masked(env))
        assert server.peers[0][0] == server.peers[1][0] == "127.0.0.1"
    assert results[0] == results[1]


@pytest.mark.parametrize("option,expected", [("-D", "1"), ("-d", "0"), (None, "0")])
def test_nodelay_option_as_c(option, expected):
    probe = ["python3", "-c", "import socket; s = socket.socket(fileno=6); "
             "print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) and 1)"]
    with Server() as server:
        args = [a for a in (option, "-RHl0", "0", str(server.port)) if a] + probe
        mine, c = both(*args)
    assert mine.stdout == c.stdout == f"{expected}\n".encode()


def test_ipv6_connection_has_ucspi_tcp6_environment():
    with Server(host="::1") as server:
        result = run(ours(), "-RHl0", "::1", str(server.port), *DUMP_ENV)
    env = env_of(result)
    assert result.returncode == 0
    assert env["PROTO"] == "TCP6"
    assert env["TCPLOCALIP"] == env["TCPREMOTEIP"] == "::1"
    assert env["TCP6LOCALIP"] == env["TCP6REMOTEIP"] == "::1"
    assert env["TCPREMOTEPORT"] == env["TCP6REMOTEPORT"] == str(server.port)
    assert env["TCP6LOCALPORT"] == env["TCPLOCALPORT"]
    assert env["TCPLOCALHOST"] == env["TCP6LOCALHOST"] == "0"
    assert "TCP6INTERFACE" not in env and "TCPREMOTEHOST" not in env
    assert "TCP6REMOTEINFO" not in env and "TCP6REMOTEHOST" not in env


def test_ipv6_remote_info_from_identd_on_ipv6():
    identd.need_root()
    with Server(host="::1") as server, identd.FakeIdentd(identd.good("dave"), host="::1") as fake:
        result = run(ours(), "-Hl0", "-t", "3", "::1", str(server.port), *DUMP_ENV)
    env = env_of(result)
    assert env["TCPREMOTEINFO"] == env["TCP6REMOTEINFO"] == "dave"
    assert fake.requests == [f"{server.port} , {env['TCPLOCALPORT']}\r\n".encode()]


def test_ipv6_local_address_option():
    with Server(host="::1") as server:
        result = run(ours(), "-RHl0", "-i", "::1", "::1", str(server.port), *DUMP_ENV)
    assert env_of(result)["TCPLOCALIP"] == "::1"
    assert server.peers[0][0] == "::1"


def test_against_our_tcpserver_environment_as_c_tcpclient_gets():
    port = support.free_port()
    with support.Proc([support.prog("tcpserver"), "-RHl0", "127.0.0.1", port, "sh", "-c",
                       "echo hello"], env=support.suite_env()):
        support.wait_port(port)
        mine, c = both("-RHl0", "127.0.0.1", str(port), "sh", "-c", "head -1 <&6; env")
    assert mine.stdout.startswith(b"hello\n") and c.stdout.startswith(b"hello\n")
    assert masked(env_of(mine)) == masked(env_of(c))


# ---- $TCPREMOTEINFO (needs port 113: root)

@pytest.mark.parametrize("reply,expected", [
    (b"%s : USERID : UNIX : alice\r\n", "alice"),
    (b"%s : ERROR : NO-USER\r\n", ""),
    (identd.CLOSE, None),
])
def test_remote_info_as_c(reply, expected):
    identd.need_root()

    def answer(request):
        return reply if reply == identd.CLOSE else reply % request
    with Server() as server, identd.FakeIdentd(answer) as fake:
        mine, c = both("-Hl0", "-t", "3", "127.0.0.1", str(server.port), *DUMP_ENV)
        for result in (mine, c):
            assert env_of(result).get("TCPREMOTEINFO") == expected
        for request, peer in zip(fake.requests, server.peers):
            assert request == f"{server.port} , {peer[1]}\r\n".encode()
    assert len(fake.requests) == 2


def test_remote_info_gives_up_after_t_seconds():
    identd.need_root()
    with Server() as server, identd.FakeIdentd(lambda request: identd.SLOW):
        start = time.monotonic()
        result = run(ours(), "-Hl0", "-t", "1", "127.0.0.1", str(server.port), *DUMP_ENV)
        assert 0.9 < time.monotonic() - start < 4
    assert result.returncode == 0
    assert "TCPREMOTEINFO" not in env_of(result)


# ---- names through DNS ($DNSCACHEIP at an in-process server: root)

def need_fake_dns():
    if os.getuid() != 0:
        pytest.skip("the fake DNS server on port 53 needs root")


RECORDS = {("1.0.0.127.in-addr.arpa", "PTR"): ["Local.Test."],
           ("server.test", "A"): ["127.0.0.1"]}


def test_host_names_as_c():
    need_fake_dns()
    with Server() as server, FakeDNS(RECORDS):
        mine, c = both("-R", "server.test", str(server.port), *DUMP_ENV,
                       env={"DNSCACHEIP": FAKE_DNS})
    assert masked(env_of(mine)) == masked(env_of(c))
    assert env_of(mine)["TCPREMOTEHOST"] == env_of(mine)["TCPLOCALHOST"] == "local.test"


def test_address_without_name_gives_empty_host_variables_as_c():
    need_fake_dns()
    with Server() as server, FakeDNS({("other.test", "A"): ["127.0.0.9"]}):
        mine, c = both("-R", "127.0.0.1", str(server.port), *DUMP_ENV,
                       env={"DNSCACHEIP": FAKE_DNS})
    assert masked(env_of(mine)) == masked(env_of(c))
    assert env_of(mine)["TCPREMOTEHOST"] == env_of(mine)["TCPLOCALHOST"] == ""


def test_unknown_host_name_is_fatal_as_c():
    need_fake_dns()
    with FakeDNS(RECORDS):
        mine, c = both("-RHl0", "nowhere.test", "25", "true", env={"DNSCACHEIP": FAKE_DNS})
    assert (mine.returncode, mine.stderr) == (c.returncode, c.stderr)
    assert mine.stderr == b"tcpclient: fatal: no IP address for nowhere.test\n"


def test_every_a_record_is_tried_as_c():
    need_fake_dns()
    records = {("multi.test", "A"): ["127.0.0.2", "127.0.0.1"]}
    with Server(greeting=b"hi\n") as server, FakeDNS(records):
        for tool in (ours(), theirs()):
            result = run(tool, "-RHl0", "multi.test", str(server.port), "sh", "-c",
                         "head -1 <&6", env={"DNSCACHEIP": FAKE_DNS})
            assert result.returncode == 0 and result.stdout == b"hi\n"
            # the order of A records is random, as djbdns's
            assert result.stderr in (b"", (f"tcpclient: unable to connect to 127.0.0.2 port "
                                           f"{server.port}: connection refused\n").encode())


def test_aaaa_records_are_used_beyond_0_88():
    need_fake_dns()
    with Server(host="::1", greeting=b"six\n") as server, \
            FakeDNS({("six.test", "AAAA"): ["::1"]}):
        result = run(ours(), "-RHl0", "six.test", str(server.port), "sh", "-c",
                     "head -1 <&6; env", env={"DNSCACHEIP": FAKE_DNS})
    assert result.returncode == 0 and result.stdout.startswith(b"six\n")
    assert env_of(result)["PROTO"] == "TCP6"
