"""qmail-queued, the injection service: an ordinary user's qmail-queue that cannot write
the queue hands the message over a unix socket; the uid comes from the kernel; with the
service down the caller gets a temporary code and nothing is queued or lost."""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from qmail.formats import envelope
from qmail.queue import qmail_queued, queue_layout
from tests import qmail_trees, support

needs_root = pytest.mark.skipif(os.getuid() != 0, reason="two users need root")


@pytest.fixture
def shared_tree():
    """A tree owned by root (the queue writer) in a directory every user can reach."""
    base = Path(tempfile.mkdtemp(prefix="qmail-queued-"))
    base.chmod(0o755)
    try:
        yield qmail_trees.embedded_tree(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def start_service(root):
    sock = queue_layout.service_socket(root)
    proc = support.Proc([support.prog("unixserver"), "-p", "0666", sock,
                         support.prog("qmail-queued")], env=support.suite_env(QMAIL_ROOT=root))
    support.wait_for(lambda: os.path.exists(sock), what="service socket")
    return proc


def queue_as(user, root, message: bytes, env_bytes: bytes, extra_env=None) -> int:
    with tempfile.TemporaryFile() as m, tempfile.TemporaryFile() as e:
        m.write(message)
        e.write(env_bytes)
        m.seek(0)
        e.seek(0)
        argv = [support.prog("qmail-queue")]
        if user is not None:
            argv = support.as_user(argv, user)
        done = subprocess.run(argv, stdin=m, stdout=e, stderr=subprocess.PIPE, timeout=30,
                              env=support.suite_env(QMAIL_ROOT=root, **(extra_env or {})))
    return done.returncode


def talk(root, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(queue_layout.service_socket(root))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return s.recv(100)


@needs_root
def test_ordinary_user_queues_through_the_service_with_its_kernel_uid(shared_tree):
    root = shared_tree
    user = support.unprivileged_user()
    start_service(root)
    code = queue_as(user, root, b"Subject: via service\n\nbody\n",
                    envelope.encode("u@x", ["demo@mail.example.com"]),
                    extra_env={"UNIXREMOTEEUID": "0"})  # a forgery the service never sees
    assert code == 0
    [num] = qmail_trees.queued(root)
    data = qmail_trees.message(root, num)
    assert f"invoked by uid {user.pw_uid}); ".encode() in data.split(b"\n")[0]
    assert data.endswith(b"\nSubject: via service\n\nbody\n")
    todo = qmail_trees.todo(root, num)
    assert (todo.uid, todo.sender, todo.recipients) == (user.pw_uid, b"u@x",
                                                          [b"demo@mail.example.com"])
    assert os.stat(queue_layout.mess(queue_layout.queue_dir(root), num)).st_uid == 0


@needs_root
def test_service_down_is_temporary_74_and_nothing_is_queued(shared_tree):
    user = support.unprivileged_user()
    assert queue_as(user, shared_tree, b"x", envelope.encode("s", ["r"])) == 74
    assert qmail_trees.queued(shared_tree) == []


@needs_root
@pytest.mark.parametrize("env_bytes, code", [
    (b"Xs\0\0", 91), (b"Fs\0T" + b"a" * 1003 + b"\0\0", 11), (b"Fs\0Tr\0", 54)])
def test_bad_envelope_from_an_ordinary_user_is_refused_and_nothing_queued(
        shared_tree, env_bytes, code):
    user = support.unprivileged_user()
    start_service(shared_tree)
    assert queue_as(user, shared_tree, b"x", env_bytes) == code
    assert qmail_trees.queued(shared_tree) == []
    # the service saw the message, then the connection end without an envelope: it
    # removes what it wrote
    support.wait_for(lambda: qmail_trees.files(shared_tree, "mess") == [], what="cleanup")


def test_service_answers_0_and_queues_a_well_framed_message(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    start_service(root)
    answer = talk(root, b"6:Hello ,6:world\n,0:," + envelope.encode("s@x", ["r@x"]))
    assert answer == b"0\n"
    [num] = qmail_trees.queued(root)
    assert qmail_trees.message(root, num).split(b"\n", 1)[1] == b"Hello world\n"
    assert qmail_trees.todo(root, num).uid == os.getuid()


@pytest.mark.parametrize("data, code", [
    (b"5:Hello;0:,Fs\0Tr\0\0", b"54\n"),           # chunk without its comma
    (b"x:Hello,0:,Fs\0Tr\0\0", b"54\n"),           # length not a number
    (b"99:short", b"54\n"),                        # connection closed inside a chunk
    (b"12345678901:x", b"54\n"),                   # length too long to be one
    (b"5:Hello,0:,Xs\0\0", b"91\n"),               # framing fine, envelope bad
    (b"5:Hello,0:,Fs\0Tr\0", b"54\n"),             # envelope without terminator
])
def test_malformed_input_is_answered_with_a_code_and_nothing_is_queued(tmp_path, data, code):
    root = qmail_trees.embedded_tree(tmp_path)
    start_service(root)
    assert talk(root, data) == code
    assert qmail_trees.queued(root) == []
    assert qmail_trees.files(root, "mess") == []


def test_without_peer_credentials_nothing_is_queued(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    done = support.run([support.prog("qmail-queued")],
                       input=b"1:x,0:," + envelope.encode("s", ["r"]),
                       env=support.suite_env(QMAIL_ROOT=root, UNIXREMOTEEUID=None))
    assert done.stdout == b"81\n"
    assert qmail_trees.queued(root) == []


def frames(chunks) -> bytes:
    """What qmail-queue sends for these message chunks (the end marker included)."""
    return b"".join(b"%d:%s," % (len(c), c) for c in chunks if c) + b"0:,"


@given(st.lists(st.binary(max_size=300), max_size=8), st.binary(max_size=50))
@settings(max_examples=60, deadline=None)
def test_framing_reader_returns_the_message_then_the_bytes_after_it(chunks, rest):
    a, b = socket.socketpair()
    try:
        a.sendall(frames(chunks) + rest)
        a.shutdown(socket.SHUT_WR)
        reader = qmail_queued.Reader(b.fileno())
        got = []
        for _ in range(len(chunks) + 1):
            piece = reader.message_chunk()
            if not piece:
                break
            got.append(piece)
        assert b"".join(got) == b"".join(chunks)
        tail = b""
        for _ in range(len(rest) + 1):
            piece = reader.envelope_chunk()
            if not piece:
                break
            tail += piece
        assert tail == rest
    finally:
        a.close()
        b.close()


@given(st.binary(max_size=40))
@settings(max_examples=60, deadline=None)
def test_framing_reader_on_garbage_ends_or_raises_a_read_error(data):
    a, b = socket.socketpair()
    try:
        a.sendall(data)
        a.shutdown(socket.SHUT_WR)
        reader = qmail_queued.Reader(b.fileno())
        for _ in range(len(data) + 2):
            try:
                if not reader.message_chunk():
                    break
            except OSError:
                break
    finally:
        a.close()
        b.close()
