"""IMAP for virtual users through a real Dovecot: a private Dovecot (its own config, base
and state directories, log and high port) whose passdb is checkpassword -> our checkvpw
and whose userdb is prefetch, reading the Maildir qmail-send delivered to. It runs as the
ordinary user who owns the embedded tree and, when the tests run as root, also as root
the way a real installation runs it (its auth process as root, the mail process as the
virtual-mail owner that checkvpw reports). The machine's own Dovecot, if any, is left
alone."""

import imaplib
import os
import signal
import time
from pathlib import Path

import pytest

from tests import support
from tests.qmail_send_rig import session_processes
from tests.vdomain_trees import ADDRESS, PASSWORD, bare_tree, maildir, rig, vtree  # noqa: F401

DOVECOT = "/usr/sbin/dovecot"
CHECKPASSWORD_REPLY = "/usr/lib/dovecot/checkpassword-reply"

CONFIG = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
{users}first_valid_uid = 1
import_environment = TZ QMAIL_ROOT
mail_location = maildir:~/Maildir
passdb {{
  driver = checkpassword
  args = {checkvpw}
}}
userdb {{
  driver = prefetch
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{chroot}}}
{services}"""

AS_USER = """\
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
"""
UNCHROOTED = "  chroot =\n"
AS_USER_SERVICES = """\
service anvil {
  chroot =
}
"""
# root: Dovecot's own users; the auth process as root so that checkvpw can read every
# domain's database (Debian runs it as dovecot)
AS_ROOT_SERVICES = """\
service auth {
  user = root
}
"""


def start_dovecot(base: Path, user, root: str, port: int, as_root: bool) -> support.Proc:
    """Dovecot in the foreground, as user (or as root), configured under base."""
    import grp
    base.mkdir()
    config = base / "dovecot.conf"
    users = "" if as_root else AS_USER.format(user=user.pw_name,
                                               group=grp.getgrgid(user.pw_gid).gr_name)
    config.write_text(CONFIG.format(base=base, port=port, users=users,
                                    chroot="" if as_root else UNCHROOTED,
                                    services=AS_ROOT_SERVICES if as_root else AS_USER_SERVICES,
                                    checkvpw=support.prog("checkvpw")))
    argv = [DOVECOT, "-F", "-c", str(config)]
    if not as_root:
        for path in (base, config):
            os.chown(path, user.pw_uid, user.pw_gid)
        argv = support.as_user(argv, user)
    return support.Proc(argv, env=support.suite_env(QMAIL_ROOT=root))


def stop_dovecot(base: Path, proc: support.Proc) -> None:
    """SIGTERM to the master its pid file names (it takes its children along), a bounded
    wait for its session to empty, then the process we started stopped by PID."""
    try:
        pid = int((base / "run" / "master.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid = None
    if pid == proc.pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and support.session_members(proc.pid):
            time.sleep(0.05)
    proc.stop()


@pytest.fixture
def dovecot_bin():
    if not os.path.exists(DOVECOT) or not os.path.exists(CHECKPASSWORD_REPLY):
        pytest.skip(f"{DOVECOT} not installed (apt-get install dovecot-imapd)")


@pytest.mark.parametrize("as_root", [
    False, pytest.param(True, marks=pytest.mark.skipif(os.getuid() != 0, reason="needs root"))],
    ids=["as-the-user", "as-root"])
def test_imap_reads_a_virtual_users_mail_delivered_by_qmail(dovecot_bin, vtree, rig, as_root):
    root, user = vtree
    base = Path(root).parent
    rig.inject([ADDRESS], subject="over imap", body=b"first line\n.dot line\nlast\n")
    rig.log.wait_line(lambda line: "delivery 1: success" in line, timeout=30)
    [delivered] = list((maildir(root) / "new").iterdir())
    stored = delivered.read_bytes()
    assert b"\nSubject: over imap\n" in stored and stored.endswith(b"\nfirst line\n.dot line\nlast\n")

    port = support.free_port()
    dovecot_dir = base / "dovecot"
    proc = start_dovecot(dovecot_dir, user, root, port, as_root)
    try:
        support.wait_port(port, timeout=30)
        imap = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        try:
            with pytest.raises(imaplib.IMAP4.error):
                imap.login(ADDRESS, "wrong password")
        finally:
            imap.shutdown()
        imap = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        try:
            assert imap.login(ADDRESS, PASSWORD)[0] == "OK"
            status, [count] = imap.select("INBOX")
            assert (status, count) == ("OK", b"1")
            status, data = imap.fetch("1", "(BODY.PEEK[])")
            assert status == "OK"
            assert data[0][1] == stored.replace(b"\n", b"\r\n")
            imap_uids = [uid for cmd, uid in session_processes(proc.pid).values()
                         if cmd.split(" ")[0] == "dovecot/imap"]
            assert imap_uids == [user.pw_uid]  # the mail process runs as the owner
            imap.logout()
        except BaseException:
            imap.shutdown()
            raise
        log = (dovecot_dir / "dovecot.log").read_text()
        assert f"Login: user=<{ADDRESS}>" in log
    finally:
        stop_dovecot(dovecot_dir, proc)
    assert support.session_members(proc.pid) == []  # no Dovecot process left
