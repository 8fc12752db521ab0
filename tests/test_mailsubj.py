"""mailsubj: a message with a Subject: and To: made from the arguments, via qmail-inject."""

from pathlib import Path

from tests import qmail_trees, support
from tests.test_qmail_inject import FAKE_QUEUE, INJECT_VARIABLES


def run(tmp_path, *args, input=b"", **extra):
    root = Path(qmail_trees.embedded_tree(tmp_path, fqdn="mx.example.com"))
    fake = tmp_path / "fakeq"
    fake.write_text(FAKE_QUEUE)
    fake.chmod(0o755)
    env = support.suite_env(**{**{name: None for name in INJECT_VARIABLES},
                               "QMAIL_ROOT": root, "USER": "alice", "QMAILQUEUE": fake,
                               "FAKEQ_DIR": tmp_path, **extra})
    return support.run([support.prog("mailsubj"), *args], input=input, env=env)


def test_subject_and_recipients_from_the_arguments(tmp_path):
    done = run(tmp_path, "weekly report", "boss@corp.example", "me", input=b"all fine\n")
    assert done.returncode == 0, done.stderr
    mess = (tmp_path / "message").read_bytes()
    assert b"\nSubject: weekly report\nTo: boss@corp.example, me@mx.example.com\n\nall fine\n" in mess
    # qmail-inject collects a field's addresses right to left
    assert (tmp_path / "envelope").read_bytes() == (
        b"Falice@mx.example.com\0Tme@mx.example.com\0Tboss@corp.example\0\0")


def test_exit_code_is_qmail_injects(tmp_path):
    done = run(tmp_path, "s", "a@b", FAKEQ_EXIT="31")
    assert done.returncode == 100
    assert done.stderr == b"qmail-inject: fatal: mail server permanently rejected message (#5.3.0)\n"
