"""dot-forward: the same .forward files through Debian's dot-forward 0.71 and ours."""

import re
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from tests import support

LINES = [
    "bob", "Bob", "joe", "JOE", "joe@example.com", "Joe@Example.Com", "joe@other.com", "\\joe",
    '"|vacation bob"', "|cmd", '"|cmd with @ sign"', "/tmp/x", '"/tmp/x"', "a@b, c@d",
    ":include: /x", "# c", "", "  ", "a@b,", ",a@b", "<a@b>", "x <a@b>, y <c@d>",
    '"quoted box"@x', "a(comment)@b", "a@[1.2.3.4]", "a@b.", "joe@example.com.", "<>",
    "joe@localhost", "grp:;", "a b c", "a: b", "a;", ": a", "a b: c", "a: b; c", "p q <a@b>",
    "<a@b> c", "a <b> <c>", "a.b", "a . b", ".a", "a@b.c.d", "a@.b", "@a", "a@", '"a"@"b"',
    "a@b (c) d", "(c) joe", "joe (c)", "<joe>", "<JOE@example.com>", "Joe <joe>",
    '"|prog" "|prog2"', "|prog arg", "| prog", '"/file"@x', "/file@x", "a|b", "|a@b", "a,,b",
    ",", "<> a", "\\bob", "\\|prog", "joe@example", "a@[b]+", "a+@b", "a@B", '"a b"',
    "joe@example.com+", "a@[b", "(unclosed", '"unclosed', "<a@b", "a@b>", "a@b+", "a@b.c+",
    "a%b@c", "a@b@c", "joe, bob", "bob\n# comment\nfred, joe@example.com",
]


def both(tmp_path, text, args=("-n",), env=None):
    (tmp_path / ".forward").write_text(text)
    (tmp_path / "control").mkdir(exist_ok=True)
    base = support.suite_env(USER="joe", HOST="example.com", QMAIL_ROOT=tmp_path, **(env or {}))
    results = []
    for program in (support.c_tool("dot-forward"), support.prog("dot-forward")):
        r = subprocess.run([program, *args, ".forward"], capture_output=True, env=base,
                           cwd=tmp_path, timeout=30)
        results.append((r.returncode, r.stdout, r.stderr))
    return results


@pytest.mark.parametrize("text", LINES)
def test_dash_n_matches_debian_dot_forward(tmp_path, text):
    c, ours = both(tmp_path, text + "\n")
    assert ours == c


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet='ab|/\\@.,:;<>()" +#joe', max_size=14))
def test_random_lines_match_debian_dot_forward(tmp_path_factory, text):
    c, ours = both(tmp_path_factory.mktemp("df"), text + "\n")
    assert ours == c


def test_first_existing_nonempty_file_is_used(tmp_path):
    (tmp_path / "empty").write_text("# nothing\n")
    (tmp_path / "used").write_text("bob\n")
    (tmp_path / "later").write_text("fred\n")
    (tmp_path / "control").mkdir()
    r = support.run([support.prog("dot-forward"), "-n", "missing", "empty", "used", "later"],
                    env=support.suite_env(USER="joe", QMAIL_ROOT=tmp_path), cwd=tmp_path)
    assert (r.returncode, r.stderr) == (99, b"skipping empty file empty\nforward bob@me.me\n")


def test_control_files_qualify_addresses(tmp_path):
    (tmp_path / "control").mkdir()
    (tmp_path / "control" / "me").write_text("mx.example.org\n")
    (tmp_path / "control" / "defaultdomain").write_text("example.org\n")
    (tmp_path / "control" / "plusdomain").write_text("plus.example\n")
    (tmp_path / ".forward").write_text("bob, a@b, c@d+\n")
    r = support.run([support.prog("dot-forward"), "-n", ".forward"],
                    env=support.suite_env(USER="joe", QMAIL_ROOT=tmp_path), cwd=tmp_path)
    assert r.stderr == b"forward c@d.plus.example\nforward a@b.example.org\nforward bob@mx.example.org\n"


def test_no_file_means_direct_delivery(tmp_path):
    r = support.run([support.prog("dot-forward"), "missing"],
                    env=support.suite_env(QMAIL_ROOT=tmp_path), cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


def test_usage(tmp_path):
    r = support.run([support.prog("dot-forward"), "-x", "f"], env=support.suite_env(QMAIL_ROOT=tmp_path))
    assert r.returncode == 100
    assert r.stderr == b"dot-forward: illegal option -- x\ndot-forward: usage: dot-forward [ -nN ] file ...\n"


# --- following the instructions ---------------------------------------------------------

@pytest.fixture
def fake_queue(tmp_path):
    script = tmp_path / "fake-qmail-queue"
    script.write_text(f"#!/bin/sh\ncat > {tmp_path}/qq.message\n"
                      f"cat <&1 > {tmp_path}/qq.envelope\nexit ${{FAKE_QQ_EXIT:-0}}\n")
    script.chmod(0o755)
    return script


def deliver(tmp_path, forward_text, env=None):
    (tmp_path / ".forward").write_text(forward_text)
    (tmp_path / "control").mkdir(exist_ok=True)
    (tmp_path / "message").write_bytes(b"Subject: s\n\nbody\n")
    base = support.suite_env(USER="joe", HOST="example.com", QMAIL_ROOT=tmp_path,
                             UFLINE="From s@x Thu Jan 01 00:00:00 1970\n",
                             RPLINE="Return-Path: <s@x>\n", DTLINE="Delivered-To: joe@example.com\n",
                             NEWSENDER="s@x", **(env or {}))
    with open(tmp_path / "message", "rb") as stdin:
        return subprocess.run([support.prog("dot-forward"), ".forward"], stdin=stdin,
                              capture_output=True, env=base, cwd=tmp_path, timeout=30)


def test_forwards_queue_one_message_and_exit_99(tmp_path, fake_queue):
    r = deliver(tmp_path, "bob@x.org, fred\n", {"QMAILQUEUE": fake_queue})
    assert r.returncode == 99, r.stderr
    assert re.fullmatch(rb"dot-forward: info: qp [1-9][0-9]*\n", r.stderr)
    assert (tmp_path / "qq.message").read_bytes() == b"Delivered-To: joe@example.com\nSubject: s\n\nbody\n"
    assert (tmp_path / "qq.envelope").read_bytes() == b"Fs@x\0Tfred@me.me\0Tbob@x.org\0\0"


def test_direct_delivery_with_forward_exits_0(tmp_path, fake_queue):
    r = deliver(tmp_path, "joe, bob@x.org\n", {"QMAILQUEUE": fake_queue})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "qq.envelope").read_bytes() == b"Fs@x\0Tbob@x.org\0\0"


def test_program_gets_delivery_lines_and_message(tmp_path):
    out = tmp_path / "got"
    r = deliver(tmp_path, f'"|cat > {out}"\n')
    assert r.returncode == 99, r.stderr
    assert out.read_bytes() == (b"From s@x Thu Jan 01 00:00:00 1970\nReturn-Path: <s@x>\n"
                                b"Delivered-To: joe@example.com\nSubject: s\n\nbody\n")


@pytest.mark.parametrize("code,expected", [(0, 99), (1, 111), (99, 111), (100, 100), (64, 100),
                                           (111, 111)])
def test_program_exit_codes_match_debian_dot_forward(tmp_path, code, expected):
    r = deliver(tmp_path, f'"|cat >/dev/null; exit {code}"\n')
    assert r.returncode == expected
    if support.have_c_tool("dot-forward"):
        env = support.suite_env(USER="joe", UFLINE="a\n", RPLINE="b\n", DTLINE="c\n")
        with open(tmp_path / "message", "rb") as stdin:
            c = subprocess.run(["/usr/bin/dot-forward", ".forward"], stdin=stdin, env=env,
                               cwd=tmp_path, capture_output=True, timeout=30)
        assert c.returncode == expected


def test_queue_failure_is_reported(tmp_path, fake_queue):
    r = deliver(tmp_path, "bob@x.org\n", {"QMAILQUEUE": fake_queue, "FAKE_QQ_EXIT": "53"})
    assert (r.returncode, r.stderr) == (
        111, b"dot-forward: fatal: unable to forward message: qq write error or disk full (#4.3.0)\n")


def test_file_delivery_is_refused(tmp_path):
    r = deliver(tmp_path, "/var/mail/joe\n")
    assert (r.returncode, r.stderr) == (111, b"dot-forward: fatal: file delivery /var/mail/joe not supported\n")
