"""The programs .qmail lines call: preline, forward, condredirect, bouncesaying, except,
qreceipt, qbiff; and the boot/ default deliveries."""

import re
import struct
import subprocess

import pytest

from qmail.delivery import qbiff
from qmail.tools import boot_scripts
from tests import support

MESSAGE = b"Subject: s\n\nbody\n"
LINES = {"UFLINE": "From s@x Thu Jan 01 00:00:00 1970\n", "RPLINE": "Return-Path: <s@x>\n",
         "DTLINE": "Delivered-To: joe@h\n"}


@pytest.fixture
def fake_queue(tmp_path):
    script = tmp_path / "fake-qmail-queue"
    script.write_text(f"#!/bin/sh\ncat > {tmp_path}/qq.message\n"
                      f"cat <&1 > {tmp_path}/qq.envelope\nexit ${{FAKE_QQ_EXIT:-0}}\n")
    script.chmod(0o755)
    return script


def run_with_message(argv, tmp_path, env, message=MESSAGE):
    (tmp_path / "in").write_bytes(message)
    with open(tmp_path / "in", "rb") as stdin:
        return subprocess.run([str(a) for a in argv], stdin=stdin, capture_output=True,
                              env=env, timeout=30)


# --- preline --------------------------------------------------------------------------

@pytest.mark.parametrize("opts,expected", [
    ([], LINES["UFLINE"] + LINES["RPLINE"] + LINES["DTLINE"]),
    (["-f"], LINES["RPLINE"] + LINES["DTLINE"]),
    (["-r", "-d"], LINES["UFLINE"]),
    (["-frd"], ""),
    (["-d", "-D"], LINES["UFLINE"] + LINES["RPLINE"] + LINES["DTLINE"]),
])
def test_preline_puts_the_delivery_lines_in_front(tmp_path, opts, expected):
    r = run_with_message([support.prog("preline"), *opts, "cat"], tmp_path,
                         support.suite_env(**LINES))
    assert (r.returncode, r.stdout) == (0, expected.encode() + MESSAGE)


def test_preline_passes_on_the_exit_code(tmp_path):
    r = run_with_message([support.prog("preline"), "sh", "-c", "cat >/dev/null; exit 77"],
                         tmp_path, support.suite_env(**LINES))
    assert r.returncode == 77


@pytest.mark.parametrize("argv,env", [([], LINES), (["-x", "cat"], LINES),
                                      (["cat"], {"UFLINE": "x", "RPLINE": "y"})])
def test_preline_usage(tmp_path, argv, env):
    base = support.suite_env(**env)
    for name in LINES:
        if name not in env:
            base.pop(name, None)
    r = run_with_message([support.prog("preline"), *argv], tmp_path, base)
    assert r.returncode == 100
    assert r.stderr.endswith(b"preline: usage: preline cmd [ arg ... ]\n")


def test_preline_unrunnable_program(tmp_path):
    r = run_with_message([support.prog("preline"), "/nonexistent/prog"], tmp_path,
                         support.suite_env(**LINES))
    assert r.returncode == 100
    assert r.stderr.startswith(b"preline: fatal: unable to run /nonexistent/prog: file does not exist\n")


# --- except and bouncesaying ----------------------------------------------------------

@pytest.mark.parametrize("code,expected", [(0, 100), (1, 0), (100, 0), (99, 0), (111, 111)])
def test_except_reverses_the_exit_code(code, expected):
    r = support.run([support.prog("except"), "sh", "-c", f"exit {code}"])
    assert r.returncode == expected
    if code == 111:
        assert r.stderr == b"except: fatal: temporary child error\n"


def test_except_crash_and_usage():
    r = support.run([support.prog("except"), "sh", "-c", "kill -9 $$"])
    assert (r.returncode, r.stderr) == (111, b"except: fatal: child crashed\n")
    r = support.run([support.prog("except")])
    assert (r.returncode, r.stderr) == (100, b"except: usage: except program [ arg ... ]\n")


def test_except_of_missing_program_is_permanent_then_reversed():
    assert support.run([support.prog("except"), "/nonexistent"]).returncode == 0


def test_bouncesaying_bounces_with_its_text():
    r = support.run([support.prog("bouncesaying"), "This address is retired."])
    assert (r.returncode, r.stderr) == (100, b"This address is retired.\n")


@pytest.mark.parametrize("code,expected", [(0, 100), (1, 0), (111, 111)])
def test_bouncesaying_with_program_bounces_only_when_it_succeeds(code, expected):
    r = support.run([support.prog("bouncesaying"), "go away", "sh", "-c", f"exit {code}"])
    assert r.returncode == expected
    assert r.stderr == {100: b"go away\n", 0: b"",
                        111: b"bouncesaying: fatal: temporary child error\n"}[expected]


def test_bouncesaying_usage():
    r = support.run([support.prog("bouncesaying")])
    assert (r.returncode, r.stderr) == (
        100, b"bouncesaying: usage: bouncesaying error [ program [ arg ... ] ]\n")


# --- forward and condredirect ---------------------------------------------------------

def test_forward_queues_with_dtline_and_newsender(tmp_path, fake_queue):
    env = support.suite_env(QMAILQUEUE=fake_queue, NEWSENDER="owner@x", DTLINE="Delivered-To: joe@h\n")
    r = run_with_message([support.prog("forward"), "a@b", "c@d"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(rb"forward: qp [1-9][0-9]*\n", r.stderr)
    assert (tmp_path / "qq.message").read_bytes() == b"Delivered-To: joe@h\n" + MESSAGE
    assert (tmp_path / "qq.envelope").read_bytes() == b"Fowner@x\0Ta@b\0Tc@d\0\0"


@pytest.mark.parametrize("missing", ["NEWSENDER", "DTLINE"])
def test_forward_needs_its_variables(tmp_path, fake_queue, missing):
    env = support.suite_env(QMAILQUEUE=fake_queue, NEWSENDER="o@x", DTLINE="D: x\n")
    env.pop(missing)
    r = run_with_message([support.prog("forward"), "a@b"], tmp_path, env)
    assert (r.returncode, r.stderr) == (100, f"forward: fatal: {missing} not set\n".encode())


@pytest.mark.parametrize("code,exit_code,text", [
    (53, 111, b"forward: fatal: qq write error or disk full (#4.3.0)\n"),
    (31, 100, b"forward: fatal: mail server permanently rejected message (#5.3.0)\n")])
def test_forward_reports_queue_errors(tmp_path, fake_queue, code, exit_code, text):
    env = support.suite_env(QMAILQUEUE=fake_queue, NEWSENDER="o@x", DTLINE="D: x\n",
                            FAKE_QQ_EXIT=code)
    r = run_with_message([support.prog("forward"), "a@b"], tmp_path, env)
    assert (r.returncode, r.stderr) == (exit_code, text)


def test_condredirect_forwards_and_exits_99_when_program_succeeds(tmp_path, fake_queue):
    env = support.suite_env(QMAILQUEUE=fake_queue, SENDER="s@x", DTLINE="Delivered-To: joe@h\n")
    r = run_with_message([support.prog("condredirect"), "boss@x", "grep", "-q", "body"],
                         tmp_path, env)
    assert r.returncode == 99, r.stderr
    assert re.fullmatch(rb"condredirect: qp [1-9][0-9]*\n", r.stderr)
    assert (tmp_path / "qq.message").read_bytes() == b"Delivered-To: joe@h\n" + MESSAGE
    assert (tmp_path / "qq.envelope").read_bytes() == b"Fs@x\0Tboss@x\0\0"


def test_condredirect_leaves_the_message_when_program_fails(tmp_path, fake_queue):
    env = support.suite_env(QMAILQUEUE=fake_queue, SENDER="s@x", DTLINE="D: x\n")
    r = run_with_message([support.prog("condredirect"), "boss@x", "grep", "-q", "absent"],
                         tmp_path, env)
    assert (r.returncode, r.stderr) == (0, b"")
    assert not (tmp_path / "qq.message").exists()


def test_condredirect_defers_on_temporary_program_error(tmp_path, fake_queue):
    env = support.suite_env(QMAILQUEUE=fake_queue, SENDER="s@x", DTLINE="D: x\n")
    r = run_with_message([support.prog("condredirect"), "b@x", "sh", "-c", "exit 111"],
                         tmp_path, env)
    assert (r.returncode, r.stderr) == (111, b"condredirect: fatal: temporary child error\n")


def test_condredirect_usage():
    r = support.run([support.prog("condredirect"), "a@b"])
    assert (r.returncode, r.stderr) == (
        100, b"condredirect: usage: condredirect newaddress program [ arg ... ]\n")


def test_dot_qmail_forward_line_through_qmail_local(tmp_path, fake_queue):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    (home / ".qmail").write_bytes(b"|forward a@b\n")
    r = run_with_message([support.prog("qmail-local"), "joe", home, "joe", "", "", "h",
                          "s@x", "./Mailbox"], tmp_path, support.suite_env(QMAILQUEUE=fake_queue))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"did 0+0+1\n"
    assert re.fullmatch(rb"forward: qp [1-9][0-9]*\n", r.stderr)
    assert (tmp_path / "qq.envelope").read_bytes() == b"Fs@x\0Ta@b\0\0"


# --- qreceipt -------------------------------------------------------------------------

def test_qreceipt_sends_notice_when_asked(tmp_path, fake_queue):
    message = (b"Message-ID: <1@x>\nNotice-Requested-Upon-Delivery-To: Joe <joe@h>, other@x\n"
               b"\nbody\n")
    env = support.suite_env(QMAILQUEUE=fake_queue, SENDER="a b@x")
    r = run_with_message([support.prog("qreceipt"), "joe@h"], tmp_path, env, message)
    assert (r.returncode, r.stderr) == (0, b"")
    assert (tmp_path / "qq.envelope").read_bytes() == b"F\0Ta b@x\0\0"
    assert (tmp_path / "qq.message").read_bytes() == (
        b'From: DELIVERY NOTICE SYSTEM <"a b"@x>\nTo: <"a b"@x>\nSubject: success notice\n\n'
        b"Hi! This is the qreceipt program. Your message was delivered to the\n"
        b"following address: joe@h. Thanks for asking.\nYour Message-ID: <1@x>\n")


@pytest.mark.parametrize("message,sender", [
    (b"Notice-Requested-Upon-Delivery-To: other@x\n\n", "s@x"),
    (b"Subject: none\n\n", "s@x"),
    (b"Notice-Requested-Upon-Delivery-To: joe@h\n\n", ""),
    (b"Notice-Requested-Upon-Delivery-To: joe@h\n\n", "#@[]"),
    (b"Subject: x\n\nNotice-Requested-Upon-Delivery-To: joe@h\n", "s@x"),
])
def test_qreceipt_sends_nothing_unless_asked_by_a_real_sender(tmp_path, fake_queue, message, sender):
    env = support.suite_env(QMAILQUEUE=fake_queue, SENDER=sender)
    r = run_with_message([support.prog("qreceipt"), "joe@h"], tmp_path, env, message)
    assert r.returncode == 0
    assert not (tmp_path / "qq.message").exists()


def test_qreceipt_unparseable_field_bounces(tmp_path, fake_queue):
    env = support.suite_env(QMAILQUEUE=fake_queue, SENDER="s@x")
    r = run_with_message([support.prog("qreceipt"), "joe@h"], tmp_path, env,
                         b"Notice-Requested-Upon-Delivery-To: (unclosed\n\n")
    assert r.returncode == 100
    assert r.stderr.startswith(b"qreceipt: fatal: unable to parse this: ")


def test_qreceipt_usage(tmp_path):
    r = run_with_message([support.prog("qreceipt")], tmp_path, support.suite_env(SENDER="s"))
    assert (r.returncode, r.stderr) == (100, b"qreceipt: usage: qreceipt deliveryaddress\n")


# --- qbiff ----------------------------------------------------------------------------

def test_qbiff_notice_text():
    text = qbiff.notice(b"joe-x", b"s@x\x07", b"Subject: hi\n\nbody " + b"y" * 100 + b"\n")
    assert text == (b"\r\n\a*** TO <joe-x> FROM <s@x_>\r\n    hi//body " + b"y" * 65 + b"\r\n")


def utmp_record(kind, line, user):
    return struct.pack("=hxxi32s4s32s256s", kind, 1, line, b"", user, b"").ljust(384, b"\0")


def test_qbiff_finds_the_users_terminals_in_utmp():
    utmp = (utmp_record(7, b"pts/1", b"joe") + utmp_record(7, b"pts/2", b"bob")
            + utmp_record(8, b"pts/3", b"joe") + utmp_record(7, b"/dev/x", b"joe")
            + utmp_record(7, b"../x.y", b"joe") + utmp_record(7, b"tty1", b"joe"))
    assert qbiff.terminals(utmp, b"joe") == [b"pts/1", b"tty1"]


def test_qbiff_always_exits_0(tmp_path):
    r = run_with_message([support.prog("qbiff")], tmp_path,
                         support.suite_env(USER="nobody-here", SENDER="s", LOCAL="l"))
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


# --- boot scripts ---------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(boot_scripts.DELIVERIES))
def test_boot_script_starts_qmail_start_with_its_default_delivery(tmp_path, name):
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    fake = root / "bin" / "qmail-start"
    fake.write_text(f"#!/bin/sh\nprintf '%s' \"$1\" > {tmp_path}/arg\necho \"$QMAIL_ROOT\" > {tmp_path}/pinned\n")
    fake.chmod(0o755)
    boot_scripts.write_all(str(root))
    r = support.run(["/bin/sh", root / "boot" / name])
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "arg").read_text() == boot_scripts.DELIVERIES[name][0]
    assert (tmp_path / "pinned").read_text() == f"{root}\n"


@pytest.mark.parametrize("name,expected", [
    ("home", b"mbox ./Mailbox\ndid 1+0+0\n"),
    ("home+df", b"program dot-forward .forward\nmbox ./Mailbox\ndid 1+0+1\n"),
    ("proc", b"program preline procmail\ndid 0+0+1\n"),
])
def test_boot_default_deliveries_as_qmail_local_reads_them(tmp_path, name, expected):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    r = run_with_message([support.prog("qmail-local"), "-n", "joe", home, "joe", "", "", "h",
                          "s@x", boot_scripts.DELIVERIES[name][0]], tmp_path, support.suite_env())
    assert (r.returncode, r.stdout) == (0, expected)
