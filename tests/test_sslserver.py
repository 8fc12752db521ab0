"""sslserver: TLS in front of tcpserver's server (docs/ssl.md): the environment, the relay
(byte-exact both ways, EOF both ways, the last bytes), client certificates, failed and
slow handshakes, rules, limits, UCSPI-TLS (-n), real peers (openssl s_client), warm
start on and off, an ordinary user, and no stray descriptor in the program."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from tests import support
from tests.tls_certs import Client, certs  # noqa: F401  (certs: the fixture)
from tests.ucspi_servers import start_tcpserver

USAGE = ("sslserver: usage: sslserver [ -13UXpPhHrRoOdDqQvVeEsSnNzZm ] [ -c limit ] [ -x rules.cdb ] "
         "[ -B banner ] [ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] "
         "[ -T ssltimeout ] [ -w progtimeout ] host port program\n")
ENV_DUMP = ["/bin/sh", "-c", "env | grep -E '^(PROTO|TCP|SSL|UCSPITLS)' | grep -v '^SSL_CERT_' | sort"]
FDS = [support.PYTHON, "-c", "import fcntl\n"
       "def is_open(fd):\n"
       "    try: return fcntl.fcntl(fd, fcntl.F_GETFD) >= 0\n"
       "    except OSError: return False\n"
       "print([fd for fd in range(1024) if is_open(fd)])\n"]


def start(certs, args, program, **env):
    """sslserver -1 ARGS 127.0.0.1 0 PROGRAM with the test certificate; (proc, port)."""
    environment = support.suite_env(**{**certs.server_env(), **env})
    return start_tcpserver(args, program, env=environment, binary=support.prog("sslserver"))


def connect(certs, port, cert=False, **kw) -> Client:
    return Client.connect(port, certs.client_context(cert=cert), **kw)


def env_of(text: bytes) -> dict:
    return dict(line.split("=", 1) for line in text.decode().splitlines())


# ---- the command line and the certificate

@pytest.mark.parametrize("args,message", [
    ([], ""),
    (["-Y", "0", "0", "true"], "sslserver: illegal option -- Y\n"),
    (["-T"], "sslserver: option requires an argument -- T\n"),
    (["127.0.0.1", "0"], ""),
])
def test_bad_usage_prints_the_usage_line_and_exits_100(args, message):
    result = support.run([support.prog("sslserver"), *args])
    assert (result.returncode, result.stderr.decode()) == (100, message + USAGE)


@pytest.mark.parametrize("env,message", [
    ({"CERTFILE": None, "KEYFILE": None}, "unable to load certificate: CERTFILE is not set"),
    ({"CERTFILE": "/nonexistent.pem"}, "unable to load certificate: /nonexistent.pem: file does not exist"),
    ({"KEYFILE": "/nonexistent.key"}, "unable to load key: /nonexistent.key: file does not exist"),
    ({"KEYFILE": "CLIENT_KEY"}, "key does not match certificate"),
    ({"CIPHERS": "NO-SUCH-CIPHER"}, "unable to set cipher list: NO-SUCH-CIPHER"),
])
def test_certificate_trouble_is_fatal_111_before_listening(certs, env, message):
    env = {k: (certs.client_key if v == "CLIENT_KEY" else v) for k, v in env.items()}
    result = support.run([support.prog("sslserver"), "-1", "127.0.0.1", "0", "true"],
                         env=support.suite_env(**{**certs.server_env(), **env}))
    assert result.returncode == 111
    assert result.stderr.decode() == f"sslserver: fatal: {message}\n"
    assert result.stdout == b""  # no port printed: nothing listened


def test_key_in_the_certificate_file_and_an_encrypted_key_with_dash_3(certs, tmp_path):
    proc, port = start(certs, ["-HRl0"], ["/bin/echo", "one file"], KEYFILE="", CERTFILE=certs.server_pem)
    assert connect(certs, port).read_all() == b"one file\n"
    proc.stop()
    password = tmp_path / "password"
    password.write_bytes(b"test pass phrase\0")
    environment = support.suite_env(**certs.server_env(KEYFILE=certs.server_key_encrypted))
    proc = support.Proc(["/bin/sh", "-c", 'exec "$0" "$@" 3<"$PASSWORD"', support.prog("sslserver"),
                         "-3", "-1", "-HRl0", "127.0.0.1", "0", "/bin/echo", "unlocked"],
                        env={**environment, "PASSWORD": str(password)})
    port = int(proc.out.wait_line(lambda line: line.strip().isdigit()))
    assert connect(certs, port).read_all() == b"unlocked\n"
    password.write_bytes(b"wrong\0")
    done = support.run(["/bin/sh", "-c", 'exec "$0" "$@" 3<"$PASSWORD"', support.prog("sslserver"),
                        "-3", "127.0.0.1", "0", "true"], env={**environment, "PASSWORD": str(password)})
    assert (done.returncode, done.stderr) == (111, f"sslserver: fatal: unable to load key: {certs.server_key_encrypted}\n".encode())


# ---- the program's environment and descriptors

def test_environment_is_ssl_and_tcp_with_proto_ssl(certs):
    proc, port = start(certs, ["-HRl", "local.name"], ENV_DUMP)
    client = connect(certs, port)
    myport = client.sock.getsockname()[1]
    got = env_of(client.read_all())
    common = {"LOCALIP": "127.0.0.1", "LOCALPORT": str(port), "LOCALHOST": "local.name",
              "REMOTEIP": "127.0.0.1", "REMOTEPORT": str(myport)}
    assert got == {"PROTO": "SSL", **{"SSL" + k: v for k, v in common.items()},
                   **{"TCP" + k: v for k, v in common.items()}}
    assert client.eof == "close_notify"


def test_ipv6_client_gets_the_tcp6_variables_too(certs):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    environment = support.suite_env(**certs.server_env())
    proc, port = start_tcpserver(["-HRl0"], ENV_DUMP, env=environment, binary=support.prog("sslserver"), host="::1")
    got = env_of(Client.connect(port, certs.client_context(), host="::1").read_all())
    assert got["PROTO"] == "SSL"
    assert got["SSLREMOTEIP"] == got["TCPREMOTEIP"] == got["TCP6REMOTEIP"] == "::1"
    assert got["TCP6LOCALPORT"] == got["SSLLOCALPORT"] == str(port)


def test_dash_E_leaves_out_the_tcp_variables_and_the_child_path_agrees(certs):
    # -r makes the child do the look-ups itself (IDENT to 127.0.0.1 is refused at once)
    for args in (["-E", "-HRl0"], ["-E", "-Hrl0"]):
        proc, port = start(certs, args, ENV_DUMP, TCPREMOTEHOST="stale")
        got = env_of(connect(certs, port).read_all())
        assert got["PROTO"] == "SSL" and got["SSLREMOTEIP"] == "127.0.0.1"
        assert got["TCPREMOTEHOST"] == "stale"  # -E: the TCP* ones are not touched
        assert not any(k.startswith("TCP") and k != "TCPREMOTEHOST" for k in got)
        proc.stop()


def test_dash_s_sets_the_ssl_variables_and_the_client_certificate(certs):
    program = ["/bin/sh", "-c", "env | grep '^SSL_' | grep -v '^SSL_CERT_'"]
    proc, port = start(certs, ["-s", "-HRl0"], program)
    plain = env_of(connect(certs, port).read_all())
    assert plain["SSL_PROTOCOL"].startswith("TLSv1.")
    assert plain["SSL_CIPHER"] and int(plain["SSL_CIPHER_USEKEYSIZE"]) >= 128
    assert int(plain["SSL_CIPHER_ALGKEYSIZE"]) >= int(plain["SSL_CIPHER_USEKEYSIZE"])
    assert plain["SSL_CIPHER_EXPORT"] == "false"
    assert len(plain["SSL_SESSION_ID"]) == 64 and int(plain["SSL_SESSION_ID"], 16) >= 0
    assert plain["SSL_VERSION_LIBRARY"] == ssl.OPENSSL_VERSION
    assert plain["SSL_SERVER_S_DN"] == "/CN=localhost"
    assert plain["SSL_SERVER_I_DN"] == "/O=djb-suite tests/CN=djb-suite test CA"
    assert plain["SSL_SERVER_M_SERIAL"] == "1001" and plain["SSL_SERVER_A_SIG"] == "ecdsa-with-SHA256"
    assert plain["SSL_CLIENT_VERIFY"] == "NONE" and "SSL_CLIENT_CERT" not in plain
    proc.stop()
    proc, port = start(certs, ["-s", "-m", "-HRl0"], ["/bin/sh", "-c", 'printf %s "$SSL_CLIENT_CERT"; env | grep "^SSL_CLIENT_[SIVM]"'],
                       CCAFILE=certs.ca)
    out = connect(certs, port, cert=True).read_all().decode()
    pem, _, rest = out.partition("-----END CERTIFICATE-----")
    assert ssl.PEM_cert_to_DER_cert(pem + "-----END CERTIFICATE-----\n") == \
        ssl.PEM_cert_to_DER_cert(open(certs.client_cert).read())
    client = env_of(rest.strip().encode())
    assert client["SSL_CLIENT_S_DN"] == "/C=DE/O=Example Clients/CN=client.example/emailAddress=client@example.com"
    assert client["SSL_CLIENT_S_DN_CN"] == "client.example" and client["SSL_CLIENT_S_DN_Email"] == "client@example.com"
    assert client["SSL_CLIENT_I_DN_CN"] == "djb-suite test CA" and client["SSL_CLIENT_M_SERIAL"] == "1003"
    assert client["SSL_CLIENT_VERIFY"] == "SUCCESS" and client["SSL_CLIENT_M_VERSION"] == "3"
    assert client["SSL_CLIENT_V_END"].endswith(" GMT")


@pytest.mark.parametrize("warm", ["1", "0"])
def test_program_holds_only_0_1_2(certs, warm):
    proc, port = start(certs, ["-HRl0"], FDS, UCSPI_WARMSTART=warm)
    assert connect(certs, port).read_all() == b"[0, 1, 2]\n"
    proc.stop()
    proc, port = start(certs, ["-Hrl0", "-s"], FDS, UCSPI_WARMSTART=warm)  # the child-does-it-all path
    assert connect(certs, port).read_all() == b"[0, 1, 2]\n"


def probe(certs, warm: str, args=("-HRl0",)) -> dict:
    proc, port = start(certs, list(args), [support.prog("ucspi-probe"), "a", "b c"], UCSPI_WARMSTART=warm)
    report = json.loads(connect(certs, port).read_all())
    proc.stop()
    return report


def test_warm_start_on_and_off_give_the_program_the_same_world(certs):
    warm, cold = probe(certs, "1"), probe(certs, "0")
    assert warm["warm"] is True and cold["warm"] is False
    assert warm["fds"] == cold["fds"] == [0, 1, 2]
    for report in (warm, cold):
        assert report["argv"][1:] == ["a", "b c"]
        for name in ("SSLREMOTEPORT", "TCPREMOTEPORT", "SSLLOCALPORT", "TCPLOCALPORT", "UCSPI_WARMSTART"):
            report["env"].pop(name)
    for key in ("env", "cwd", "ids", "umask", "limits", "stdio"):
        assert warm[key] == cold[key], key
    assert warm["env"]["PROTO"] == "SSL"


# ---- the relay

@pytest.mark.parametrize("warm", ["1", "0"])
def test_five_megabytes_echo_byte_exact_both_ways(certs, warm):
    program = ["cat"] if warm == "0" else [support.PYTHON, "-c",
                                            "import shutil, sys; shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer)"]
    proc, port = start(certs, ["-HRl0"], program, UCSPI_WARMSTART=warm)
    data = os.urandom(5 * 1024 * 1024)
    client = connect(certs, port)
    assert client.exchange(data, timeout=120) == data
    assert client.eof == "close_notify"


def test_eof_from_the_client_reaches_the_program_either_way(certs):
    proc, port = start(certs, ["-HRl0"], ["/bin/sh", "-c", "wc -c; echo after"])
    client = connect(certs, port)
    client.send(b"x" * 1000)
    client.close_notify()
    assert client.read_all() == b"1000\nafter\n"
    client = connect(certs, port)
    client.send(b"y" * 77)
    client.shutdown()  # a bare TCP half-close, no close_notify
    assert client.read_all() == b"77\nafter\n" and client.eof == "close_notify"


def test_eof_from_the_program_reaches_the_client_which_may_still_send(certs, tmp_path):
    got = tmp_path / "got"
    program = [support.PYTHON, "-c", "import os, socket, sys\n"
               "os.write(1, b'early\\n')\n"
               "socket.socket(fileno=1).shutdown(socket.SHUT_WR)\n"
               "data = b''\n"
               "while True:\n"
               "    chunk = os.read(0, 65536)\n"
               "    if not chunk: break\n"
               "    data += chunk\n"
               f"open({str(got)!r}, 'wb').write(data)\n"]
    proc, port = start(certs, ["-vHRl0"], program)
    client = connect(certs, port)
    assert client.read_all() == b"early\n" and client.eof == "close_notify"
    client.send(b"sent after the server's end\n")
    client.close_notify()
    proc.err.wait_line(" end ")
    assert got.read_bytes() == b"sent after the server's end\n"


def test_the_last_bytes_are_not_lost_when_the_program_exits(certs):
    program = [support.PYTHON, "-c", "import os; os.write(1, b'z' * 3000000); os._exit(0)"]
    proc, port = start(certs, ["-HRl0"], program)
    client = connect(certs, port)
    time.sleep(0.5)  # the program has long exited; its output waits in the relay's buffers
    assert client.read_all() == b"z" * 3000000


def test_exit_status_of_the_program_is_the_childs_and_logged(certs):
    proc, port = start(certs, ["-vHRl0"], ["/bin/sh", "-c", "echo bye; exit 3"])
    assert connect(certs, port).read_all() == b"bye\n"
    assert proc.err.wait_line(" end ").endswith(f"status {3 << 8}")
    proc.stop()
    proc, port = start(certs, ["-vHRl0"], ["/bin/sh", "-c", "kill -9 $$"])
    connect(certs, port).read_all()
    assert proc.err.wait_line(" end ").endswith("status 9")


def test_abrupt_client_close_ends_the_program(certs):
    proc, port = start(certs, ["-vHRl0"], ["/bin/sh", "-c", "echo ready; cat >/dev/null; echo eof-seen >&2"])
    client = connect(certs, port)
    assert client.read_until(b"\n") == b"ready\n"
    client.send(b"some data")
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    client.close()  # a reset
    proc.err.wait_line("eof-seen")
    proc.err.wait_line(" end ")


def test_dash_w_breaks_off_a_connection_where_nothing_moves(certs):
    proc, port = start(certs, ["-vHRl0", "-w", "1"], ["/bin/sh", "-c", "echo idle; exec sleep 30"])
    client = connect(certs, port)
    assert client.read_until(b"\n") == b"idle\n"
    started = time.monotonic()
    assert client.read_all(timeout=10) == b""
    assert 0.8 < time.monotonic() - started < 5
    assert proc.err.wait_line("unable to speak TLS") == \
        "sslserver: warning: unable to speak TLS with 127.0.0.1: timed out"
    assert proc.err.wait_line(" end ").endswith(f"status {111 << 8}")


def test_program_gone_while_the_client_still_sends(certs):
    """The program reads 10 bytes and exits: what the client goes on sending is read and
    discarded (its sends complete), the program's last line still arrives."""
    program = ["/bin/sh", "-c", "head -c 10 >/dev/null; sleep 0.5; echo enough"]
    proc, port = start(certs, ["-vHRl0"], program)
    client = connect(certs, port)
    client.send(b"x" * 3_000_000)  # blocks while the program sleeps, goes on after it exits
    assert client.read_all() == b"enough\n"
    assert proc.err.wait_line(" end ").endswith("status 0")


def test_banner_is_sent_inside_tls(certs):
    proc, port = start(certs, ["-HRl0", "-B", "220 hello\r\n"], ["/bin/echo", "prog"])
    assert connect(certs, port).read_all() == b"220 hello\r\nprog\n"


def test_lines_cross_without_delay(certs):
    program = [support.PYTHON, "-c", "import os\nwhile True:\n    line = os.read(0, 100)\n"
               "    if not line: break\n    os.write(1, b'+OK ')\n    os.write(1, line)\n"]
    proc, port = start(certs, ["-HRl0"], program)
    client = connect(certs, port)
    client.send(b"warm-up\n")
    client.read_until(b"\n")
    started = time.monotonic()
    for i in range(50):
        client.send(b"NOOP\r\n")
        assert client.read_until(b"\r\n") == b"+OK NOOP\r\n"
    assert (time.monotonic() - started) / 50 < 0.02  # Nagle and delayed ACKs would take 40 ms


# ---- handshakes that fail

def test_plaintext_client_fails_cleanly_is_logged_and_the_server_goes_on(certs):
    proc, port = start(certs, ["-vHRl0"], ["/bin/echo", "secret"])
    with support.connect(port) as plain:
        plain.sendall(b"USER bob\r\n")
        assert b"secret" not in support.recv_all(plain)
    line = proc.err.wait_line("unable to accept TLS")
    assert line == "sslserver: warning: dropping connection, unable to accept TLS from 127.0.0.1: wrong version number"
    assert proc.err.wait_line(" end ").endswith(f"status {111 << 8}")
    assert connect(certs, port).read_all() == b"secret\n"


def test_handshake_timeout(certs):
    proc, port = start(certs, ["-vHRl0", "-T", "1"], ["/bin/echo", "never"])
    with support.connect(port) as silent:
        started = time.monotonic()
        assert support.recv_all(silent, timeout=10) == b""
        assert 0.8 < time.monotonic() - started < 5
    assert proc.err.wait_line("unable to accept TLS").endswith("from 127.0.0.1: timed out")


def test_client_certificate_required_verified_and_rejected(certs):
    program = ["/bin/sh", "-c", 'echo "hello $SSL_CLIENT_S_DN_CN"']
    proc, port = start(certs, ["-vsmHRl0"], program, CCAFILE=certs.ca)
    assert connect(certs, port, cert=True).read_all() == b"hello client.example\n"
    for context in (certs.client_context(), rogue_context(certs)):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            client = Client.connect(port, context)
            client.read_all()
    assert "peer did not return a certificate" in proc.err.wait_line("unable to accept TLS")
    assert "unable to get local issuer certificate" in proc.err.wait_line("unable to accept TLS")
    assert connect(certs, port, cert=True).read_all() == b"hello client.example\n"


def rogue_context(certs) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certs.ca)
    context.load_cert_chain(certs.rogue_cert, certs.rogue_key)
    return context


def test_dash_z_without_a_ca_list_is_fatal(certs):
    result = support.run([support.prog("sslserver"), "-z", "127.0.0.1", "0", "true"],
                         env=support.suite_env(**certs.server_env()))
    assert result.returncode == 111
    assert result.stderr == b"sslserver: fatal: unable to load CA list: set CCAFILE, CAFILE or CADIR\n"


PTR = ("1.0.0.127.in-addr.arpa", "PTR")


@pytest.mark.parametrize("name,named", [("client.example.", True), ("somebody.else.", False), (None, True)])
def test_dash_z_wants_the_certificate_to_name_the_remote_host(certs, name, named):
    """-z with -h: the client's certificate must name the host its address maps to (no name
    found: no check, as with -H); -m never checks."""
    from tests.dns_server import DNSServer
    server = DNSServer({PTR: [name]} if name else {}).start()
    try:
        for flag in ("-z", "-m"):
            proc, port = start(certs, ["-vhRl0", flag], ["/bin/sh", "-c", 'echo "in $SSLREMOTEHOST"'],
                               CCAFILE=certs.ca, DNSCACHEIP=server.ip)
            expected = f"in {(name or '').rstrip('.')}\n".encode()
            try:
                got = connect(certs, port, cert=True).read_all()
            except (ssl.SSLError, ConnectionError):
                got = b""
            if named or flag == "-m":
                assert got == expected
            else:
                assert got == b""
                assert proc.err.wait_line("dropping connection") == \
                    f"sslserver: warning: dropping connection, client hostname does not match certificate: {name.rstrip('.')}"
            proc.stop()
    finally:
        server.stop()


# ---- tcpserver's machinery

def test_rules_deny_before_the_handshake(certs, tmp_path):
    rules = tmp_path / "rules.cdb"
    made = support.run([support.prog("tcprules"), rules, tmp_path / "rules.tmp"], input=b"127.0.0.1:deny\n")
    assert made.returncode == 0
    proc, port = start(certs, ["-vHRl0", "-x", str(rules)], ["/bin/echo", "no"])
    with support.connect(port) as s:
        assert support.recv_all(s) == b""
    assert proc.err.wait_line(" deny ").startswith("sslserver: deny ")
    assert proc.err.wait_line(" end ").endswith(f"status {100 << 8}")


def test_rules_set_variables(certs, tmp_path):
    rules = tmp_path / "rules.cdb"
    support.run([support.prog("tcprules"), rules, tmp_path / "rules.tmp"],
                input=b"127.0.0.1:allow,RELAYCLIENT=\"\",GREETING=\"hi there\"\n").check_returncode()
    for args in (["-HRl0"], ["-Hrl0"]):
        proc, port = start(certs, args + ["-x", str(rules)], ["/bin/sh", "-c", 'echo "[$RELAYCLIENT] $GREETING"'])
        assert connect(certs, port).read_all() == b"[] hi there\n"
        proc.stop()


def test_concurrency_limit(certs):
    proc, port = start(certs, ["-vHRl0", "-c", "1"], ["/bin/sh", "-c", "echo go; read x; echo done"])
    first = connect(certs, port)
    assert first.read_until(b"\n") == b"go\n"
    waiting = Client(socket.create_connection(("127.0.0.1", port), timeout=10), certs.client_context())
    with pytest.raises(TimeoutError):
        waiting.handshake(timeout=1)  # not accepted yet: its ClientHello waits
    first.send(b"x\n")
    assert first.read_all() == b"done\n"
    waiting.handshake()
    assert waiting.read_until(b"\n") == b"go\n"
    proc.err.wait_line("sslserver: status: 1/1")


def test_sigterm_exits_0_and_connections_go_on(certs):
    proc, port = start(certs, ["-HRl0"], ["/bin/sh", "-c", "echo up; read x; echo still here"])
    client = connect(certs, port)
    assert client.read_until(b"\n") == b"up\n"
    proc.send_signal(15)
    assert proc.wait(5) == 0
    client.send(b"x\n")
    assert client.read_all() == b"still here\n"


def test_unrunnable_program(certs):
    proc, port = start(certs, ["-vHRl0"], ["/nonexistent/program"])
    client = connect(certs, port)
    assert client.read_all() == b"" and client.eof == "close_notify"
    assert proc.err.wait_line("unable to run") == \
        "sslserver: warning: dropping connection, unable to run /nonexistent/program: file does not exist"


# ---- UCSPI-TLS (-n)

STLS_PROGRAM = r"""
import os, sys
def line(fd):
    out = b""
    while not out.endswith(b"\n"):
        c = os.read(fd, 1)
        if not c:
            break
        out += c
    return out
os.write(1, b"+OK plain " + os.environ.get("UCSPITLS", "unset").encode() + b"\r\n")
command = line(0)
if command != b"STLS\r\n":
    os.write(1, b"-ERR plain only\r\n")
    sys.exit(0)
os.write(1, b"+OK begin TLS\r\n")
control = int(os.environ["SSLCTLFD"])
os.write(control, sys.argv[1].encode())
answer = b""
if sys.argv[1] == "Y":
    while not answer.endswith(b"\0\0"):
        chunk = os.read(control, 65536)
        if not chunk:
            break
        answer += chunk
tls = dict(item.split(b"=", 1) for item in answer.split(b"\0") if item)
os.dup2(int(os.environ["SSLREADFD"]), 0)
os.dup2(int(os.environ["SSLWRITEFD"]), 1)
for name in ("SSLCTLFD", "SSLREADFD", "SSLWRITEFD"):
    os.close(int(os.environ[name]))
secret = line(0)
import fcntl
def is_open(fd):
    try:
        return fcntl.fcntl(fd, fcntl.F_GETFD) >= 0
    except OSError:
        return False
fds = [fd for fd in range(1024) if is_open(fd)]
os.write(1, b"+OK " + secret.strip() + b" " + tls.get(b"SSL_PROTOCOL", b"-") + b" "
         + tls.get(b"SSL_CLIENT_S_DN_CN", b"-") + b" " + str(fds).encode() + b"\r\n")
"""


def stls_program(tmp_path, command="Y"):
    script = tmp_path / "stls.py"
    script.write_text(STLS_PROGRAM)
    return [support.PYTHON, str(script), command]


def starttls(port, context, greeting=b"+OK plain \r\n") -> Client:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert recv_line(sock) == greeting
    sock.sendall(b"STLS\r\n")
    assert recv_line(sock) == b"+OK begin TLS\r\n"
    client = Client(sock, context)
    client.handshake()
    return client


def recv_line(sock) -> bytes:
    out = b""
    while not out.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        out += chunk
    return out


@pytest.mark.parametrize("command", ["Y", "y"])
def test_ucspi_tls_switches_a_real_program_to_tls(certs, tmp_path, command):
    proc, port = start(certs, ["-vnHRl0"], stls_program(tmp_path, command))
    client = starttls(port, certs.client_context())
    client.send(b"PASS secret\r\n")
    expected = b"TLSv1.3" if command == "Y" else b"-"
    assert client.read_all() == b"+OK PASS secret " + expected + b" - [0, 1, 2]\r\n"
    assert client.eof == "close_notify"
    assert proc.err.wait_line(" end ").endswith("status 0")


def test_ucspi_tls_environment_and_client_certificates(certs, tmp_path):
    proc, port = start(certs, ["-nmHRl0"], stls_program(tmp_path), CCAFILE=certs.ca, UCSPITLS="!")
    client = starttls(port, certs.client_context(cert=True), greeting=b"+OK plain !\r\n")
    client.send(b"PASS x\r\n")
    assert client.read_all() == b"+OK PASS x TLSv1.3 client.example [0, 1, 2]\r\n"


def test_ucspi_tls_program_that_stays_plain(certs, tmp_path):
    proc, port = start(certs, ["-vnHRl0"], stls_program(tmp_path))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        assert recv_line(sock) == b"+OK plain \r\n"
        sock.sendall(b"QUIT\r\n")
        assert support.recv_all(sock) == b"-ERR plain only\r\n"
    assert proc.err.wait_line(" end ").endswith("status 0")


def test_ucspi_tls_failed_handshake_ends_the_program(certs, tmp_path):
    proc, port = start(certs, ["-vnHRl0", "-T", "2"], stls_program(tmp_path))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        assert recv_line(sock) == b"+OK plain \r\n"
        sock.sendall(b"STLS\r\n")
        assert recv_line(sock) == b"+OK begin TLS\r\n"
        sock.sendall(b"not a client hello\r\n")
        assert support.recv_all(sock) == b""
    assert "unable to accept TLS from 127.0.0.1" in proc.err.wait_line("dropping connection")
    assert proc.err.wait_line(" end ").endswith(f"status {111 << 8}")


# ---- real peers

@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
def test_openssl_s_client_talks_to_sslserver(certs):
    proc, port = start(certs, ["-HRl0", "-s"], ["/bin/sh", "-c", 'read line; echo "got $line $SSL_PROTOCOL"'])
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", certs.ca,
                           "-verify_return_error", "-verify_hostname", "localhost", "-quiet"],
                          input=b"from openssl\n", capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"got from openssl TLSv1.3\n"
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", certs.ca,
                           "-tls1_2", "-quiet"], input=b"twelve\n", capture_output=True, timeout=30)
    assert done.stdout == b"got twelve TLSv1.2\n"


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
def test_openssl_s_client_starttls_pop3_against_dash_n(certs, tmp_path):
    program = [support.PYTHON, "-c", STLS_PROGRAM.replace('os.write(1, b"+OK plain "', 'os.write(1, b"+OK POP3 ready "'), "y"]
    proc, port = start(certs, ["-nHRl0"], program)
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", certs.ca,
                           "-verify_return_error", "-starttls", "pop3", "-quiet"],
                          input=b"PASS via openssl\r\n", capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"+OK PASS via openssl - - [0, 1, 2]\r\n"


# ---- privileges

@pytest.mark.parametrize("warm", ["1", "0"])
def test_runs_as_an_ordinary_user(certs, warm):
    """Embedded mode: the server, its relays and the program all run as the ordinary user."""
    user = support.unprivileged_user()
    argv = support.as_user([support.prog("sslserver"), "-1", "-vsHRl0", "127.0.0.1", "0",
                            support.prog("ucspi-probe")], user)
    proc = support.Proc(argv, env=support.suite_env(**certs.server_env(), UCSPI_WARMSTART=warm), cwd="/")
    port = int(proc.out.wait_line(lambda line: line.strip().isdigit(), timeout=15))
    report = json.loads(connect(certs, port).read_all())
    assert report["ids"][:4] == [user.pw_uid, user.pw_uid, user.pw_gid, user.pw_gid]
    assert report["warm"] is (warm == "1") and report["fds"] == [0, 1, 2]
    assert report["env"]["SSL_PROTOCOL"] == "TLSv1.3"
    proc.err.wait_line(" end ")


@pytest.mark.skipif(os.getuid() != 0, reason="dropping privileges needs root")
def test_privileges_dropped_after_reading_the_key(certs, tmp_path):
    key = tmp_path / "root-only.key"
    shutil.copy(certs.server_key, key)
    key.chmod(0o600)
    user = support.unprivileged_user()
    proc, port = start(certs, ["-HRl0", "-u", str(user.pw_uid), "-g", str(user.pw_gid)],
                       ["/bin/sh", "-c", "id -u"], KEYFILE=str(key))
    assert connect(certs, port).read_all() == f"{user.pw_uid}\n".encode()
