"""qmail-install: the embedded tree (what every other qmail test builds on), config-fast's
control files, launchers pinned to ROOT (and warm-started with the pinned root),
idempotence, users/cdb in qmail-newu's format, root mode's owners and modes."""

import os
import pwd
import stat

import cdblib
import pytest
from hypothesis import given, strategies as st

from qmail.config import users
from qmail.queue import queue_client, queue_layout
from qmail.tools.qmail_install import config_fast_domains
from tests import qmail_trees, support
from tests.qmail_trees import user_tree  # noqa: F401  (fixture)
from ucspi.runtime import launch


def read(root, *parts) -> bytes:
    with open(os.path.join(root, *parts), "rb") as f:
        return f.read()


def test_embedded_tree_has_control_files_as_config_fast_writes_them(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path, fqdn="mx.mail.example.org")
    assert read(root, "control", "me") == b"mx.mail.example.org\n"
    assert read(root, "control", "locals") == b"mx.mail.example.org\n"
    assert read(root, "control", "rcpthosts") == b"mx.mail.example.org\n"
    assert read(root, "control", "defaultdomain") == b"example.org\n"
    assert read(root, "control", "plusdomain") == b"example.org\n"


@pytest.mark.parametrize("fqdn, default, plus", [
    ("mail.example.com", "example.com", "example.com"),
    ("a.b.c.d", "c.d", "c.d"),
    ("example.com", "example.com", "example.com"),
    ("localhost", "localhost", "localhost"),
])
def test_config_fast_domain_rules(fqdn, default, plus):
    assert config_fast_domains(fqdn) == (default, plus)


@given(st.lists(st.text("abc", min_size=1, max_size=3), min_size=1, max_size=5))
def test_config_fast_domains_are_suffixes_of_the_name(labels):
    fqdn = ".".join(labels)
    default, plus = config_fast_domains(fqdn)
    assert fqdn.endswith(default) and fqdn.endswith(plus)
    assert plus.count(".") <= 1


def test_embedded_queue_has_every_directory_and_lock_file(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    qdir = queue_layout.queue_dir(root)
    for path, d in queue_layout.all_dirs(qdir):
        st = os.stat(path)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == d.mode, path
    lock = os.path.join(qdir, "lock")
    assert stat.S_ISFIFO(os.stat(os.path.join(lock, "trigger")).st_mode)
    assert read(lock, "tcpto") == bytes(1024)
    assert read(lock, "sendmutex") == b""
    assert len(os.listdir(os.path.join(qdir, "mess"))) == 23


def test_aliases_and_demo_mailbox(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    for name in (".qmail-postmaster", ".qmail-mailer-daemon", ".qmail-root"):
        assert read(root, "alias", name) == b"./Maildir/\n"
    for sub in ("tmp", "new", "cur"):
        assert os.path.isdir(os.path.join(root, "alias", "Maildir", sub))
        assert os.path.isdir(os.path.join(root, "mailboxes", "demo", "Maildir", sub))
    assign = read(root, "users", "assign").decode()
    me = pwd.getpwuid(os.getuid()).pw_name
    home = os.path.join(root, "mailboxes", "demo")
    assert f"=demo:{me}:{os.getuid()}:{os.getgid()}:{home}:::\n" in assign
    assert assign.endswith("\n.\n")


def test_users_cdb_is_in_qmail_newu_format(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    cdb = cdblib.Reader(read(root, "users", "cdb"))
    home = os.path.join(root, "mailboxes", "demo").encode()
    uid, gid = str(os.getuid()).encode(), str(os.getgid()).encode()
    user = pwd.getpwuid(os.getuid()).pw_name.encode()
    assert cdb.get(b"!demo\0") == b"\0".join([user, uid, gid, home, b"", b""])
    assert cdb.get(b"!demo-") == b"\0".join([user, uid, gid, home, b"-", b""])
    assert cdb.get(b"!") == b"\0".join([user, uid, gid, os.path.join(root, "alias").encode(),
                                         b"-", b""])
    assert cdb.get(b"") == b"-"  # qmail-newu's wildcard characters


@pytest.mark.parametrize("local, home, dash, ext", [
    (b"demo", "mailboxes/demo", b"", b""),
    (b"Demo", "mailboxes/demo", b"", b""),
    (b"demo-list", "mailboxes/demo", b"-", b"list"),
    (b"postmaster", "alias", b"-", b"postmaster"),
    (b"mailer-daemon", "alias", b"-", b"mailer-daemon"),
])
def test_demo_and_alias_addresses_resolve_through_users_cdb(tmp_path, local, home, dash, ext):
    root = qmail_trees.embedded_tree(tmp_path)
    found = users.lookup_cdb(read(root, "users", "cdb"), local)
    assert (found.uid, found.home, found.dash, found.ext) == (
        os.getuid(), os.path.join(root, home).encode(), dash, ext)


def test_launchers_pin_root_for_every_qmail_program(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    names = set(os.listdir(os.path.join(root, "bin")))
    assert {"qmail-queue", "qmail-send", "qmail-smtpd", "qmail-inject", "sendmail",
            "qmail-queued", "qmail-install"} <= names
    path = os.path.join(root, "bin", "qmail-queue")
    assert os.access(path, os.X_OK)
    assert launch.identify(path) == "qmail.queue.qmail_queue"
    assert launch.pinned(path) == {"QMAIL_ROOT": root}


@pytest.mark.parametrize("warm", ["1", "0"])
def test_launcher_uses_its_root_whatever_the_environment_says(tmp_path, warm):
    root = qmail_trees.embedded_tree(tmp_path)
    other = qmail_trees.embedded_tree(tmp_path, name="other")
    env = support.suite_env(QMAIL_ROOT=other, UCSPI_WARMSTART=warm,
                            QMAILQUEUE=os.path.join(root, "bin", "qmail-queue"))
    assert queue_client.enqueue(b"x\n", "a", ["b"], root=other, env=env).ok
    assert len(qmail_trees.queued(root)) == 1
    assert qmail_trees.queued(other) == []


def test_warm_started_launcher_child_sees_the_pinned_variable(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        pid = launch.spawn([os.path.join(root, "bin", "qmail-showctl")],
                              support.suite_env(QMAIL_ROOT="/nonexistent"), fds={1: fd})
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert f"qmail home directory: {root}.".encode() in out.read_bytes()


def test_second_run_keeps_what_the_administrator_changed(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    with open(os.path.join(root, "control", "locals"), "wb") as f:
        f.write(b"mail.example.com\nexample.com\n")
    assert queue_client.enqueue(b"x", "a", ["b"], root=root, env=support.suite_env()).ok
    done = support.run([support.prog("qmail-install"), "--embedded", "--fqdn", "other.name", root])
    assert done.returncode == 0, done.stderr
    assert read(root, "control", "locals") == b"mail.example.com\nexample.com\n"
    assert read(root, "control", "me") == b"mail.example.com\n"
    assert len(qmail_trees.queued(root)) == 1  # the queue is untouched


def test_usage_errors_exit_100():
    done = support.run([support.prog("qmail-install"), "--bogus"])
    assert done.returncode == 100
    assert done.stderr.startswith(b"qmail-install: usage: qmail-install ")


def test_embedded_as_root_warns_that_the_tree_delivers_nothing(tmp_path):
    """qmail never delivers as root, so an embedded tree root owns delivers nothing locally
    (qmail-lspawn answers QLX_ROOT: test_qmail_lspawn.py): qmail-install says so loudly."""
    if os.geteuid() != 0:
        pytest.skip("needs root (as an ordinary user --embedded is the only mode)")
    done = support.run([support.prog("qmail-install"), "--embedded", "--fqdn", "x.example",
                        tmp_path / "q"])
    assert done.returncode == 0
    assert b"qmail-install: warning: --embedded as root" in done.stderr
    assert b"refuse every local delivery" in done.stderr


def test_ordinary_user_builds_and_owns_a_tree(user_tree):
    root, user = user_tree
    for path, _ in queue_layout.all_dirs(queue_layout.queue_dir(root)):
        assert os.stat(path).st_uid == user.pw_uid
    assert os.stat(os.path.join(root, "users", "cdb")).st_uid == user.pw_uid
    assert f":{user.pw_uid}:{user.pw_gid}:".encode() in read(root, "users", "assign")


def test_pinned_variables_only_come_from_suite_launchers(tmp_path):
    script = tmp_path / "other"
    script.write_text("#!/bin/sh\nos.environ['QMAIL_ROOT'] = '/x'\n")
    script.chmod(0o755)
    assert launch.pinned(str(script)) == {}
    assert launch.pinned(support.prog("qmail-queue")) == {}  # a plain console script


def test_boot_scripts_are_installed(tmp_path):
    from qmail.tools import boot_scripts
    from tests.qmail_trees import embedded_tree
    root = embedded_tree(tmp_path)
    for name in boot_scripts.DELIVERIES:
        path = os.path.join(root, "boot", name)
        assert os.access(path, os.X_OK), name
        assert open(path).read() == boot_scripts.script(name, root)


@pytest.mark.skipif(os.getuid() != 0, reason="creating qmail's users needs root")
def test_root_install_creates_qmails_users_with_a_path_lacking_sbin(tmp_path):
    """groupadd and useradd are found in /usr/sbin even when root's PATH lacks it (a run
    script's or cron's PATH). A private mount namespace shows qmail-install a copy of /etc
    without qmail's users and groups, so they are created afresh whatever this machine has."""
    from qmail.tools.qmail_install import GROUPS, USERS
    etc = tmp_path / "etc"
    support.run(["cp", "-a", "/etc", str(etc)], timeout=60).check_returncode()
    names = {name for name, _, _ in USERS} | set(GROUPS)
    for table in ("passwd", "group", "shadow", "gshadow"):
        path = etc / table
        if path.exists():
            kept = [line for line in path.read_text().splitlines(keepends=True)
                    if line.split(":", 1)[0] not in names]
            path.write_text("".join(kept))
    root = tmp_path / "qmail"
    done = support.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                        'mount --bind "$0" /etc && exec "$@"', str(etc),
                        support.prog("qmail-install"), "--fqdn", "mx.example.org", str(root)],
                       env=support.suite_env(PATH="/usr/bin:/bin"), timeout=120)
    assert done.returncode == 0, done.stderr
    created = {line.split(":")[0]: line.split(":") for line in (etc / "passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":")[2] for line in (etc / "group").read_text().splitlines()}
    assert set(GROUPS) <= set(groups)
    for user, group, home in USERS:
        assert created[user][3] == groups[group]
        assert created[user][5] == os.path.join(str(root), home)
