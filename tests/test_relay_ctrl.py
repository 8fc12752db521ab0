"""relay-ctrl-allow and relay-ctrl-check: the record of a POP login, its expiry, bad
addresses, failures that never fail the login, concurrent logins; and the book's whole
POP-before-SMTP chain under tcpserver."""

import os
import poplib
import threading
import time

import pytest

from tests import pop3_rig, support
from tests.pop3_rig import PASSWORD, USER
from tests.ucspi_servers import exchange, start_tcpserver

SHOW = ["sh", "-c", 'echo "RELAYCLIENT=${RELAYCLIENT-unset}"']


def env(directory, **extra):
    settings = dict(RELAY_CTRL_DIR=directory, TCPREMOTEIP="192.0.2.7", RELAYCLIENT=None,
                    RELAY_CTRL_EXPIRY=None, RELAY_CTRL_RELAYCLIENT=None)
    return support.suite_env(**{**settings, **extra})


def allow(directory, **extra):
    return support.run([support.prog("relay-ctrl-allow"), "sh", "-c", "echo ran; exit 3"],
                       env=env(directory, **extra))


def check(directory, **extra):
    return support.run([support.prog("relay-ctrl-check"), *SHOW], env=env(directory, **extra))


def test_allow_records_the_address_and_runs_the_program(tmp_path):
    result = allow(tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (3, b"ran\n", b"")
    path = tmp_path / "192.0.2.7"
    assert path.exists() and path.stat().st_mode & 0o777 == 0o666
    old = time.time() - 500
    os.utime(path, (old, old))
    allow(tmp_path)
    assert time.time() - path.stat().st_mtime < 5  # renewed


def test_allow_canonical_ipv6_name(tmp_path):
    allow(tmp_path, TCPREMOTEIP="2001:DB8:0:0::1")
    assert os.listdir(tmp_path) == ["2001:db8::1"]


@pytest.mark.parametrize("remote", ["../../etc/x", "", "192.0.2.7/x", "not-an-ip"])
def test_allow_bad_address_warns_and_still_logs_in(tmp_path, remote):
    result = allow(tmp_path, TCPREMOTEIP=remote)
    assert (result.returncode, result.stdout) == (3, b"ran\n")
    assert result.stderr.startswith(b"relay-ctrl-allow: warning: TCPREMOTEIP ")
    assert os.listdir(tmp_path) == []


def test_allow_without_directory_or_unwritable_still_logs_in(tmp_path):
    result = support.run([support.prog("relay-ctrl-allow"), "true"],
                         env=env(tmp_path, RELAY_CTRL_DIR=None))
    assert (result.returncode, result.stderr) == (0, b"relay-ctrl-allow: warning: RELAY_CTRL_DIR not set: nothing recorded\n")
    result = allow(tmp_path / "missing")
    assert (result.returncode, result.stdout) == (3, b"ran\n")
    assert result.stderr.startswith(b"relay-ctrl-allow: warning: unable to record ")


def test_usage_and_unrunnable_program(tmp_path):
    for name in ("relay-ctrl-allow", "relay-ctrl-check"):
        result = support.run([support.prog(name)], env=env(tmp_path))
        assert (result.returncode, result.stderr) == (100, f"{name}: usage: {name} prog [args...]\n".encode())
        result = support.run([support.prog(name), "/nonexistent/prog"], env=env(tmp_path))
        assert result.returncode == 111
        assert result.stderr.startswith(f"{name}: fatal: unable to run /nonexistent/prog".encode())


def test_concurrent_logins_from_one_address(tmp_path):
    failures = []

    def login():
        result = allow(tmp_path)
        if result.returncode != 3 or result.stderr:
            failures.append(result)

    threads = [threading.Thread(target=login) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    assert os.listdir(tmp_path) == ["192.0.2.7"]


def test_check_fresh_expired_and_missing(tmp_path):
    assert check(tmp_path).stdout == b"RELAYCLIENT=unset\n"
    allow(tmp_path)
    assert check(tmp_path).stdout == b"RELAYCLIENT=\n"
    assert check(tmp_path, RELAY_CTRL_RELAYCLIENT="@relay").stdout == b"RELAYCLIENT=@relay\n"
    assert check(tmp_path, TCPREMOTEIP="192.0.2.8").stdout == b"RELAYCLIENT=unset\n"
    path = tmp_path / "192.0.2.7"
    old = time.time() - 600
    os.utime(path, (old, old))
    assert check(tmp_path).stdout == b"RELAYCLIENT=\n"              # 600 s < 900 s
    assert check(tmp_path, RELAY_CTRL_EXPIRY="300").stdout == b"RELAYCLIENT=unset\n"
    assert not path.exists()                                        # the expired file removed
    allow(tmp_path)
    old = time.time() - 1000
    os.utime(path, (old, old))
    assert check(tmp_path).stdout == b"RELAYCLIENT=unset\n"          # default 900 s


def test_check_leaves_a_set_relayclient_and_logs(tmp_path):
    result = check(tmp_path, RELAYCLIENT="x", RELAY_CTRL_LOG_IPS="1")
    assert result.stdout == b"RELAYCLIENT=x\n"
    assert result.stderr == b"relay-ctrl-check: 192.0.2.7: did not set RELAYCLIENT: RELAYCLIENT already set\n"
    allow(tmp_path)
    result = check(tmp_path, RELAY_CTRL_LOG_IPS="1")
    assert result.stderr == b"relay-ctrl-check: 192.0.2.7: set RELAYCLIENT: recorded\n"


def test_check_ignores_a_file_in_the_future(tmp_path):
    allow(tmp_path)
    future = time.time() + 3600
    os.utime(tmp_path / "192.0.2.7", (future, future))
    assert check(tmp_path).stdout == b"RELAYCLIENT=unset\n"


def test_pop_before_smtp_chain(tmp_path):
    """tcpserver ... qmail-popup HOST checkpassword relay-ctrl-allow qmail-pop3d Maildir;
    then tcpserver ... relay-ctrl-check PROGRAM sees RELAYCLIENT for 127.0.0.1."""
    user = pop3_rig.PopUser()
    try:
        directory = user.base / "relay"
        directory.mkdir()
        os.chmod(directory, 0o1777)
        relay_env = dict(RELAY_CTRL_DIR=directory, RELAYCLIENT=None)
        _, smtp_port = start_tcpserver([], [support.prog("relay-ctrl-check"), *SHOW],
                                       env=support.suite_env(**relay_env), cwd="/")
        assert exchange(smtp_port) == b"RELAYCLIENT=unset\n"
        _, pop_port = user.start(middle=[support.prog("relay-ctrl-allow")], env=user.env(**relay_env))
        p = poplib.POP3("127.0.0.1", pop_port, timeout=30)
        p.user(USER)
        assert p.pass_(PASSWORD) == b"+OK "
        assert p.stat() == (0, 0)
        p.quit()
        assert os.listdir(directory) == ["127.0.0.1"]
        assert os.stat(directory / "127.0.0.1").st_uid == user.uid
        assert exchange(smtp_port) == b"RELAYCLIENT=\n"
        # a failed login records nothing
        os.unlink(directory / "127.0.0.1")
        p = poplib.POP3("127.0.0.1", pop_port, timeout=30)
        p.user(USER)
        with pytest.raises(poplib.error_proto):
            p.pass_("wrong")
        assert os.listdir(directory) == []
    finally:
        user.remove()
