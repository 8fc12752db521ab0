"""IMAP for virtual users through a real Dovecot: a private Dovecot (its own config, base
and state directories, log and high port, run as the ordinary user who owns the embedded
tree) whose passdb is checkpassword -> our checkvpw and whose userdb is prefetch, reading
the Maildir qmail-send delivered to. The machine's own Dovecot, if any, is left alone."""

import imaplib
import os
import signal
import time
from pathlib import Path

import pytest

from tests import support
from tests.qmail_send_rig import Rig
from tests.vdomain_trees import ADDRESS, PASSWORD, bare_tree, maildir, vtree  # noqa: F401

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
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
first_valid_uid = 1
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
  chroot =
}}
service anvil {{
  chroot =
}}
"""


def start_dovecot(base: Path, user, root: str, port: int) -> support.Proc:
    """Dovecot in the foreground as user, configured under base."""
    import grp
    base.mkdir()
    config = base / "dovecot.conf"
    config.write_text(CONFIG.format(base=base, user=user.pw_name, port=port,
                                    group=grp.getgrgid(user.pw_gid).gr_name,
                                    checkvpw=support.prog("checkvpw")))
    for path in (base, config):
        os.chown(path, user.pw_uid, user.pw_gid)
    argv = support.as_user([DOVECOT, "-F", "-c", str(config)], user)
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


def test_imap_reads_a_virtual_users_mail_delivered_by_qmail(dovecot_bin, vtree):
    root, user = vtree
    base = Path(root).parent
    rig = Rig(root, user, base)
    rig.start()
    try:
        rig.inject([ADDRESS], subject="over imap", body=b"first line\n.dot line\nlast\n")
        rig.log.wait_line(lambda line: "delivery 1: success" in line, timeout=30)
    finally:
        rig.stop()
    [delivered] = list((maildir(root) / "new").iterdir())
    stored = delivered.read_bytes()
    assert b"\nSubject: over imap\n" in stored and stored.endswith(b"\nfirst line\n.dot line\nlast\n")

    port = support.free_port()
    dovecot_dir = base / "dovecot"
    proc = start_dovecot(dovecot_dir, user, root, port)
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
            imap.logout()
        except BaseException:
            imap.shutdown()
            raise
        log = (dovecot_dir / "dovecot.log").read_text()
        assert f"Login: user=<{ADDRESS}>" in log
    finally:
        stop_dovecot(dovecot_dir, proc)
    assert support.session_members(proc.pid) == []  # no Dovecot process left
