"""qmail-qmqpc: the mini-qmail queue, sending to control/qmqpservers in order."""

import os
import socket
import threading
from pathlib import Path

import pytest

from qmail.formats import netstring
from tests import qmail_trees, support
from tests.ucspi_servers import start_tcpserver


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory):
    return Path(qmail_trees.embedded_tree(tmp_path_factory.mktemp("hub"), fqdn="hub.example.com"))


@pytest.fixture
def hub(hub_root):
    """A full installation running qmail-qmqpd under our tcpserver: (root, port)."""
    proc, port = start_tcpserver(["-H", "-R", "-l", "hub.example.com"], [support.prog("qmail-qmqpd")],
                                 env=support.suite_env(QMAIL_ROOT=hub_root))
    yield hub_root, port
    proc.stop()


def client_tree(tmp_path, servers: list[str]) -> Path:
    root = Path(qmail_trees.embedded_tree(tmp_path, fqdn="client.example.com", name="client"))
    (root / "control" / "qmqpservers").write_text("".join(s + "\n" for s in servers))
    return root


def closed_port() -> int:
    return support.free_port()  # nothing listens there: the connection is refused


def qmqpc(root, message: bytes, envelope: bytes):
    """Run qmail-qmqpc as qmail-queue is run: message on fd 0, envelope on fd 1."""
    envelope_file = Path(root).parent / "envelope"
    envelope_file.write_bytes(envelope)
    return support.run(["/bin/sh", "-c", 'exec "$0" 1<"$1"', support.prog("qmail-qmqpc"),
                        envelope_file], input=message, env=support.suite_env(QMAIL_ROOT=root))


def new_messages(root, before):
    return [n for n in qmail_trees.queued(str(root)) if n not in before]


def test_message_goes_to_the_qmqp_server(hub, tmp_path):
    hub_root, port = hub
    root = client_tree(tmp_path, [f"127.0.0.1:{port}"])
    before = qmail_trees.queued(str(hub_root))
    done = qmqpc(root, b"Subject: mini\n\nhello\n", b"Fme@client\0Tyou@hub\0Tthem@far\0\0")
    assert done.returncode == 0
    (num,) = new_messages(hub_root, before)
    todo = qmail_trees.todo(str(hub_root), num)
    assert (todo.sender, todo.recipients) == (b"me@client", [b"you@hub", b"them@far"])
    mess = qmail_trees.message(str(hub_root), num)
    assert b"\n  by hub.example.com with QMQP; " in mess
    assert mess.endswith(b" -0000\nSubject: mini\n\nhello\n")


def test_servers_are_tried_in_order(hub, tmp_path):
    hub_root, port = hub
    root = client_tree(tmp_path, ["# comment", "not an address", f"127.0.0.1:{closed_port()}",
                                  f"127.0.0.1:{port}"])
    before = qmail_trees.queued(str(hub_root))
    assert qmqpc(root, b"\n", b"F\0Ta@b\0\0").returncode == 0
    assert len(new_messages(hub_root, before)) == 1


def test_every_server_refusing_is_temporary(tmp_path):
    root = client_tree(tmp_path, [f"127.0.0.1:{closed_port()}", f"127.0.0.1:{closed_port()}"])
    assert qmqpc(root, b"\n", b"F\0Ta@b\0\0").returncode == 73


class OneShotServer:
    """Reads one QMQP package and answers with reply (None: closes without answering)."""

    def __init__(self, reply: bytes | None):
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            while True:
                try:
                    netstring.decode(self.received)
                    break
                except netstring.Incomplete:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    self.received += chunk
            if self.reply is not None:
                conn.sendall(self.reply)

    def close(self):
        self.thread.join(10)
        self.sock.close()


@pytest.mark.parametrize("reply, code", [
    (b"5:Kdone,", 0), (b"5:Zbusy,", 71), (b"4:Dno!,", 31), (b"junk then K", 0), (None, 74),
])
def test_server_answer_becomes_the_exit_code(tmp_path, reply, code):
    server = OneShotServer(reply)
    try:
        root = client_tree(tmp_path, [f"127.0.0.1:{server.port}"])
        assert qmqpc(root, b"body\n", b"Fs@x\0Tr@y\0\0").returncode == code
    finally:
        server.close()
    assert server.received == netstring.encode(
        netstring.encode(b"body\n") + netstring.encode(b"s@x") + netstring.encode(b"r@y"))


@pytest.mark.parametrize("envelope", [b"", b"Xs\0\0", b"Fs\0Tr\0", b"Fs\0Xr\0\0", b"Fs"])
def test_malformed_envelope(tmp_path, envelope):
    root = client_tree(tmp_path, ["127.0.0.1:1"])
    assert qmqpc(root, b"\n", envelope).returncode == 91


def test_missing_control_file_and_root(tmp_path):
    root = client_tree(tmp_path, [])
    os.unlink(root / "control" / "qmqpservers")
    assert qmqpc(root, b"\n", b"F\0\0").returncode == 55
    assert qmqpc(tmp_path / "absent", b"\n", b"F\0\0").returncode == 61


def test_mini_qmail_inject_through_qmqp(hub, tmp_path):
    """Book chapter 6: a client whose qmail-queue is qmail-qmqpc hands mail to the hub."""
    hub_root, port = hub
    root = client_tree(tmp_path, [f"127.0.0.1:{port}"])
    queue_program = root / "bin" / "qmail-queue"
    queue_program.unlink()
    queue_program.symlink_to(support.prog("qmail-qmqpc"))
    before = qmail_trees.queued(str(hub_root))
    env = support.suite_env(QMAIL_ROOT=root, QMAILQUEUE=None, USER="alice", QMAILHOST=None,
                            QMAILUSER=None, MAILUSER=None, QMAILINJECT=None)
    done = support.run([support.prog("qmail-inject"), "bob@hub.example.com"],
                       input=b"Subject: via qmqp\n\nhi\n", env=env)
    assert done.returncode == 0, done.stderr
    (num,) = new_messages(hub_root, before)
    todo = qmail_trees.todo(str(hub_root), num)
    assert (todo.sender, todo.recipients) == (b"alice@client.example.com", [b"bob@hub.example.com"])
    assert qmail_trees.queued(str(root)) == []  # nothing in the client's own queue


def test_refused_hub_makes_qmail_inject_fail_temporarily(tmp_path):
    root = client_tree(tmp_path, [f"127.0.0.1:{closed_port()}"])
    env = support.suite_env(QMAIL_ROOT=root, QMAILQUEUE=support.prog("qmail-qmqpc"))
    done = support.run([support.prog("qmail-inject"), "bob@hub"], input=b"\n", env=env)
    assert (done.returncode, done.stderr) == (
        111, b"qmail-inject: fatal: connection to mail server rejected (#4.4.1)\n")
