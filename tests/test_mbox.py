"""qmail/delivery/mbox.py: From_ lines, >From quoting, locked appends that never leave half a message."""

import fcntl
import mailbox
import os
import time

import pytest
from hypothesis import given, strategies as st

from qmail.delivery import mbox
from tests import support


def test_ctime_is_utc_with_zero_padded_day():
    assert mbox.ctime(0) == "Thu Jan 01 00:00:00 1970"
    assert mbox.ctime(1_000_000_000) == "Sun Sep 09 01:46:40 2001"


def test_from_line_for_sender_and_bounce():
    assert mbox.from_line(b"a b\tc@d", 0) == b"From a-b-c@d Thu Jan 01 00:00:00 1970\n"
    assert mbox.from_line(b"", 0) == b"From MAILER-DAEMON Thu Jan 01 00:00:00 1970\n"


@pytest.mark.parametrize("line,quoted", [
    (b"From x", True), (b">From x", True), (b">>>From x", True), (b"From", False),
    (b"from x", False), (b" From x", False), (b"X From x", False), (b">", False)])
def test_needs_quote(line, quoted):
    assert mbox.needs_quote(line) is quoted


def source(tmp_path, data):
    path = tmp_path / "message"
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


def test_append_writes_head_quoted_message_and_blank_line(tmp_path):
    fd = source(tmp_path, b"Subject: s\n\nFrom me\n")
    mbox.append(str(tmp_path / "box"), b"From x Thu Jan 01 00:00:00 1970\n", fd)
    assert (tmp_path / "box").read_bytes() == (b"From x Thu Jan 01 00:00:00 1970\n"
                                               b"Subject: s\n\n>From me\n\n")


def test_qmail_local_waits_for_the_lock_holder(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    box = home / "Mailbox"
    box.write_bytes(b"")
    (tmp_path / "m").write_bytes(b"x\n")
    holder = os.open(box, os.O_WRONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    with open(tmp_path / "m", "rb") as stdin:
        proc = support.Proc([support.prog("qmail-local"), "u", str(home), "u", "", "", "h",
                             "s@x", "./Mailbox"], stdin=stdin)
        time.sleep(0.5)
        assert proc.alive() and box.read_bytes() == b""
        fcntl.flock(holder, fcntl.LOCK_UN)
        assert proc.wait(10) == 0
    assert box.read_bytes().endswith(b"Delivered-To: u@h\nx\n\n")
    os.close(holder)


def test_lock_held_too_long_is_an_error_and_nothing_written(tmp_path):
    box = tmp_path / "box"
    box.write_bytes(b"old\n")
    holder = os.open(box, os.O_WRONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    with pytest.raises(mbox.MboxError) as caught:
        mbox.append(str(box), b"H\n", source(tmp_path, b"x\n"), lock_seconds=1)
    assert caught.value.kind == "lock"
    assert box.read_bytes() == b"old\n"
    os.close(holder)


def test_unreadable_source_truncates_back(tmp_path):
    box = tmp_path / "box"
    box.write_bytes(b"old\n")
    write_only = os.open(tmp_path / "wo", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(mbox.MboxError) as caught:
        mbox.append(str(box), b"H\n", write_only)
    assert caught.value.kind == "read"
    assert box.read_bytes() == b"old\n"


body_lines = st.lists(st.sampled_from([b"From x", b">From y", b"text", b"", b"From", b" From z",
                                       b"a\rb"]), max_size=12)


@given(body_lines)
def test_python_mailbox_reads_back_every_quoted_message(lines):
    message = b"Subject: t\n\n" + b"\n".join(lines) + b"\n"
    text = mbox.from_line(b"s@x", 0) + mbox.quote(message)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "box")
        with open(path, "wb") as f:
            f.write(text * 2)
        messages = list(mailbox.mbox(path, create=False))
    assert len(messages) == 2
    for m in messages:
        payload = m.get_payload(decode=False)
        expected = b"\n".join(b">" + l if mbox.needs_quote(l) else l for l in lines)
        assert payload.encode("latin-1").rstrip(b"\n") == expected.rstrip(b"\n")
