"""qmail/delivery/maildir.py, maildirmake, maildir2mbox, maildirwatch."""

import mailbox
import os
import re
import signal
import stat
import time

import pytest

from qmail.delivery import maildir, maildirwatch
from tests import support


def test_unique_names_differ_within_one_process_and_follow_the_spec():
    names = {maildir.unique_name(1700000000.25) for _ in range(1000)}
    assert len(names) == 1000
    for name in names:
        assert re.fullmatch(r"1700000000\.M250000P%dQ\d+\.[^/:]+" % os.getpid(), name)


def test_deliver_writes_through_tmp_into_new(tmp_path):
    maildir.make(str(tmp_path / "md"))
    (tmp_path / "msg").write_bytes(b"body\n")
    fd = os.open(tmp_path / "msg", os.O_RDONLY)
    name = maildir.deliver(str(tmp_path / "md"), b"Head: 1\n", fd)
    assert (tmp_path / "md" / "new" / name).read_bytes() == b"Head: 1\nbody\n"
    assert os.listdir(tmp_path / "md" / "tmp") == []


def test_deliver_into_missing_maildir_is_chdir_error(tmp_path):
    with pytest.raises(maildir.MaildirError) as caught:
        maildir.deliver(str(tmp_path / "none"), b"", 0)
    assert caught.value.kind == "chdir"


def test_deliver_failure_leaves_nothing_in_tmp(tmp_path):
    maildir.make(str(tmp_path / "md"))
    write_only = os.open(tmp_path / "wo", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(maildir.MaildirError) as caught:
        maildir.deliver(str(tmp_path / "md"), b"", write_only)
    assert caught.value.kind == "read"
    assert os.listdir(tmp_path / "md" / "tmp") == [] == os.listdir(tmp_path / "md" / "new")


def test_scan_orders_by_mtime_and_skips_this_second_and_dot_files(tmp_path):
    maildir.make(str(tmp_path / "md"))
    for sub, name, when in (("new", "b", 200), ("cur", "a:2,S", 100), ("new", ".hidden", 50),
                            ("new", "fresh", None)):
        path = tmp_path / "md" / sub / name
        path.write_bytes(b"x")
        if when is not None:
            os.utime(path, (when, when))
    assert maildir.scan(str(tmp_path / "md")) == [(100, "cur/a:2,S"), (200, "new/b")]


def test_clean_tmp_removes_only_old_files(tmp_path):
    maildir.make(str(tmp_path / "md"))
    old, new = tmp_path / "md" / "tmp" / "old", tmp_path / "md" / "tmp" / "new"
    old.write_bytes(b"")
    new.write_bytes(b"")
    os.utime(old, (time.time() - 200000, time.time() - 200000))
    maildir.clean_tmp(str(tmp_path / "md"))
    assert os.listdir(tmp_path / "md" / "tmp") == ["new"]


# --- maildirmake ----------------------------------------------------------------------

def test_maildirmake_creates_private_maildir(tmp_path):
    r = support.run([support.prog("maildirmake"), tmp_path / "Maildir"])
    assert (r.returncode, r.stderr) == (0, b"")
    for sub in ("", "tmp", "new", "cur"):
        assert stat.S_IMODE((tmp_path / "Maildir" / sub).stat().st_mode) == 0o700
    assert mailbox.Maildir(str(tmp_path / "Maildir"), create=False).keys() == []


def test_maildirmake_refuses_existing_directory(tmp_path):
    (tmp_path / "Maildir").mkdir()
    r = support.run([support.prog("maildirmake"), tmp_path / "Maildir"])
    assert r.returncode == 111
    assert r.stderr == f"maildirmake: fatal: unable to mkdir {tmp_path}/Maildir: file already exists\n".encode()


def test_maildirmake_usage():
    r = support.run([support.prog("maildirmake")])
    assert (r.returncode, r.stderr) == (100, b"maildirmake: usage: maildirmake name\n")


# --- maildir2mbox ---------------------------------------------------------------------

def fill(md, entries):
    maildir.make(str(md))
    for sub, name, when, data in entries:
        path = md / sub / name
        path.write_bytes(data)
        os.utime(path, (when, when))


def test_maildir2mbox_appends_in_time_order_and_empties_the_maildir(tmp_path):
    md = tmp_path / "Maildir"
    fill(md, [("new", "2", 86400, b"Return-Path: <>\nSubject: two\n\nFrom here\n"),
              ("cur", "1:2,S", 0, b"Return-Path: <a b@c>\nSubject: one\n\nno newline"),
              ("new", "3", 172800, b"Subject: three\n\nbody\n")])
    (tmp_path / "mbox").write_bytes(b"From old Thu Jan 01 00:00:00 1970\nSubject: old\n\nold\n\n")
    r = support.run([support.prog("maildir2mbox")], env=support.suite_env(
        MAILDIR=md, MAIL=tmp_path / "mbox", MAILTMP=tmp_path / "mbox.tmp"))
    assert (r.returncode, r.stderr) == (0, b"")
    assert (tmp_path / "mbox").read_bytes() == (
        b"From old Thu Jan 01 00:00:00 1970\nSubject: old\n\nold\n\n"
        b"From a-b@c Thu Jan 01 00:00:00 1970\nReturn-Path: <a b@c>\nSubject: one\n\nno newline\n\n"
        b"From MAILER-DAEMON Fri Jan 02 00:00:00 1970\nReturn-Path: <>\nSubject: two\n\n>From here\n\n"
        b"From XXX Sat Jan 03 00:00:00 1970\nSubject: three\n\nbody\n\n")
    assert os.listdir(md / "new") == [] == os.listdir(md / "cur")
    assert [m["Subject"] for m in mailbox.mbox(str(tmp_path / "mbox"), create=False)] == \
        ["old", "one", "two", "three"]


def test_maildir2mbox_with_nothing_new_leaves_mbox_alone(tmp_path):
    maildir.make(str(tmp_path / "Maildir"))
    r = support.run([support.prog("maildir2mbox")], env=support.suite_env(
        MAILDIR=tmp_path / "Maildir", MAIL=tmp_path / "mbox", MAILTMP=tmp_path / "t"))
    assert r.returncode == 0
    assert not (tmp_path / "mbox").exists()


def test_maildir2mbox_failure_keeps_the_messages(tmp_path):
    md = tmp_path / "Maildir"
    fill(md, [("new", "1", 0, b"Subject: one\n\nx\n")])
    r = support.run([support.prog("maildir2mbox")], env=support.suite_env(
        MAILDIR=md, MAIL=tmp_path / "mbox", MAILTMP=tmp_path / "no" / "dir" / "tmp"))
    assert r.returncode == 111
    assert r.stderr == f"maildir2mbox: fatal: unable to create {tmp_path}/no/dir/tmp: file does not exist\n".encode()
    assert os.listdir(md / "new") == ["1"]


@pytest.mark.parametrize("missing", ["MAIL", "MAILTMP", "MAILDIR"])
def test_maildir2mbox_needs_its_variables(tmp_path, missing):
    env = support.suite_env(MAILDIR=tmp_path, MAIL=tmp_path / "m", MAILTMP=tmp_path / "t")
    env.pop(missing)
    r = support.run([support.prog("maildir2mbox")], env=env)
    assert (r.returncode, r.stderr) == (111, f"maildir2mbox: fatal: {missing} not set\n".encode())


# --- maildirwatch ---------------------------------------------------------------------

def test_maildirwatch_entry_shows_sender_recipient_from_and_text():
    data = (b"Return-Path: <s@x>\nDelivered-To: joe@h\nFrom: Some One <s@x>\n"
            b"Subject: hello\n there\n\nbody\x01text\n")
    assert maildirwatch.describe(data) == (b"FROM <s@x> TO <joe@h>\n\x1b[1mFrom: Some One <s@x>\x1b[0m\n"
                                           b"hello/ there//body/text/\n\n")


def test_maildirwatch_entry_without_fields_and_long_text_is_cut():
    entry = maildirwatch.describe(b"Subject: " + b"x" * 300 + b"\n\n")
    assert entry == b"FROM ? TO <?>\n" + b"x" * 158 + b"\n\n"


def test_maildirwatch_clears_screen_and_lists_new_mail(tmp_path):
    md = tmp_path / "Maildir"
    fill(md, [("new", "1", 0, b"Return-Path: <s@x>\nSubject: one\n\n")])
    with support.Proc([support.prog("maildirwatch")], env=support.suite_env(MAILDIR=md)) as p:
        wanted = b"\x1b[;H\x1b[;JFROM <s@x> TO <?>\none//\n\n"  # subject and separator lines
        got = b""
        deadline = time.monotonic() + 10
        while len(got) < len(wanted) and time.monotonic() < deadline:
            got += os.read(p.popen.stdout.fileno(), 4096)
        assert got == wanted
        p.send_signal(signal.SIGTERM)


def test_maildirwatch_needs_maildir():
    env = support.suite_env()
    env.pop("MAILDIR", None)
    r = support.run([support.prog("maildirwatch")], env=env)
    assert (r.returncode, r.stderr) == (111, b"maildirwatch: fatal: MAILDIR not set\n")


# --- entering $MAILDIR (maildir2mbox, maildirwatch) -----------------------------------

@pytest.mark.parametrize("program", ["maildir2mbox", "maildirwatch"])
def test_unenterable_maildir_is_fatal_111_with_qmails_words(tmp_path, program):
    env = support.suite_env(MAILDIR=tmp_path / "none", MAIL=tmp_path / "m", MAILTMP=tmp_path / "t")
    r = support.run([support.prog(program)], env=env)
    assert (r.returncode, r.stderr) == (
        111, f"{program}: fatal: unable to chdir to {tmp_path}/none: file does not exist\n".encode())


def test_chdir_env_enters_maildir_or_says_why(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILDIR", raising=False)
    with pytest.raises(maildir.ChdirError, match="^MAILDIR not set$"):
        maildir.chdir_env()
    monkeypatch.setenv("MAILDIR", str(tmp_path / "none"))
    with pytest.raises(maildir.ChdirError) as caught:
        maildir.chdir_env()
    assert str(caught.value) == f"unable to chdir to {tmp_path}/none: file does not exist"
    monkeypatch.chdir("/")
    monkeypatch.setenv("MAILDIR", str(tmp_path))
    maildir.chdir_env()
    assert os.getcwd() == str(tmp_path)
