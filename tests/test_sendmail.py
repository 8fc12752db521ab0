"""sendmail: qmail's sendmail interface over qmail-inject, qmail-smtpd and qmail-qread."""

from pathlib import Path

import pytest

from tests import qmail_trees, support
from tests.test_qmail_inject import FAKE_QUEUE, INJECT_VARIABLES

PRINTER = """#!/bin/sh
# a stand-in program: shows how sendmail ran it
echo "argv: $0 $*"
echo "cwd: $(pwd)"
for v in PROTO RELAYCLIENT DATABYTES TCPLOCALIP TCPLOCALHOST TCPREMOTEIP TCPREMOTEHOST TCPREMOTEINFO MAILNAME; do
  eval "echo $v=\\${$v-unset}"
done
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("sendmail")
    root = Path(qmail_trees.embedded_tree(base, fqdn="mx.example.com"))
    (base / "fakeq").write_text(FAKE_QUEUE)
    (base / "fakeq").chmod(0o755)
    return root


@pytest.fixture
def stand_in_tree(tmp_path):
    """A root whose bin/ has stand-ins printing their arguments and environment."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    for name in ("qmail-inject", "qmail-smtpd", "qmail-qread"):
        (root / "bin" / name).write_text(PRINTER)
        (root / "bin" / name).chmod(0o755)
    return root


def env_for(root, **extra):
    clear = {name: None for name in INJECT_VARIABLES + ("PROTO", "RELAYCLIENT", "DATABYTES")}
    clear.update(QMAIL_ROOT=str(root), USER="alice")
    clear.update(extra)
    return support.suite_env(**clear)


def sendmail(root, *args, input=b"", **env):
    return support.run([support.prog("sendmail"), *args], input=input, env=env_for(root, **env))


def lines(done) -> list[str]:
    return done.stdout.decode().splitlines()


@pytest.mark.parametrize("args, inject_args", [
    ([], "-a --"),
    (["a@b"], "-a -- a@b"),
    (["-t"], "-H --"),
    (["-t", "a@b"], "-H -- a@b"),
    (["-f", "s@x", "a"], "-a -f s@x -- a"),
    (["-fs@x", "a"], "-a -f s@x -- a"),
    (["-oi", "-odb", "-oem", "-i", "-v", "-m", "-x", "-e", "q", "-pp", "-BB", "-bm", "a"], "-a -- a"),
    (["-Efoo", "-J", "a"], "-a -- a"),
    (["--", "-notanoption"], "-a -- -notanoption"),
])
def test_options_become_qmail_inject_arguments(stand_in_tree, args, inject_args):
    done = sendmail(stand_in_tree, *args)
    assert done.returncode == 0, done.stderr
    assert lines(done)[0] == f"argv: {stand_in_tree}/bin/qmail-inject {inject_args}"
    assert lines(done)[1] == f"cwd: {stand_in_tree}"


def test_capital_f_sets_mailname(stand_in_tree):
    done = sendmail(stand_in_tree, "-F", "Full Name", "a")
    assert "MAILNAME=Full Name" in lines(done)


def test_bs_runs_qmail_smtpd_as_a_local_session(stand_in_tree):
    done = sendmail(stand_in_tree, "-bs")
    out = lines(done)
    assert out[0] == f"argv: {stand_in_tree}/bin/qmail-smtpd "
    assert out[2:] == ["PROTO=TCP", "RELAYCLIENT=", "DATABYTES=0", "TCPLOCALIP=127.0.0.1",
                       "TCPLOCALHOST=localhost", "TCPREMOTEIP=127.0.0.1",
                       "TCPREMOTEHOST=localhost", "TCPREMOTEINFO=sendmail-bs", "MAILNAME=unset"]


def test_bs_keeps_an_existing_tcp_environment(stand_in_tree):
    done = sendmail(stand_in_tree, "-bs", PROTO="TCP", TCPREMOTEIP="10.0.0.1")
    assert "TCPREMOTEIP=10.0.0.1" in lines(done) and "RELAYCLIENT=unset" in lines(done)


def test_bp_and_the_name_mailq_run_qmail_qread(stand_in_tree, tmp_path):
    done = sendmail(stand_in_tree, "-bp")
    assert lines(done)[0] == f"argv: {stand_in_tree}/bin/qmail-qread "
    mailq = tmp_path / "mailq"
    mailq.symlink_to(support.prog("sendmail"))
    done = support.run([str(mailq)], env=env_for(stand_in_tree))
    assert lines(done)[0] == f"argv: {stand_in_tree}/bin/qmail-qread "


def test_the_name_newaliases_is_refused(stand_in_tree, tmp_path):
    newaliases = tmp_path / "newaliases"
    newaliases.symlink_to(support.prog("sendmail"))
    done = support.run([str(newaliases)], env=env_for(stand_in_tree))
    assert (done.returncode, done.stderr) == (
        100, b"sendmail: fatal: please use fastforward/newaliases instead\n")


@pytest.mark.parametrize("args, stderr", [
    (["-z"], b"sendmail: illegal option -- z\n"),
    (["-f"], b"sendmail: option requires an argument -- f\n"),
    (["-bx"], b""),
])
def test_usage_errors(stand_in_tree, args, stderr):
    done = sendmail(stand_in_tree, *args)
    assert done.returncode == 100
    assert done.stderr == stderr + (b"sendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] "
                                    b"[ -bp ] [ -bs ] [ arg ... ]\n")


def test_missing_root_is_reported(tmp_path):
    done = sendmail(tmp_path / "absent", "a")
    assert (done.returncode, done.stderr) == (
        111, b"sendmail: fatal: unable to switch to qmail home directory\n")


def test_missing_qmail_inject_is_reported(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "qmail-inject").write_text("not executable")
    done = sendmail(tmp_path, "a")
    assert (done.returncode, done.stderr) == (111, b"sendmail: fatal: unable to run qmail-inject\n")


def test_t_and_f_queue_for_header_and_arguments(tree, tmp_path):
    env = {"QMAILQUEUE": str(tree.parent / "fakeq"), "FAKEQ_DIR": str(tmp_path)}
    message = b"To: t@a.b\nBcc: hidden@a.b\nSubject: s\n\nbody\n"
    done = sendmail(tree, "-oi", "-t", "-f", "bounce@x.y", "-F", "Al Ice", "extra@c.d",
                    input=message, **env)
    assert done.returncode == 0, done.stderr
    fields = (tmp_path / "envelope").read_bytes().split(b"\0")
    assert fields == [b"Fbounce@x.y", b"Textra@c.d", b"Tt@a.b", b"Thidden@a.b", b"", b""]
    mess = (tmp_path / "message").read_bytes()
    assert b'From: "Al Ice" <alice@mx.example.com>\n' in mess and b"hidden" not in mess


def test_without_t_the_header_recipients_are_ignored(tree, tmp_path):
    env = {"QMAILQUEUE": str(tree.parent / "fakeq"), "FAKEQ_DIR": str(tmp_path)}
    done = sendmail(tree, "only@a.b", input=b"To: t@a.b\n\nbody\n", **env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "envelope").read_bytes().split(b"\0")[1:] == [b"Tonly@a.b", b"", b""]


def test_message_reaches_the_real_queue(tree):
    before = qmail_trees.queued(str(tree))
    done = sendmail(tree, "-t", input=b"To: someone@else.where\n\nhello\n")
    assert done.returncode == 0, done.stderr
    new = [n for n in qmail_trees.queued(str(tree)) if n not in before]
    assert len(new) == 1
    assert qmail_trees.todo(str(tree), new[0]).recipients == [b"someone@else.where"]


def test_bs_speaks_smtp_with_qmail_smtpd(tree):
    before = qmail_trees.queued(str(tree))
    session = (b"HELO me\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@far.away>\r\nDATA\r\n"
               b"Subject: bs\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    done = sendmail(tree, "-bs", input=session)
    replies = done.stdout.split(b"\r\n")
    assert replies[0].startswith(b"220 ")
    assert [r[:3] for r in replies[1:6]] == [b"250", b"250", b"250", b"354", b"250"]
    assert replies[6].startswith(b"221 ")
    new = [n for n in qmail_trees.queued(str(tree)) if n not in before]
    assert len(new) == 1  # RELAYCLIENT is set: a foreign recipient is accepted
    assert b"(sendmail-bs@127.0.0.1)" in qmail_trees.message(str(tree), new[0])


from tests.qmail_trees import user_tree  # noqa: E402,F401  (fixture)


def test_embedded_tree_as_an_ordinary_user(user_tree):  # noqa: F811
    root, user = user_tree
    argv = support.as_user([support.prog("sendmail"), "-t"], user)
    env = env_for(root, USER=user.pw_name)
    done = support.run(argv, input=b"To: demo\nSubject: s\n\nhi\n", env=env)
    assert done.returncode == 0, done.stderr
    (num,) = qmail_trees.queued(root)
    todo = qmail_trees.todo(root, num)
    assert todo.recipients == [b"demo@" + qmail_trees.FQDN.encode()]
    assert todo.sender == user.pw_name.encode() + b"@" + qmail_trees.FQDN.encode()
