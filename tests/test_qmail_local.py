"""qmail-local through its qmail-local(8) command line: real homes, real files, real programs."""

import mailbox
import os
import re
import resource
import stat
import subprocess

import pytest

from tests import support

QL = "qmail-local"
MESSAGE = b"Subject: test\nFrom: a@b\n\nbody line\nFrom here on\n>From quoted\nlast\n"


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    h.chmod(0o755)
    return h


def run_local(home, local="joe", dash="", ext="", sender="s@example.org",
              default="./Maildir/", message=MESSAGE, opts=(), host="example.com",
              env=None, stdin_path=None, **kw):
    path = stdin_path or (home.parent / "message")
    if stdin_path is None:
        path.write_bytes(message)
    with open(path, "rb") as stdin:
        return subprocess.run([support.prog(QL), *opts, "joe", str(home), local, dash, ext,
                               host, sender, default], stdin=stdin, capture_output=True,
                              env=env or support.suite_env(), timeout=30, **kw)


def make_maildir(path):
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True)


def write_qmail(home, name, text, mode=0o644):
    path = home / name
    path.write_bytes(text)
    path.chmod(mode)
    return path


def env_dump_program(out):
    names = ("SENDER NEWSENDER RECIPIENT LOCAL USER HOME HOST HOST2 HOST3 HOST4 EXT EXT2 "
             "EXT3 EXT4 DEFAULT DTLINE RPLINE UFLINE").split()
    fields = " ".join(f'"{n}=${{{n}-unset}}"' for n in names)
    return f"|printf '%s\\n' {fields} > {out}\n".encode()


def read_env_dump(out):
    lines = out.read_text().split("\n")
    result, key = {}, None
    for line in lines:
        if "=" in line and line.split("=", 1)[0].isupper():
            key, value = line.split("=", 1)
            result[key] = value
        elif key is not None:
            result[key] += "\n" + line  # DTLINE and friends end in a newline
    return result


# --- Maildir and mbox ---------------------------------------------------------------

def test_maildir_delivery_adds_return_path_and_delivered_to(home):
    make_maildir(home / "Maildir")
    r = run_local(home)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"did 1+0+0\n"
    new = list((home / "Maildir" / "new").iterdir())
    assert len(new) == 1
    assert new[0].read_bytes() == (b"Return-Path: <s@example.org>\n"
                                   b"Delivered-To: joe@example.com\n" + MESSAGE)
    assert list((home / "Maildir" / "tmp").iterdir()) == []
    assert stat.S_IMODE(new[0].stat().st_mode) == 0o600


def test_mbox_delivery_writes_from_line_and_quotes_from_lines(home):
    r = run_local(home, default="./Mailbox", sender="")
    assert r.returncode == 0, r.stderr
    text = (home / "Mailbox").read_bytes()
    first, rest = text.split(b"\n", 1)
    assert first.startswith(b"From MAILER-DAEMON ")
    assert first[-4:].isdigit() and len(first.split()) == 7
    assert rest == (b"Return-Path: <>\nDelivered-To: joe@example.com\n"
                    b"Subject: test\nFrom: a@b\n\nbody line\n>From here on\n>>From quoted\nlast\n\n")


def test_mbox_adds_final_newline_when_message_lacks_one(home):
    r = run_local(home, default="./Mailbox", message=b"Subject: x\n\nno newline")
    assert r.returncode == 0, r.stderr
    assert (home / "Mailbox").read_bytes().endswith(b"\n\nno newline\n\n")


def test_mbox_from_line_replaces_blanks_in_sender(home):
    r = run_local(home, default="./Mailbox", sender="a b\tc@d")
    assert r.returncode == 0, r.stderr
    assert (home / "Mailbox").read_bytes().startswith(b"From a-b-c@d ")


def test_return_path_quotes_local_part_as_rfc821(home):
    make_maildir(home / "Maildir")
    r = run_local(home, sender='a b"c@example.org')
    assert r.returncode == 0, r.stderr
    got = next((home / "Maildir" / "new").iterdir()).read_bytes()
    assert got.startswith(b'Return-Path: <"a b\\"c"@example.org>\n')


def test_python_mailbox_reads_what_we_write(home):
    make_maildir(home / "Maildir")
    write_qmail(home, ".qmail", b"./Maildir/\n./Mailbox\n")
    for n in range(3):
        r = run_local(home, message=MESSAGE.replace(b"test", b"test %d" % n))
        assert r.returncode == 0, r.stderr
    md = mailbox.Maildir(str(home / "Maildir"), factory=None, create=False)
    assert sorted(m["Subject"] for m in md) == ["test 0", "test 1", "test 2"]
    mb = mailbox.mbox(str(home / "Mailbox"), create=False)
    messages = list(mb)
    assert [m["Subject"] for m in messages] == ["test 0", "test 1", "test 2"]
    assert all(m.get_payload().rstrip("\n").endswith(">>From quoted\nlast") for m in messages)


def test_unreadable_maildir_defers_with_qmail_text(home):
    r = run_local(home, default="./Nowhere/")
    assert r.returncode == 111
    assert r.stderr == b"Unable to chdir to maildir. (#4.2.1)\n"


def test_mbox_open_failure_defers(home):
    r = run_local(home, default="./missing/dir/Mailbox")
    assert r.returncode == 111
    assert r.stderr == b"Unable to open ./missing/dir/Mailbox: file does not exist. (#4.2.1)\n"


def test_mbox_write_failure_truncates_back_to_old_size(home):
    mbox = home / "Mailbox"
    mbox.write_bytes(b"From x Thu Jan 01 00:00:00 1970\nSubject: old\n\nold\n\n")
    old = mbox.read_bytes()
    big = b"Subject: big\n\n" + b"x" * 200_000 + b"\n"
    limit = len(old) + 100_000

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    r = run_local(home, default="./Mailbox", message=big, preexec_fn=small_files)
    assert r.returncode == 111
    assert r.stderr == b"Unable to write ./Mailbox: file too big. (#4.3.0)\n"
    assert mbox.read_bytes() == old


def test_non_seekable_message_defers(home):
    make_maildir(home / "Maildir")
    r = subprocess.run([support.prog(QL), "joe", str(home), "joe", "", "", "example.com",
                        "s@x", "./Maildir/"], input=MESSAGE, capture_output=True, timeout=30)
    assert r.returncode == 111
    assert r.stderr == b"Unable to rewind message. (#4.3.0)\n"


# --- .qmail semantics ---------------------------------------------------------------

def test_empty_dot_qmail_means_default_delivery(home):
    make_maildir(home / "Maildir")
    write_qmail(home, ".qmail", b"")
    r = run_local(home)
    assert (r.returncode, r.stdout) == (0, b"did 1+0+0\n")


def test_comment_only_dot_qmail_discards_the_message(home):
    make_maildir(home / "Maildir")
    write_qmail(home, ".qmail", b"# nothing here\n#\n")
    r = run_local(home)
    assert (r.returncode, r.stdout) == (0, b"did 0+0+0\n")
    assert list((home / "Maildir" / "new").iterdir()) == []


def test_blank_first_line_defers(home):
    write_qmail(home, ".qmail", b"\n./Mailbox\n")
    r = run_local(home)
    assert r.returncode == 111
    assert r.stderr == b"Uh-oh: first line of .qmail file is blank. (#4.2.1)\n"


def test_trailing_blanks_and_later_blank_lines_are_ignored(home):
    write_qmail(home, ".qmail", b"./Mailbox \t\n\n\n./Other\t\n")
    r = run_local(home)
    assert (r.returncode, r.stdout) == (0, b"did 2+0+0\n"), r.stderr
    assert (home / "Mailbox").exists() and (home / "Other").exists()


def test_extension_without_file_bounces(home):
    r = run_local(home, local="joe-nothing", dash="-", ext="nothing")
    assert r.returncode == 100
    assert r.stderr == b"Sorry, no mailbox here by that name. (#5.1.1)\n"


# (ext, files present, file that must control, DEFAULT it implies or None)
LOOKUP = [
    ("foo", [".qmail-foo", ".qmail-default"], ".qmail-foo", None),
    ("foo", [".qmail-default"], ".qmail-default", "foo"),
    ("foo-bar", [".qmail-foo-bar", ".qmail-foo-default", ".qmail-default"], ".qmail-foo-bar", None),
    ("foo-bar", [".qmail-foo-default", ".qmail-default"], ".qmail-foo-default", "bar"),
    ("foo-bar", [".qmail-default"], ".qmail-default", "foo-bar"),
    ("foo-bar-", [".qmail-foo-bar-default", ".qmail-foo-default"], ".qmail-foo-bar-default", ""),
    ("foo-bar-", [".qmail-foo-bar-"], ".qmail-foo-bar-", None),
    ("a-b-c", [".qmail-a-b-default", ".qmail-a-default"], ".qmail-a-b-default", "c"),
    ("a-b-c", [".qmail-a-default", ".qmail-default"], ".qmail-a-default", "b-c"),
    ("a-b-c", [".qmail-a-b-c", ".qmail-a-b-default"], ".qmail-a-b-c", None),
    ("Foo-Bar", [".qmail-foo-bar"], ".qmail-foo-bar", None),
    ("Foo-Bar", [".qmail-foo-default"], ".qmail-foo-default", "Bar"),
    ("john.doe", [".qmail-john:doe"], ".qmail-john:doe", None),
    # an exact file ending in "default" sets DEFAULT as qmail-local does: from that word on
    ("list-default", [".qmail-list-default"], ".qmail-list-default", "default"),
]


@pytest.mark.parametrize("ext,files,chosen,default", LOOKUP)
def test_dot_qmail_lookup_order_and_default(home, ext, files, chosen, default):
    for name in files:
        write_qmail(home, name, env_dump_program(home.parent / name.replace(":", "_")))
    r = run_local(home, local="joe-" + ext, dash="-", ext=ext)
    assert (r.returncode, r.stdout) == (0, b"did 0+0+1\n"), r.stderr
    dumped = [p.name for p in home.parent.iterdir() if p.name.startswith(".qmail")]
    assert dumped == [chosen.replace(":", "_")]
    env = read_env_dump(home.parent / chosen.replace(":", "_"))
    assert env["DEFAULT"] == ("unset" if default is None else default)
    assert env["EXT"] == ext


def test_no_dash_uses_dot_qmail_itself(home):
    write_qmail(home, ".qmail", env_dump_program(home.parent / "dump"))
    write_qmail(home, ".qmail-default", b"./Wrong\n")
    r = run_local(home, local="joe", dash="", ext="")
    assert (r.returncode, r.stdout) == (0, b"did 0+0+1\n"), r.stderr


def test_program_sees_the_qmail_command_environment(home):
    out = home.parent / "dump"
    write_qmail(home, ".qmail-foo-default", env_dump_program(out))
    r = run_local(home, local="joe-foo-bar-baz-qux", dash="-", ext="foo-bar-baz-qux",
                  host="mail.a.b.example.com", sender="s@x.org")
    assert r.returncode == 0, r.stderr
    env = read_env_dump(out)
    assert env == {
        "SENDER": "s@x.org", "NEWSENDER": "s@x.org",
        "RECIPIENT": "joe-foo-bar-baz-qux@mail.a.b.example.com",
        "LOCAL": "joe-foo-bar-baz-qux", "USER": "joe", "HOME": str(home),
        "HOST": "mail.a.b.example.com", "HOST2": "mail.a.b.example", "HOST3": "mail.a.b",
        "HOST4": "mail.a", "EXT": "foo-bar-baz-qux", "EXT2": "bar-baz-qux",
        "EXT3": "baz-qux", "EXT4": "qux", "DEFAULT": "bar-baz-qux",
        "DTLINE": "Delivered-To: joe-foo-bar-baz-qux@mail.a.b.example.com\n",
        "RPLINE": "Return-Path: <s@x.org>\n",
        "UFLINE": env["UFLINE"],
    }
    assert env["UFLINE"].startswith("From s@x.org ") and env["UFLINE"].endswith("\n")


def test_short_host_and_extension_fields(home):
    out = home.parent / "dump"
    write_qmail(home, ".qmail-x", env_dump_program(out))
    r = run_local(home, local="joe-x", dash="-", ext="x", host="localhost")
    assert r.returncode == 0, r.stderr
    env = read_env_dump(out)
    assert (env["HOST2"], env["HOST3"], env["HOST4"]) == ("localhost",) * 3
    assert (env["EXT"], env["EXT2"], env["EXT3"], env["EXT4"]) == ("x", "", "", "")


def test_program_runs_in_home_with_message_on_stdin(home):
    out = home.parent / "got"
    write_qmail(home, ".qmail", f"|pwd > {out}; cat >> {out}\n".encode())
    r = run_local(home)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == str(home).encode() + b"\n" + MESSAGE


def test_program_output_goes_into_the_report(home):
    write_qmail(home, ".qmail", b"|echo hello from the program\n")
    r = run_local(home)
    assert r.returncode == 0
    assert r.stdout == b"hello from the program\ndid 0+0+1\n"


@pytest.mark.parametrize("code,expected", [
    (0, 0), (99, 0), (100, 100), (64, 100), (65, 100), (70, 100), (76, 100), (77, 100),
    (78, 100), (112, 100), (1, 111), (111, 111), (2, 111), (75, 111)])
def test_program_exit_codes_as_qmail_command(home, code, expected):
    write_qmail(home, ".qmail", f"|echo out; exit {code}\n".encode())
    r = run_local(home)
    assert r.returncode == expected
    assert r.stdout.startswith(b"out\n")


def test_program_killed_by_signal_defers(home):
    write_qmail(home, ".qmail", b"|kill -9 $$\n")
    r = run_local(home)
    assert r.returncode == 111
    assert r.stderr == b"Aack, child crashed. (#4.3.0)\n"


def test_exit_99_skips_the_rest_of_the_file(home):
    write_qmail(home, ".qmail", b"./First\n|exit 99\n./Second\n")
    r = run_local(home)
    assert (r.returncode, r.stdout) == (0, b"did 1+0+1\n")
    assert (home / "First").exists() and not (home / "Second").exists()


def test_failure_stops_at_the_failing_line(home):
    write_qmail(home, ".qmail", b"./First\n|exit 100\n./Second\n")
    r = run_local(home)
    assert r.returncode == 100
    assert (home / "First").exists() and not (home / "Second").exists()


# --- safety checks --------------------------------------------------------------------

def test_message_with_our_delivered_to_line_bounces_as_loop(home):
    make_maildir(home / "Maildir")
    looping = b"Received: x\nDelivered-To: joe@example.com\nSubject: y\n\nbody\n"
    r = run_local(home, message=looping)
    assert r.returncode == 100
    assert r.stderr == b"This message is looping: it already has my Delivered-To line. (#5.4.6)\n"
    assert list((home / "Maildir" / "new").iterdir()) == []


def test_delivered_to_in_body_or_for_others_is_not_a_loop(home):
    make_maildir(home / "Maildir")
    message = b"Delivered-To: other@example.com\n\nDelivered-To: joe@example.com\n"
    r = run_local(home, message=message)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("mode", [0o757, 0o777, 0o1757])
def test_home_writable_by_others_defers(home, mode):
    home.chmod(mode)
    r = run_local(home)
    assert r.returncode == 111
    assert r.stderr == b"Uh-oh: home directory is writable. (#4.7.0)\n"


def test_sticky_home_defers_while_user_edits(home):
    home.chmod(0o1755)
    r = run_local(home)
    assert r.returncode == 111
    assert r.stderr == b"Home directory is sticky: user is editing his .qmail file. (#4.2.1)\n"


def test_sticky_home_only_warns_with_n(home):
    home.chmod(0o1755)
    r = run_local(home, opts=["-n"])
    assert r.returncode == 0
    assert r.stderr == b"Warning: home directory is sticky.\n"
    assert r.stdout == b"maildir ./Maildir/\ndid 1+0+0\n"


def test_dot_qmail_writable_by_others_defers(home):
    write_qmail(home, ".qmail", b"./Mailbox\n", mode=0o646)
    r = run_local(home)
    assert r.returncode == 111
    assert r.stderr == b"Uh-oh: .qmail file is writable. (#4.7.0)\n"
    assert not (home / "Mailbox").exists()


def test_execute_bit_makes_dot_qmail_forward_only(home):
    write_qmail(home, ".qmail", b"./Mailbox\n", mode=0o744)
    r = run_local(home)
    assert r.returncode == 111
    assert r.stderr == b"Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)\n"
    write_qmail(home, ".qmail", b"+list\n|echo hi\n")
    r = run_local(home)
    assert r.returncode == 111
    assert r.stderr == b"Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)\n"


def test_slash_and_dotdot_in_extension_stay_inside_home(home, tmp_path):
    (tmp_path / ".qmail-etc").write_bytes(b"|touch escaped\n")
    write_qmail(home, ".qmail-default", b"./Mailbox\n")
    r = run_local(home, local="joe-../.qmail-etc", dash="-", ext="../.qmail-etc")
    assert r.returncode == 0, r.stderr
    assert (home / "Mailbox").exists()
    assert not (home / "escaped").exists() and not (tmp_path / "escaped").exists()


def test_shell_metacharacters_in_addresses_are_never_executed(home):
    out = home.parent / "dump"
    write_qmail(home, ".qmail-default", env_dump_program(out))
    evil = "x;touch pwned1`touch pwned2`$(touch pwned3)"
    r = run_local(home, local="joe-" + evil, dash="-", ext=evil, sender=evil + "@x'\"y")
    assert r.returncode == 0, r.stderr
    env = read_env_dump(out)
    assert env["EXT"] == evil and env["SENDER"] == evil + "@x'\"y"
    assert not any(p.name.startswith("pwned") for p in home.iterdir())


def test_huge_dot_qmail_line_is_handled(home):
    write_qmail(home, ".qmail", b"#" + b"x" * 1_000_000 + b"\n./Mailbox\n")
    r = run_local(home)
    assert (r.returncode, r.stdout) == (0, b"did 1+0+0\n")


# --- forwards -------------------------------------------------------------------------

@pytest.fixture
def fake_queue(tmp_path):
    """A $QMAILQUEUE that records message and envelope, exiting with $FAKE_QQ_EXIT."""
    script = tmp_path / "fake-qmail-queue"
    script.write_text(f"#!/bin/sh\ncat > {tmp_path}/qq.message\n"
                      f"cat <&1 > {tmp_path}/qq.envelope\nexit ${{FAKE_QQ_EXIT:-0}}\n")
    script.chmod(0o755)
    return script


def test_forward_lines_queue_one_message_with_delivered_to(home, tmp_path, fake_queue):
    write_qmail(home, ".qmail", b"&one@example.net\ntwo@example.net\n./Mailbox\n")
    r = run_local(home, env=support.suite_env(QMAILQUEUE=fake_queue))
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(rb"did 1\+2\+0\nqp [1-9][0-9]*\n", r.stdout), r.stdout
    assert (tmp_path / "qq.message").read_bytes() == b"Delivered-To: joe@example.com\n" + MESSAGE
    assert (tmp_path / "qq.envelope").read_bytes() == \
        b"Fs@example.org\0Tone@example.net\0Ttwo@example.net\0\0"


def test_forward_happens_only_after_other_instructions_succeed(home, tmp_path, fake_queue):
    write_qmail(home, ".qmail", b"&one@example.net\n|exit 111\n")
    r = run_local(home, env=support.suite_env(QMAILQUEUE=fake_queue))
    assert r.returncode == 111
    assert not (tmp_path / "qq.message").exists()


@pytest.mark.parametrize("code,exit_code,text", [
    (53, 111, b"Unable to forward message: qq write error or disk full (#4.3.0).\n"),
    (31, 100, b"Unable to forward message: mail server permanently rejected message (#5.3.0).\n"),
])
def test_forward_failure_reports_queue_text(home, fake_queue, code, exit_code, text):
    write_qmail(home, ".qmail", b"&one@example.net\n")
    r = run_local(home, env=support.suite_env(QMAILQUEUE=fake_queue, FAKE_QQ_EXIT=code))
    assert r.returncode == exit_code
    assert r.stderr == text


@pytest.mark.parametrize("files,sender,newsender", [
    ([], "s@x.org", "s@x.org"),
    ([".qmail-list-owner"], "s@x.org", "joe-list-owner@example.com"),
    ([".qmail-list-owner", ".qmail-list-owner-default"], "s@x.org",
     "joe-list-owner-@example.com-@[]"),
    ([".qmail-list-owner"], "", ""),
    ([".qmail-list-owner"], "#@[]", "#@[]"),
])
def test_newsender_follows_list_owner_files(home, tmp_path, fake_queue, files, sender, newsender):
    write_qmail(home, ".qmail-list", b"&member@example.net\n")
    for name in files:
        write_qmail(home, name, b"./OwnerBox\n")
    r = run_local(home, local="joe-list", dash="-", ext="list", sender=sender,
                  env=support.suite_env(QMAILQUEUE=fake_queue))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "qq.envelope").read_bytes().startswith(b"F" + newsender.encode() + b"\0")


def test_dash_n_prints_instructions_without_delivering(home, tmp_path, fake_queue):
    write_qmail(home, ".qmail", b"# c\n./Maildir/\n./Mailbox\n|cat > x\n&fw@d\nbare@d\n")
    r = run_local(home, opts=["-n"], env=support.suite_env(QMAILQUEUE=fake_queue))
    assert r.returncode == 0, r.stderr
    assert r.stdout == (b"maildir ./Maildir/\nmbox ./Mailbox\nprogram cat > x\n"
                        b"forward fw@d\nforward bare@d\ndid 2+2+1\n")
    assert not (home / "Mailbox").exists() and not (tmp_path / "qq.message").exists()


@pytest.mark.parametrize("argv", [[], ["a"], ["-x", "u", "/h", "l", "", "", "h", "s", "d"],
                                  ["u", "relative", "l", "", "", "h", "s", "d"],
                                  ["u", "/h", "l", "", "", "h", "s", "d", "extra"]])
def test_usage(argv):
    r = support.run([support.prog(QL), *argv])
    assert r.returncode == 100
    assert r.stderr.endswith(b"qmail-local: usage: qmail-local [ -nN ] user homedir local "
                             b"dash ext domain sender aliasempty\n")


def test_missing_home_defers(tmp_path):
    (tmp_path / "m").write_bytes(MESSAGE)
    with open(tmp_path / "m", "rb") as stdin:
        r = subprocess.run([support.prog(QL), "u", str(tmp_path / "nohome"), "u", "", "",
                            "h", "s", "./Maildir/"], stdin=stdin, capture_output=True, timeout=30)
    assert r.returncode == 111
    assert r.stderr == f"Unable to switch to {tmp_path}/nohome: file does not exist. (#4.3.0)\n".encode()


# --- concurrency ----------------------------------------------------------------------

def start_many(home, count, default):
    procs = []
    for n in range(count):
        path = home.parent / f"msg{n}"
        path.write_bytes(b"Subject: %d\n\nFrom the body %d\n" % (n, n) + b"line\n" * 200)
        stdin = open(path, "rb")
        procs.append((subprocess.Popen([support.prog(QL), "joe", str(home), "joe", "", "",
                                        "example.com", "s@x", default], stdin=stdin,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       env=support.suite_env()), stdin))
    results = []
    for proc, stdin in procs:
        out, err = proc.communicate(timeout=60)
        stdin.close()
        results.append((proc.returncode, out, err))
    return results


def test_concurrent_maildir_deliveries_each_arrive_once(home):
    make_maildir(home / "Maildir")
    results = start_many(home, 24, "./Maildir/")
    assert all(r[0] == 0 for r in results), results
    new = list((home / "Maildir" / "new").iterdir())
    assert list((home / "Maildir" / "tmp").iterdir()) == []
    subjects = sorted(int(p.read_bytes().split(b"Subject: ")[1].split(b"\n")[0]) for p in new)
    assert subjects == list(range(24))


def test_concurrent_mbox_deliveries_do_not_interleave(home):
    results = start_many(home, 24, "./Mailbox")
    assert all(r[0] == 0 for r in results), results
    mb = mailbox.mbox(str(home / "Mailbox"), create=False)
    seen = []
    for m in mb:
        n = int(m["Subject"])
        # mailbox keeps the separating blank line only on the last message
        assert m.get_payload().rstrip("\n") == ">From the body %d\n" % n + "line\n" * 199 + "line"
        seen.append(n)
    assert sorted(seen) == list(range(24))
    raw = (home / "Mailbox").read_bytes()
    assert raw.count(b"\nFrom ") + raw.startswith(b"From ") == 24
    assert raw.endswith(b"line\n\n")


# --- as an ordinary user (embedded mode) ----------------------------------------------

@pytest.fixture
def user_home():
    """A home an ordinary user owns, in a directory that user can reach."""
    import shutil
    import tempfile
    user = support.unprivileged_user()
    base = tempfile.mkdtemp(prefix="qmail-local-")
    os.chmod(base, 0o755)
    home = os.path.join(base, "home")
    os.mkdir(home, 0o755)
    for sub in ("Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"):
        os.mkdir(os.path.join(home, sub), 0o700)
    with open(os.path.join(base, "message"), "wb") as f:
        f.write(MESSAGE)
    with open(os.path.join(home, ".qmail"), "wb") as f:
        f.write(b"./Maildir/\n./Mailbox\n|id -u\n")
    if os.getuid() == 0:
        for d, dirs, files in os.walk(base):
            for name in [d] + [os.path.join(d, x) for x in dirs + files]:
                os.chown(name, user.pw_uid, user.pw_gid)
    yield user, base, home
    shutil.rmtree(base, ignore_errors=True)


def test_ordinary_user_delivers_into_own_home(user_home):
    user, base, home = user_home
    with open(os.path.join(base, "message"), "rb") as stdin:
        r = subprocess.run(support.as_user([support.prog(QL), user.pw_name, home, "joe", "", "",
                                            "example.com", "s@x", "./Maildir/"], user),
                           stdin=stdin, capture_output=True, env=support.suite_env(), timeout=30)
    assert (r.returncode, r.stdout) == (0, b"%d\ndid 2+0+1\n" % user.pw_uid), r.stderr
    [name] = os.listdir(os.path.join(home, "Maildir", "new"))
    for path in (os.path.join(home, "Maildir", "new", name), os.path.join(home, "Mailbox")):
        st = os.stat(path)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, 0o600)
