"""qmail-install --services DIR: the book's service directories, rendered for embedded
mode (127.0.0.1, high ports, the current user, our bin first in PATH) and root mode
(the book's users, ports and loggers), with the tcprules files and their cdbs."""

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from qmail.tools import install_services
from tests import support

SERVICES = ("qmail-send", "qmail-smtpd", "qmail-qmtpd", "qmail-qmqpd", "qmail-queued",
            "qmail-pop3d", "qmail-pop3ds")
OUR_BIN = os.path.dirname(support.prog("svscan"))


def install(tmp_path, *extra, env=None, root_name="qmail"):
    """qmail-install --embedded --services; its stderr without the warning root gets
    (an embedded tree root owns delivers nothing: test_qmail_install.py shows it)."""
    root = tmp_path / root_name
    services = tmp_path / "service"
    argv = [support.prog("qmail-install"), "--embedded", "--fqdn", "mail.example.com",
            "--services", str(services), *extra, str(root)]
    done = support.run(argv, env=support.suite_env(**(env or {})), timeout=60)
    done.stderr = b"".join(line for line in done.stderr.splitlines(keepends=True)
                           if not line.startswith(b"qmail-install: warning: --embedded as root"))
    return done, root, services


def scripts(services: Path):
    for name in SERVICES:
        yield services / name / "run"
        yield services / name / "log" / "run"


def rules(cdb: Path, ip: str) -> bytes:
    env = support.suite_env(TCPREMOTEIP=ip)
    done = support.run([support.prog("tcprulescheck"), str(cdb)], env=env)
    return done.stdout


def test_embedded_services_listen_on_loopback_high_ports_as_the_current_user(tmp_path):
    done, root, services = install(tmp_path, env={"SMTP_PORT": "12525", "QMTP_PORT": "12209",
                                                  "QMQP_PORT": "12628"})
    assert done.returncode == 0, done.stderr
    smtpd = (services / "qmail-smtpd" / "run").read_text()
    assert f'\n        127.0.0.1 12525 {root}/bin/qmail-smtpd 2>&1\n' in smtpd
    assert f"tcpserver -v -R -l \"$LOCAL\" -H -x {root}/etc/tcp.smtp.cdb -c \"$MAXSMTPD\"" in smtpd
    assert "127.0.0.1 12209 " in (services / "qmail-qmtpd" / "run").read_text()
    assert "127.0.0.1 12628 " in (services / "qmail-qmqpd" / "run").read_text()
    for path in scripts(services):
        text = path.read_text()
        assert os.access(path, os.X_OK)
        assert "setuidgid" not in text and " -u " not in text, path
        assert "@" not in text, path
        assert f'PATH="{OUR_BIN}:$PATH"' in text or f':{OUR_BIN}:$PATH"' in text, path
        syntax = support.run(["/bin/sh", "-n", str(path)])
        assert syntax.returncode == 0, (path, syntax.stderr)
    assert (services / "qmail-send" / "log" / "run").read_text().endswith("exec multilog t ./main\n")
    for name in SERVICES:
        assert (services / name / "log" / "main").is_dir()
    assert not [n for n in os.listdir(services) if n.startswith(".")]


def test_default_embedded_ports_are_2525_2209_2628(tmp_path):
    env = {name: "" for name in ("SMTP_PORT", "QMTP_PORT", "QMQP_PORT")}
    done, root, services = install(tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert " 127.0.0.1 2525 " in (services / "qmail-smtpd" / "run").read_text()
    assert " 127.0.0.1 2209 " in (services / "qmail-qmtpd" / "run").read_text()
    assert " 127.0.0.1 2628 " in (services / "qmail-qmqpd" / "run").read_text()


def test_qmail_send_runs_the_books_rc_with_control_defaultdelivery(tmp_path):
    done, root, services = install(tmp_path)
    assert done.returncode == 0, done.stderr
    text = (services / "qmail-send" / "run").read_text()
    assert f'exec env - PATH="{root}/bin:{OUR_BIN}:$PATH"' in text
    assert f'qmail-start "`cat {root}/control/defaultdelivery`"' in text
    queued = (services / "qmail-queued" / "run").read_text()
    assert (f"exec unixserver -p 0666 {root}/run/qmail-queued.sock {root}/bin/qmail-queued"
            in queued)


def test_rules_relay_for_localhost_and_qmqp_refuses_strangers(tmp_path):
    done, root, services = install(tmp_path)
    assert done.returncode == 0, done.stderr
    etc = root / "etc"
    assert (etc / "tcp.smtp").read_text() == '127.:allow,RELAYCLIENT=""\n:allow\n'
    assert rules(etc / "tcp.smtp.cdb", "127.0.0.1") == b'rule 127.:\nset environment variable RELAYCLIENT=\nallow connection\n'
    assert rules(etc / "tcp.smtp.cdb", "10.1.2.3") == b"rule :\nallow connection\n"
    assert rules(etc / "tcp.qmtp.cdb", "127.0.0.1").startswith(b"rule 127.:\n")
    assert rules(etc / "tcp.qmqp.cdb", "127.0.0.1") == b"rule 127.:\nallow connection\n"
    assert rules(etc / "tcp.qmqp.cdb", "10.1.2.3") == b"rule :\ndeny connection\n"
    assert (root / "control" / "concurrencyincoming").read_text() == "20\n"


def test_second_install_keeps_edited_rules_state_and_logs_and_rewrites_run(tmp_path):
    done, root, services = install(tmp_path, env={"SMTP_PORT": "12525"})
    assert done.returncode == 0, done.stderr
    (root / "etc" / "tcp.smtp").write_text('10.:allow,RELAYCLIENT=""\n:deny\n')
    (services / "qmail-smtpd" / "log" / "main" / "current").write_text("kept\n")
    (services / "qmail-smtpd" / "down").write_text("")
    (root / "control" / "concurrencyincoming").write_text("7\n")
    done, root, services = install(tmp_path, env={"SMTP_PORT": "12526"})
    assert done.returncode == 0, done.stderr
    assert rules(root / "etc" / "tcp.smtp.cdb", "10.0.0.1").startswith(b"rule 10.:\n")
    assert rules(root / "etc" / "tcp.smtp.cdb", "127.0.0.1") == b"rule :\ndeny connection\n"
    assert (services / "qmail-smtpd" / "log" / "main" / "current").read_text() == "kept\n"
    assert (services / "qmail-smtpd" / "down").exists()
    assert (root / "control" / "concurrencyincoming").read_text() == "7\n"
    assert " 127.0.0.1 12526 " in (services / "qmail-smtpd" / "run").read_text()


def test_a_bad_rules_line_or_port_is_fatal_111(tmp_path):
    done, root, services = install(tmp_path, env={"SMTP_PORT": "smtp"})
    assert done.returncode == 111
    assert done.stderr == b"qmail-install: fatal: SMTP_PORT must be a port number, not 'smtp'\n"
    done, root, services = install(tmp_path)
    assert done.returncode == 0, done.stderr
    (root / "etc" / "tcp.qmtp").write_text("127.:bogus\n")
    done, root, services = install(tmp_path)
    assert done.returncode == 111
    assert done.stderr.startswith(b"qmail-install: fatal: unable to parse this line of ")


def test_smtpd_run_refuses_to_start_an_open_relay_without_rcpthosts(tmp_path):
    done, root, services = install(tmp_path)
    assert done.returncode == 0, done.stderr
    (root / "control" / "rcpthosts").unlink()
    ran = support.run([str(services / "qmail-smtpd" / "run")], cwd=services / "qmail-smtpd")
    assert ran.returncode == 1
    assert ran.stdout == (f"No {root}/control/rcpthosts!\n"
                          "Refusing to start SMTP listener because it'll create an open relay\n"
                          ).encode()


def test_smtpd_run_reports_an_unset_value_as_the_book_does(tmp_path):
    done, root, services = install(tmp_path)
    assert done.returncode == 0, done.stderr
    (root / "control" / "concurrencyincoming").unlink()
    ran = support.run([str(services / "qmail-smtpd" / "run")], cwd=services / "qmail-smtpd")
    assert ran.returncode == 1
    assert ran.stdout.endswith(b"QMAILDUID, NOFILESGID, MAXSMTPD, or LOCAL is unset in\n"
                               + f"{services}/qmail-smtpd/run\n".encode())


def test_services_option_without_a_directory_is_a_usage_error():
    done = support.run([support.prog("qmail-install"), "--services="])
    assert done.returncode == 100
    assert b"[ --services DIR ]" in done.stderr


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="0123456789abc-", max_size=7))
def test_port_settings_are_numbers_from_1_to_65535(value):
    try:
        found = install_services.ports(True, {"SMTP_PORT": value})
    except install_services.Trouble as trouble:
        assert value and (not value.isdigit() or not 0 < int(value) < 65536)
        assert "SMTP_PORT" in str(trouble)
        return
    expected = str(int(value)) if value else "2525"
    assert found["SMTP_PORT"] == expected


@pytest.mark.skipif(os.getuid() != 0, reason="root mode needs root")
def test_root_mode_renders_the_books_users_ports_and_loggers():
    base = Path(tempfile.mkdtemp(prefix="qmail-svc-root-"))
    base.chmod(0o755)
    try:
        root, services = base / "qmail", base / "service"
        done = support.run([support.prog("qmail-install"), "--fqdn", "mx.example.net",
                            "--services", str(services), str(root)], timeout=120)
        assert done.returncode == 0, done.stderr
        smtpd = (services / "qmail-smtpd" / "run").read_text()
        assert "QMAILDUID=`id -u qmaild`\nNOFILESGID=`id -g qmaild`\n" in smtpd
        assert (f'-u "$QMAILDUID" -g "$NOFILESGID" 0 smtp {root}/bin/qmail-smtpd 2>&1'
                in smtpd)
        assert f"-x {root}/etc/tcp.smtp.cdb" in smtpd
        assert ' 0 209 ' in (services / "qmail-qmtpd" / "run").read_text()
        assert ' 0 628 ' in (services / "qmail-qmqpd" / "run").read_text()
        pop3d = (services / "qmail-pop3d" / "run").read_text()
        assert (f'0 110 {root}/bin/qmail-popup "$LOCAL" \\\n            {root}/bin/checkpassword '
                f'{root}/bin/qmail-pop3d Maildir 2>&1') in pop3d
        assert " -u " not in pop3d  # checkpassword needs root to become the user
        assert " 0 995 " in (services / "qmail-pop3ds" / "run").read_text()
        assert "exec setuidgid qmailq unixserver -p 0666 " in (
            services / "qmail-queued" / "run").read_text()
        qmaill = pwd.getpwnam("qmaill")
        for name in SERVICES:
            assert (services / name / "log" / "run").read_text().endswith(
                "exec setuidgid qmaill multilog t ./main\n")
            assert (services / name / "log" / "main").stat().st_uid == qmaill.pw_uid
        syntax = support.run(["/bin/sh", "-n", str(services / "qmail-smtpd" / "run")])
        assert syntax.returncode == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_pop3_services_check_virtual_users_and_offer_tls_with_a_certificate(tmp_path):
    done, root, services = install(tmp_path, env={"POP3_PORT": "12110", "POP3S_PORT": "12995"})
    assert done.returncode == 0, done.stderr
    pop3d = (services / "qmail-pop3d" / "run").read_text()
    chain = (f'127.0.0.1 12110 {root}/bin/qmail-popup "$LOCAL" \\\n            {root}/bin/checkvpw '
             f'{root}/bin/qmail-pop3d Maildir 2>&1')
    assert chain in pop3d and chain.replace("            ", "        ") in pop3d
    assert f"sslserver -v -R -H -n -l \"$LOCAL\" -x {root}/etc/tcp.pop3.cdb" in pop3d
    assert f"tcpserver -v -R -H -l \"$LOCAL\" -x {root}/etc/tcp.pop3.cdb" in pop3d
    pop3ds = (services / "qmail-pop3ds" / "run").read_text()
    assert "127.0.0.1 12995 " in pop3ds and "sslserver -v -R -H -l" in pop3ds
    assert rules(root / "etc" / "tcp.pop3.cdb", "10.1.2.3") == b"rule :\nallow connection\n"
    # POP3S cannot start without the certificate: down until the administrator has one
    assert (services / "qmail-pop3ds" / "down").exists()
    assert not (services / "qmail-pop3d" / "down").exists()
    done = support.run(["/bin/sh", str(services / "qmail-pop3ds" / "run")], cwd=services / "qmail-pop3ds")
    assert done.returncode == 1
    assert done.stdout == (f"No {root}/control/servercert.pem!\n"
                           "Refusing to start POP3S: it needs a certificate and its key\n").encode()


def test_pop3s_without_down_when_the_certificate_exists(tmp_path):
    root = tmp_path / "qmail"
    (root / "control").mkdir(parents=True)
    (root / "control" / "servercert.pem").write_text("placeholder\n")
    done, root, services = install(tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (services / "qmail-pop3ds" / "down").exists()


def test_book_root_keeps_its_rules_in_etc():
    assert install_services.rules_dir("/var/qmail", False) == "/etc"
    assert install_services.rules_dir("/var/qmail2", False) == "/var/qmail2/etc"
    assert install_services.rules_dir("/var/qmail", True) == "/var/qmail/etc"
