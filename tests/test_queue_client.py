"""qmail/queue/queue_client.py: qmail.c's side of qmail-queue, the one place exit codes become
reply text; QMAILQUEUE; warm and cold qmail-queue; fd 6 custom text for exit 82."""

import os

import pytest

from qmail.queue import queue_client
from tests import qmail_trees, support

TABLE = [
    (11, True, "envelope address too long for qq (#5.1.3)"),
    (31, True, "mail server permanently rejected message (#5.3.0)"),
    (51, False, "qq out of memory (#4.3.0)"),
    (52, False, "qq timeout (#4.3.0)"),
    (53, False, "qq write error or disk full (#4.3.0)"),
    (54, False, "qq read error (#4.3.0)"),
    (55, False, "qq unable to read configuration (#4.3.0)"),
    (56, False, "qq trouble making network connection (#4.3.0)"),
    (61, False, "qq trouble in home directory (#4.3.0)"),
    (62, False, "qq trouble creating files in queue (#4.3.0)"),
    (63, False, "qq trouble creating files in queue (#4.3.0)"),
    (64, False, "qq trouble creating files in queue (#4.3.0)"),
    (65, False, "qq trouble creating files in queue (#4.3.0)"),
    (66, False, "qq trouble creating files in queue (#4.3.0)"),
    (71, False, "mail server temporarily rejected message (#4.3.0)"),
    (72, False, "connection to mail server timed out (#4.4.1)"),
    (73, False, "connection to mail server rejected (#4.4.1)"),
    (74, False, "communication with mail server failed (#4.4.2)"),
    (81, False, "qq internal bug (#4.3.0)"),
    (91, False, "qq internal bug (#4.3.0)"),
    (120, False, "unable to exec qq (#4.3.0)"),
    (12, True, "qq permanent problem (#5.3.0)"),
    (40, True, "qq permanent problem (#5.3.0)"),
    (41, False, "qq temporary problem (#4.3.0)"),
    (82, False, "qq temporary problem (#4.3.0)"),  # 82 without custom text
    (100, False, "qq temporary problem (#4.3.0)"),
]


def fake_queue(tmp_path, script: str) -> str:
    path = tmp_path / "fake-queue"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("code, permanent, text", TABLE)
def test_exit_code_becomes_qmail_reply_text(code, permanent, text):
    assert queue_client.result_of(code) == queue_client.Result(code, permanent, text)


@pytest.mark.parametrize("code, permanent, text", TABLE[:6] + TABLE[-4:])
def test_qmailqueue_program_exit_code_reaches_the_caller(tmp_path, code, permanent, text):
    env = support.suite_env(QMAILQUEUE=fake_queue(tmp_path, f"cat >/dev/null; exit {code}\n"))
    result = queue_client.enqueue(b"x\n", "a@b", ["c@d"], root=str(tmp_path), env=env)
    assert result == queue_client.Result(code, permanent, text)


def test_qmailqueue_program_gets_message_on_0_and_envelope_on_1(tmp_path):
    script = f"cat >{tmp_path}/m; cat <&1 >{tmp_path}/e; exit 0\n"
    env = support.suite_env(QMAILQUEUE=fake_queue(tmp_path, script))
    result = queue_client.enqueue(b"Subject: s\n\nbody\n", "a@b", ["c@d", "e@f"],
                                  root=str(tmp_path), env=env)
    assert result == queue_client.Result(0, False, "")
    assert (tmp_path / "m").read_bytes() == b"Subject: s\n\nbody\n"
    assert (tmp_path / "e").read_bytes() == b"Fa@b\0Tc@d\0Te@f\0\0"


@pytest.mark.parametrize("custom, permanent, text", [
    ("Dno viruses here (#5.7.1)", True, "no viruses here (#5.7.1)"),
    ("Ztry again later (#4.3.0)", False, "try again later (#4.3.0)"),
    ("Xnot a kind", False, "qq temporary problem (#4.3.0)"),
    ("D", False, "qq temporary problem (#4.3.0)"),
])
def test_exit_82_takes_the_reply_from_descriptor_6(tmp_path, custom, permanent, text):
    script = f"cat >/dev/null; printf '%s' '{custom}' >&6; exit 82\n"
    env = support.suite_env(QMAILQUEUE=fake_queue(tmp_path, script))
    result = queue_client.enqueue(b"x", "a", ["b"], root=str(tmp_path), env=env)
    assert result == queue_client.Result(82, permanent, text)


def test_crashed_queue_program_is_temporary(tmp_path):
    env = support.suite_env(QMAILQUEUE=fake_queue(tmp_path, "kill -9 $$\n"))
    result = queue_client.enqueue(b"x", "a", ["b"], root=str(tmp_path), env=env)
    assert (result.permanent, result.text) == (False, "qq crashed (#4.3.0)")


def test_success_without_reading_the_whole_message_is_a_read_error(tmp_path):
    env = support.suite_env(QMAILQUEUE=fake_queue(tmp_path, "exit 0\n"))
    result = queue_client.enqueue(b"x" * (4 << 20), "a", ["b"], root=str(tmp_path), env=env)
    assert (result.code, result.permanent, result.text) == (0, False, "qq read error (#4.3.0)")


def test_unrunnable_qmailqueue_is_temporary(tmp_path):
    env = support.suite_env(QMAILQUEUE=str(tmp_path / "missing"))
    result = queue_client.enqueue(b"x", "a", ["b"], root=str(tmp_path), env=env)
    assert result.code != 0 and not result.permanent


@pytest.mark.parametrize("warm", ["1", "0"])
def test_installed_qmail_queue_is_used_warm_or_cold(tmp_path, warm):
    root = qmail_trees.embedded_tree(tmp_path)
    env = support.suite_env(UCSPI_WARMSTART=warm, QMAILQUEUE=None, QMAIL_ROOT=None)
    result = queue_client.enqueue(b"Subject: q\n\nq\n", "a@b", ["demo@mail.example.com"],
                                  root=root, env=env)
    assert result.ok
    [num] = qmail_trees.queued(root)
    assert qmail_trees.message(root, num).endswith(b"\nSubject: q\n\nq\n")
    assert qmail_trees.todo(root, num).recipients == [b"demo@mail.example.com"]


def test_streaming_queue_puts_chunks_in_order(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    queue = queue_client.Queue(root, support.suite_env(QMAILQUEUE=None))
    for i in range(100):
        queue.put(b"line %d\n" % i)
    queue.from_("s@x")
    queue.to("r1@x")
    queue.to(b"r2@\xe9")
    assert queue.close().ok
    [num] = qmail_trees.queued(root)
    assert qmail_trees.message(root, num).split(b"\n", 1)[1] == b"".join(
        b"line %d\n" % i for i in range(100))
    assert qmail_trees.todo(root, num).recipients == [b"r1@x", b"r2@\xe9"]


def test_fail_turns_success_into_a_temporary_error(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    queue = queue_client.Queue(root, support.suite_env(QMAILQUEUE=None))
    queue.put(b"x")
    queue.fail()
    queue.from_("s")
    queue.to("r")
    result = queue.close()
    assert (result.permanent, result.text) == (False, "qq read error (#4.3.0)")


def test_queue_errors_come_back_as_text(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    result = queue_client.enqueue(b"x", "a" * 1003, ["b"], root=root,
                                  env=support.suite_env(QMAILQUEUE=None))
    assert result == queue_client.Result(11, True, "envelope address too long for qq (#5.1.3)")


def test_no_descriptor_of_the_caller_leaks_into_the_queue_program(tmp_path):
    marker = tmp_path / "marker-file"
    marker.write_text("")
    keep = os.open(marker, os.O_RDONLY)  # not inheritable, as Python opens files
    try:
        script = f"cat >/dev/null; ls -l /proc/$$/fd >{tmp_path}/fds; exit 0\n"
        env = support.suite_env(QMAILQUEUE=fake_queue(tmp_path, script))
        assert queue_client.enqueue(b"x", "a", ["b"], root=str(tmp_path), env=env).ok
    finally:
        os.close(keep)
    listing = (tmp_path / "fds").read_text()
    assert " 6 -> pipe:" in listing
    assert "marker-file" not in listing


def test_unrunnable_queue_program_is_unable_to_exec_qq(tmp_path):
    # qmail.c's child exits 120 when it cannot exec qmail-queue: "unable to exec qq".
    from qmail.queue import queue_client
    from tests.qmail_trees import embedded_tree
    root = embedded_tree(tmp_path)
    env = support.suite_env(QMAILQUEUE=str(tmp_path / "no-such-program"))
    result = queue_client.enqueue(b"Subject: x\n\nbody\n", "a@b", ["c@d"], root=root, env=env)
    assert (result.code, result.permanent, result.text) == (120, False, "unable to exec qq (#4.3.0)")
