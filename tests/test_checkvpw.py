"""checkvpw: the checkpassword interface for virtual users (descriptor 3, exit codes 1, 2,
111, the next program run as the virtual-mail owner in the user's directory with USER,
HOME and SHELL), equal cost for unknown users, and its callers: qmail-smtpd's AUTH and
qmail-popup + qmail-pop3d through tcpserver."""

import os
import poplib
import smtplib
import statistics
import time

import pytest

from qmail.auth import checkpw
from qmail.virtual import checkvpw
from tests import support
from tests.vdomain_trees import (ADDRESS, PASSWORD, bare_tree, domain_dir, env,  # noqa: F401
                                 maildir, record, run_checkvpw, vtree)

SHOW = "pwd; echo \"$USER|$HOME|$SHELL\"; id -u; id -g; id -G"


def check(root, user, data: bytes | None, prog=("/bin/sh", "-c", SHOW), as_root=False):
    return run_checkvpw(root, data, prog, None if as_root else user)


def shown(root, user, address=ADDRESS) -> list[str]:
    u, d = address.split("@")
    home = str(domain_dir(root, d) / u)
    return [home, f"{address}|{home}|/bin/false", str(user.pw_uid), str(user.pw_gid),
            str(user.pw_gid)]


@pytest.mark.parametrize("login", [b"bob@example.org", b"bob%example.org", b"BOB@Example.ORG"])
def test_right_password_runs_the_program_in_the_users_directory(vtree, login):
    root, user = vtree
    done = check(root, user, record(login, PASSWORD))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == shown(root, user)


@pytest.mark.parametrize("login, password", [
    (b"bob@example.org", "wrong"), (b"bob@example.org", ""), (b"nobody@example.org", PASSWORD),
    (b"bob@nowhere.example", PASSWORD), (b"bob", PASSWORD), (b"../bob@example.org", PASSWORD),
    (b"bob@example.org/..", PASSWORD), (b"\xff@example.org", PASSWORD),
    (b"bob@example.org", PASSWORD + "x"),
])
def test_wrong_logins_exit_1_without_running_the_program(vtree, login, password):
    root, user = vtree
    done = check(root, user, record(login, password))
    assert (done.returncode, done.stdout) == (1, b"")


@pytest.mark.parametrize("data, prog", [
    (None, ("/bin/true",)),                             # no descriptor 3
    (record(b"bob@example.org", PASSWORD), ()),         # no program
    (b"bob@example.org\0" + b"x" * 600 + b"\0\0", ("/bin/true",)),  # more than 512 bytes
    (b"bob@example.org", ("/bin/true",)),              # no NUL-terminated fields
])
def test_misuse_exits_2(vtree, data, prog):
    root, user = vtree
    assert check(root, user, data, prog).returncode == 2


def test_an_unreadable_database_is_temporary(vtree):
    root, user = vtree
    cdb = domain_dir(root) / ".passwd.cdb"
    cdb.write_bytes(b"not a cdb")
    assert check(root, user, record(ADDRESS.encode(), PASSWORD)).returncode == 111


@pytest.mark.parametrize("login", [ADDRESS.encode(), b"nobody@example.org"])
def test_argon2_without_memory_is_temporary_not_a_wrong_password(vtree, login):
    """70 MB of address space starts the interpreter but not argon2's 64 MiB: 111, for a
    known user as for an unknown one."""
    root, user = vtree
    done = run_checkvpw(root, record(login, PASSWORD), ("/bin/true",), user, vm_kb=70000)
    assert done.returncode == 111, done.stderr


def test_argon2_runs_under_softlimits_100_megabytes(vtree):
    """One lane, so one thread: the 100 MB the service templates give softlimit -m is
    enough (four lanes' threads would each want a stack of the whole limit)."""
    root, user = vtree
    done = run_checkvpw(root, record(ADDRESS.encode(), PASSWORD), ("/bin/true",), user,
                        vm_kb=100000)
    assert done.returncode == 0, done.stderr


def test_a_program_that_cannot_run_is_temporary(vtree):
    root, user = vtree
    done = check(root, user, record(ADDRESS.encode(), PASSWORD), ("/nonexistent/prog",))
    assert done.returncode == 111


def test_unknown_user_costs_what_a_wrong_password_costs(vtree, monkeypatch):
    """The decoy check keeps an unknown user from answering sooner than a known one."""
    root, _ = vtree
    monkeypatch.setenv("QMAIL_ROOT", root)

    def cost(login: bytes) -> float:
        started = time.perf_counter()
        with pytest.raises(checkpw.Refused) as refused:
            checkvpw.verify(checkpw.Request(login, b"wrong password", b""))
        assert refused.value.code == checkpw.BAD_LOGIN
        return time.perf_counter() - started

    wrong = statistics.median(cost(b"bob@example.org") for _ in range(3))
    unknown = statistics.median(cost(b"nobody@example.org") for _ in range(3))
    no_domain = statistics.median(cost(b"bob@nowhere.example") for _ in range(3))
    for other in (unknown, no_domain):
        assert 0.6 < other / wrong < 1.6, (wrong, unknown, no_domain)


@pytest.mark.skipif(os.getuid() != 0, reason="changing to the owner's ids needs root")
def test_root_becomes_the_virtual_mail_owner(vtree):
    root, user = vtree
    done = check(root, user, record(ADDRESS.encode(), PASSWORD), as_root=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == shown(root, user)


@pytest.mark.skipif(os.getuid() != 0, reason="a root-owned domain directory needs root")
def test_a_domain_owned_by_root_never_logs_in(vtree):
    root, user = vtree
    os.chown(domain_dir(root), 0, 0)
    done = check(root, user, record(ADDRESS.encode(), PASSWORD), as_root=True)
    assert (done.returncode, done.stdout) == (1, b"")


def test_under_dovecot_the_owner_goes_back_as_userdb_fields_and_ids_stay(vtree):
    """Dovecot sets ORIG_UID and refuses a checkpassword that changes ids: checkvpw
    reports the owner in userdb_uid and userdb_gid, listed in EXTRA, for
    checkpassword-reply."""
    root, user = vtree
    show = 'id -u; echo "$userdb_uid|$userdb_gid|$EXTRA|$USER"; pwd'
    me = os.getuid()
    done = run_checkvpw(root, record(ADDRESS.encode(), PASSWORD), ("/bin/sh", "-c", show),
                        None, ORIG_UID=str(me), EXTRA="userdb_quota_rule")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        str(me), f"{user.pw_uid}|{user.pw_gid}|userdb_quota_rule userdb_uid userdb_gid|{ADDRESS}",
        str(domain_dir(root) / "bob")]


# --- callers -----------------------------------------------------------------------


def test_smtp_auth_plain_with_a_virtual_user_through_qmail_smtpd(vtree):
    root, user = vtree
    argv = support.as_user([support.prog("tcpserver"), "-1", "-RHl0", "127.0.0.1", "0",
                            support.prog("qmail-smtpd"), "mx.example.org",
                            support.prog("checkvpw"), "/bin/true"], user)
    proc = support.Proc(argv, env=env(root, FORCETLS="0", RELAYCLIENT=None))
    try:
        port = int(proc.out.wait_line(lambda line: line.strip().isdigit(), timeout=15))
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.ehlo("client")
            assert "PLAIN" in smtp.esmtp_features["auth"]
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                smtp.login(ADDRESS, "wrong", initial_response_ok=True)
            assert refused.value.smtp_code == 535
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.ehlo("client")
            smtp.auth("PLAIN", lambda challenge=None: f"\0{ADDRESS}\0{PASSWORD}")
            # authenticated: relaying to a foreign domain is allowed
            assert smtp.sendmail(ADDRESS, ["someone@foreign.example"], b"Subject: x\r\n\r\nhi\r\n") == {}
    finally:
        proc.stop()


def test_pop3_login_as_a_virtual_user_through_qmail_popup(vtree):
    root, user = vtree
    box = maildir(root)
    body = b"Subject: virtual\r\n\r\nline one\r\n.dotted\r\n"
    name = box / "new" / "100.M1P1.host"
    name.write_bytes(body.replace(b"\r\n", b"\n"))
    os.chown(name, user.pw_uid, user.pw_gid)
    os.utime(name, (time.time() - 60, time.time() - 60))  # not this second's: pop3d lists it
    argv = support.as_user([support.prog("tcpserver"), "-1", "-RHl0", "127.0.0.1", "0",
                            support.prog("qmail-popup"), "mx.example.org",
                            support.prog("checkvpw"), support.prog("qmail-pop3d"), "Maildir"],
                           user)
    proc = support.Proc(argv, env=env(root))
    try:
        port = int(proc.out.wait_line(lambda line: line.strip().isdigit(), timeout=15))
        pop = poplib.POP3("127.0.0.1", port, timeout=30)
        pop.user(ADDRESS)
        with pytest.raises(poplib.error_proto):
            pop.pass_("wrong")
        pop.close()
        pop = poplib.POP3("127.0.0.1", port, timeout=30)
        pop.user("bob%example.org")
        pop.pass_(PASSWORD)
        assert pop.stat()[0] == 1
        _, lines, _ = pop.retr(1)
        # qmail-pop3d ends every message with CRLF before the final dot, as qmail's does
        assert lines == body.split(b"\r\n")
        pop.dele(1)
        pop.quit()
        assert os.listdir(box / "new") == [] and os.listdir(box / "cur") == []
    finally:
        proc.stop()
