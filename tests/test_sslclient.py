"""sslclient: tcpclient's connection with TLS in front of the program (docs/ssl.md):
against our sslserver and against openssl s_server, the environment, descriptors 6 and 7,
certificate checks, EOF both ways, megabytes both ways, UCSPI-TLS (-y), warm start."""

import json
import shutil
import time

import pytest

from tests import support
from tests.tls_certs import certs  # noqa: F401  (the fixture)
from tests.ucspi_servers import start_tcpserver

USAGE = ("sslclient: usage: sslclient [ -3hHrRdDqQveEsSnNxXyY ] [ -i localip ] [ -p localport ] "
         "[ -T timeoutconn ] [ -l localname ] [ -t timeoutinfo ] [ -a cafile ] [ -A cadir ] "
         "[ -c certfile ] [ -z ciphers ] [ -k keyfile ] [ -V verifydepth ] [ -w progtimeout ] "
         "host port program\n")
HAS_OPENSSL = shutil.which("openssl") is not None


def server(certs, program, args=("-HRl0",), **env):
    """Our sslserver -1 ARGS 127.0.0.1 0 PROGRAM; (proc, port)."""
    environment = support.suite_env(**{**certs.server_env(), **env})
    return start_tcpserver(list(args), program, env=environment, binary=support.prog("sslserver"))


def client(certs, port, program, *args, env=None, timeout=30, ca=True, **kw):
    """Our sslclient ARGS 127.0.0.1 PORT PROGRAM, to completion."""
    argv = [support.prog("sslclient"), *(["-a", certs.ca] if ca else []), *args, "127.0.0.1", str(port), *program]
    return support.run(argv, env=env or support.suite_env(), timeout=timeout, **kw)


def test_bad_usage_prints_the_usage_line_and_exits_100():
    for args, message in (([], ""), (["0"], ""), (["0", "1"], ""), (["-Z", "0", "1", "true"], "sslclient: illegal option -- Z\n")):
        result = support.run([support.prog("sslclient"), *args])
        assert (result.returncode, result.stderr.decode()) == (100, message + USAGE)


def test_environment_descriptors_and_exit_status(certs):
    proc, port = server(certs, ["/bin/sh", "-c", "read line; echo \"got $line\"; exit 0"])
    program = [support.PYTHON, "-c",
               "import os, sys\n"
               "os.write(7, b'hi\\n')\n"
               "print(os.read(6, 100).decode(), end='')\n"
               "import fcntl\n"
               "def is_open(fd):\n"
               "    try: return fcntl.fcntl(fd, fcntl.F_GETFD) >= 0\n"
               "    except OSError: return False\n"
               "print([fd for fd in range(256) if is_open(fd)])\n"
               "print(*sorted(f'{k}={v}' for k, v in os.environ.items() if k.startswith(('PROTO', 'SSL', 'TCP')) and not k.startswith('SSL_CERT_')), sep='\\n')\n"
               "sys.exit(5)\n"]
    result = client(certs, port, program, "-H", "-l", "me")
    assert result.returncode == 5, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "got hi" and lines[1] == "[0, 1, 2, 6, 7]"
    env = dict(line.split("=", 1) for line in lines[2:])
    assert env.pop("SSLLOCALPORT").isdigit()
    assert env == {"PROTO": "SSL", "SSLLOCALIP": "127.0.0.1", "SSLLOCALHOST": "me", "SSLREMOTEIP": "127.0.0.1",
                   "SSLREMOTEPORT": str(port)}


def test_dash_e_and_dash_s(certs):
    proc, port = server(certs, ["/bin/sh", "-c", "read line; echo ok"])
    program = ["/bin/sh", "-c", "echo x >&7; read reply <&6; env | grep -E '^(TCP|SSL_)' | grep -v '^SSL_CERT_' | sort"]
    result = client(certs, port, program, "-e", "-s", "-H")
    env = dict(line.split("=", 1) for line in result.stdout.decode().splitlines() if "=" in line)
    assert env["TCPREMOTEIP"] == "127.0.0.1" and env["TCPREMOTEPORT"] == str(port)
    assert env["SSL_PROTOCOL"] == "TLSv1.3" and env["SSL_SERVER_S_DN_CN"] == "localhost"
    assert env["SSL_SERVER_I_DN"] == "/O=djb-suite tests/CN=djb-suite test CA"
    assert "SSL_CLIENT_S_DN" not in env  # no certificate of ours


def test_eof_both_ways(certs):
    proc, port = server(certs, ["/bin/sh", "-c", "wc -c; echo after"])
    program = [support.PYTHON, "-c",
               "import os, socket\n"
               "os.write(7, b'x' * 12345)\n"
               "socket.socket(fileno=os.dup(7)).shutdown(socket.SHUT_WR)\n"
               "data = b''\n"
               "while True:\n"
               "    chunk = os.read(6, 100)\n"
               "    if not chunk: break\n"
               "    data += chunk\n"
               "print(data.decode(), end='')\n"]
    result = client(certs, port, program)
    assert (result.returncode, result.stdout) == (0, b"12345\nafter\n")


def test_megabytes_both_ways_through_both_relays(certs):
    proc, port = server(certs, ["cat"])
    program = [support.PYTHON, "-c",
               "import hashlib, os, socket, threading\n"
               "data = os.urandom(5 * 1024 * 1024)\n"
               "def send():\n"
               "    view = memoryview(data)\n"
               "    while view:\n"
               "        view = view[os.write(7, view[:65536]):]\n"
               "    socket.socket(fileno=os.dup(7)).shutdown(socket.SHUT_WR)\n"
               "thread = threading.Thread(target=send); thread.start()\n"
               "back = hashlib.sha256(); size = 0\n"
               "while True:\n"
               "    chunk = os.read(6, 65536)\n"
               "    if not chunk: break\n"
               "    back.update(chunk); size += len(chunk)\n"
               "thread.join()\n"
               "print(size, back.hexdigest() == hashlib.sha256(data).hexdigest())\n"]
    result = client(certs, port, program, timeout=120)
    assert result.stdout == b"5242880 True\n", result.stderr


def test_server_certificate_checks(certs):
    proc, port = server(certs, ["/bin/echo", "reached"])
    result = client(certs, port, ["/bin/sh", "-c", "cat <&6"], ca=False, env=support.suite_env())
    assert result.returncode == 111 and b"reached" not in result.stdout
    assert result.stderr.startswith(b"sslclient: fatal: unable to verify server certificate: ")
    rogue = client(certs, port, ["/bin/sh", "-c", "cat <&6"], "-a", certs.rogue_ca, ca=False)
    assert (rogue.returncode, rogue.stderr) == (
        111, b"sslclient: fatal: unable to verify server certificate: unable to get local issuer certificate\n")
    trusting = client(certs, port, ["/bin/sh", "-c", "cat <&6"], "-X", ca=False)
    assert (trusting.returncode, trusting.stdout) == (0, b"reached\n")
    proc.stop()
    proc, port = server(certs, ["/bin/echo", "other"], CERTFILE=certs.other_cert, KEYFILE=certs.other_key)
    wrong = client(certs, port, ["/bin/sh", "-c", "cat <&6"])
    assert (wrong.returncode, wrong.stderr) == (111, b"sslclient: fatal: server hostname does not match certificate: 127.0.0.1\n")
    unnamed = client(certs, port, ["/bin/sh", "-c", "cat <&6"], "-N")
    assert (unnamed.returncode, unnamed.stdout) == (0, b"other\n")


def test_client_certificate_against_sslserver(certs):
    proc, port = server(certs, ["/bin/sh", "-c", 'echo "you are $SSL_CLIENT_S_DN_CN"'], args=("-vmsHRl0",),
                        CCAFILE=certs.ca)
    mine = client(certs, port, ["/bin/sh", "-c", "cat <&6"], "-c", certs.client_cert, "-k", certs.client_key)
    assert (mine.returncode, mine.stdout) == (0, b"you are client.example\n")
    none = client(certs, port, ["/bin/sh", "-c", "cat <&6"])
    assert none.returncode == 111 and b"you are" not in none.stdout
    assert none.stderr == b"sslclient: fatal: unable to speak TLS: tlsv13 alert certificate required\n"


def test_bad_client_certificate_files_are_fatal(certs):
    for args, message in ((["-c", "/nonexistent.pem"], "unable to load certificate: /nonexistent.pem: file does not exist"),
                          (["-c", certs.client_cert, "-k", certs.server_key], "key does not match certificate"),
                          (["-a", "/nonexistent-ca.pem"], "unable to load CA list: /nonexistent-ca.pem: file does not exist")):
        result = client(certs, 1, ["true"], *args)
        assert (result.returncode, result.stderr.decode()) == (111, f"sslclient: fatal: {message}\n")


def test_handshake_failures(certs):
    plain, port = start_tcpserver(["-RHl0"], ["/bin/sh", "-c", "echo 'not TLS at all'; sleep 5"])
    result = client(certs, port, ["true"])
    assert (result.returncode, result.stderr) == (111, b"sslclient: fatal: unable to SSL connect: wrong version number\n")
    plain.stop()
    silent, port = start_tcpserver(["-RHl0"], ["sleep", "10"])
    started = time.monotonic()
    result = client(certs, port, ["true"], "-T", "1+0")
    assert (result.returncode, result.stderr) == (111, b"sslclient: fatal: unable to SSL connect: timed out\n")
    assert time.monotonic() - started < 5
    port = support.free_port()
    refused = client(certs, port, ["true"])
    assert (refused.returncode, refused.stderr) == (
        111, f"sslclient: unable to connect to 127.0.0.1 port {port}: connection refused\n".encode())


@pytest.mark.parametrize("warm", ["1", "0"])
def test_warm_start_on_and_off(certs, warm):
    proc, port = server(certs, ["/bin/sh", "-c", "cat >/dev/null"])
    result = client(certs, port, [support.prog("ucspi-probe"), "x"], env=support.suite_env(UCSPI_WARMSTART=warm))
    report = json.loads(result.stdout)
    assert report["warm"] is (warm == "1")
    assert report["fds"] == [0, 1, 2, 6, 7]
    assert report["argv"][1:] == ["x"] and report["env"]["PROTO"] == "SSL"


# ---- UCSPI-TLS (-y) against sslserver -n

CLIENT_STLS = r"""
import os
def line(fd):
    out = b""
    while not out.endswith(b"\n"):
        c = os.read(fd, 1)
        if not c:
            break
        out += c
    return out
greeting = line(6)
os.write(7, b"STLS\r\n")
ok = line(6)
control = int(os.environ["SSLCTLFD"])
os.write(control, b"Y")
answer = b""
while not answer.endswith(b"\0\0"):
    chunk = os.read(control, 65536)
    if not chunk:
        break
    answer += chunk
tls = dict(item.split(b"=", 1) for item in answer.split(b"\0") if item)
reading, writing = int(os.environ["SSLREADFD"]), int(os.environ["SSLWRITEFD"])
os.write(writing, b"PASS secret\r\n")
print(greeting, ok, line(reading), tls[b"SSL_SERVER_S_DN_CN"], tls[b"SSL_PROTOCOL"])
"""


def test_delayed_tls_client_against_delayed_tls_server(certs, tmp_path):
    from tests.test_sslserver import stls_program
    proc, port = server(certs, stls_program(tmp_path, "y"), args=("-nHRl0",))
    result = client(certs, port, [support.PYTHON, "-c", CLIENT_STLS], "-y")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (b"b'+OK plain \\r\\n' b'+OK begin TLS\\r\\n' "
                             b"b'+OK PASS secret - - [0, 1, 2]\\r\\n' b'localhost' b'TLSv1.3'\n")


def test_delayed_tls_program_that_never_asks(certs):
    proc, port = server(certs, ["/bin/sh", "-c", "read line; echo \"plain $line\""], args=("-HRl0",))
    result = client(certs, port, ["/bin/sh", "-c", 'echo "$SSLCTLFD $SSLREADFD $SSLWRITEFD"; exec 3>&-; exit 4'], "-y")
    assert (result.returncode, result.stdout) == (4, b"3 4 5\n")


# ---- a real peer

@pytest.mark.skipif(not HAS_OPENSSL, reason="openssl not installed")
@pytest.mark.parametrize("client_cert", [False, True])
def test_against_openssl_s_server(certs, tmp_path, client_cert):
    (tmp_path / "page.txt").write_text("served by openssl\n")
    port = support.free_port()
    argv = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", certs.server_cert, "-key",
            certs.server_key, "-WWW", "-naccept", "1"]
    if client_cert:
        argv += ["-Verify", "1", "-CAfile", certs.ca, "-verify_return_error"]
    support.Proc(argv, cwd=tmp_path)
    wait_listening(port)  # not by connecting: -naccept 1
    extra = ["-c", certs.client_cert, "-k", certs.client_key] if client_cert else []
    result = client(certs, port, ["/bin/sh", "-c", r'printf "GET /page.txt HTTP/1.0\r\n\r\n" >&7; cat <&6'], *extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(b"\r\n\r\nserved by openssl\n")


def wait_listening(port: int) -> None:
    """Wait for a listener without connecting to it (the kernel's table)."""
    def listening():
        with open("/proc/net/tcp") as f:
            return any(line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A" for line in f.readlines()[1:])
    support.wait_for(listening, what=f"port {port} to listen")
