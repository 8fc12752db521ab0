"""qmail-inject: header rewriting, recipients, sender and queueing, as qmail-inject(8)."""

import re
from pathlib import Path

import pytest

from tests import qmail_trees, support
from tests.qmail_trees import user_tree  # noqa: F401  (fixture)

# Variables qmail-inject reads: cleared so the tests see only what they set.
INJECT_VARIABLES = ("QMAILINJECT", "QMAILHOST", "MAILHOST", "QMAILSHOST", "QMAILUSER", "MAILUSER",
                    "USER", "LOGNAME", "QMAILSUSER", "QMAILNAME", "MAILNAME", "NAME",
                    "QMAILDEFAULTDOMAIN", "QMAILDEFAULTHOST", "QMAILPLUSDOMAIN", "QMAILIDHOST",
                    "QMAILMFTFILE", "QMAILQUEUE")

FAKE_QUEUE = """#!/bin/sh
# records what qmail-inject gives qmail-queue: message on fd 0, envelope on fd 1
cat > "$FAKEQ_DIR/message"
cat <&1 > "$FAKEQ_DIR/envelope"
if [ -n "$FAKEQ_TEXT" ]; then printf '%s' "$FAKEQ_TEXT" >&6; fi
exit ${FAKEQ_EXIT:-0}
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """An embedded installation whose control files make completions visible."""
    base = tmp_path_factory.mktemp("inject")
    root = Path(qmail_trees.embedded_tree(base, fqdn="mx.example.com"))
    control = root / "control"
    for name, value in (("defaulthost", "example.com"), ("defaultdomain", "dom.example"),
                        ("plusdomain", "plus.example"), ("idhost", "id.example.com")):
        (control / name).write_text(value + "\n")
    fake = base / "fakeq"
    fake.write_text(FAKE_QUEUE)
    fake.chmod(0o755)
    return root


def inject_env(tree, **extra):
    clear = {name: None for name in INJECT_VARIABLES}
    clear.update(QMAIL_ROOT=str(tree), USER="alice")
    clear.update(extra)
    return support.suite_env(**clear)


def inject(tree, message: bytes, *args, **env):
    return support.run([support.prog("qmail-inject"), *args], input=message,
                       env=inject_env(tree, **env))


def fake_inject(tree, tmp_path, message: bytes, *args, **env):
    """Run qmail-inject with the recording fake queue; (result, message, [envelope fields])."""
    env.update(QMAILQUEUE=str(tree.parent / "fakeq"), FAKEQ_DIR=str(tmp_path))
    done = inject(tree, message, *args, **env)
    mess = tmp_path / "message"
    data = mess.read_bytes() if mess.exists() else None
    envelope = tmp_path / "envelope"
    fields = envelope.read_bytes().split(b"\0") if envelope.exists() else None
    return done, data, fields


FIXED = b"Date: d\nMessage-ID: <m@x>\nFrom: f@a.b\n"


@pytest.mark.parametrize("field, rewritten", [
    (b"To: joe\n", b"To: joe@example.com\n"),
    (b"To: joe@host\n", b"To: joe@host.dom.example\n"),
    (b"To: joe@host+\n", b"To: joe@host.plus.example\n"),
    (b"To: joe@a.b\n", b"To: joe@a.b\n"),
    (b"To: joe@[1.2.3.4]\n", b"To: joe@[1.2.3.4]\n"),
    (b"To: joe@[]\n", b"To: joe@[]\n"),
    (b"To: joe@host.\n", b"To: joe@host.dom.example\n"),
    (b"To: joe@\n", b"To: joe@example.com\n"),
    (b"To: <@r1,@r2:joe@a.b>\n", b"To: <joe@a.b>\n"),
    (b"To: <>\n", b"To: <>\n"),
    (b'To: "Joe Q" <joe>\n', b'To: "Joe Q" <joe@example.com>\n'),
    (b"To: joe (Joe Q)\n", b"To: joe@example.com (Joe Q)\n"),
    (b"TO:a b\n", b"TO: a@example.com, b@example.com\n"),
    (b"To: list: a, b@c.d;\n", b"To: list: a@example.com, b@c.d;\n"),
    (b"To: j.q@x.y\n", b"To: j.q@x.y\n"),
    (b"Cc: x\n", b"Cc: x@example.com\n"),
    (b"Reply-To: r\n", b"To: t@a.b\nReply-To: r@example.com\n"),
    (b"Sender: s\n", b"To: t@a.b\nSender: s@example.com\n"),
    (b"Errors-To: e\n", b"To: t@a.b\nErrors-To: e@example.com\n"),
    (b"Subject: joe\n", b"To: t@a.b\nSubject: joe\n"),
    (b"X-Header: joe\n", b"To: t@a.b\nX-Header: joe\n"),
    (b"Bcc: hidden\n", b"To: t@a.b\n"),
    (b"Content-Length: 5\n", b"To: t@a.b\n"),
    (b"From someone Tue Nov 24\n", b"To: t@a.b\nMBOX-Line: From someone Tue Nov 24\n"),
    (b"To: a,\n  b\n", b"To: a@example.com, b@example.com\n"),
])
def test_header_field_rewriting(tree, field, rewritten):
    extra = b"" if field.lower().startswith((b"to", b"cc")) else b"To: t@a.b\n"
    done = inject(tree, FIXED + extra + field + b"\nbody\n", "-n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"Return-Path: <alice@example.com>\n" + FIXED + rewritten + b"\nbody\n"


def test_long_address_lists_are_refolded_at_80_columns(tree):
    names = b" ".join(b"someone%02d" % i for i in range(10))
    done = inject(tree, FIXED + b"To: " + names + b"\n\n", "-n")
    header = done.stdout.split(b"\n\n")[0]
    to = header[header.index(b"To:"):]
    assert all(len(line) <= 80 for line in to.split(b"\n"))
    assert to.count(b"@example.com") == 10
    assert b",\n  someone" in to


def test_missing_fields_are_added(tree):
    done = inject(tree, b"Subject: s\n\nbody\n", "-n")
    assert done.returncode == 0
    lines = done.stdout.decode().split("\n")
    assert lines[0] == "Return-Path: <alice@example.com>"
    assert re.fullmatch(r"Date: \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d -0000", lines[1])
    assert re.fullmatch(r"Message-ID: <\d{14}\.\d+\.qmail@id\.example\.com>", lines[2])
    assert lines[3:] == ["From: alice@example.com", "Cc: recipient list not shown: ;",
                         "Subject: s", "", "body", ""]


def test_resent_messages_get_resent_fields(tree):
    done = inject(tree, FIXED + b"To: t@a.b\nResent-Bcc: secret\n\nbody\n", "-n")
    out = done.stdout.decode()
    assert re.search(r"^Resent-Date: ", out, re.M)
    assert re.search(r"^Resent-Message-ID: <\d{14}\.\d+\.qmail@id\.example\.com>$", out, re.M)
    assert "\nResent-From: alice@example.com\n" in out
    assert "\nResent-Cc: recipient list not shown: ;\n" in out
    assert "secret" not in out and "\nCc: recipient" not in out


@pytest.mark.parametrize("env, from_line", [
    ({"NAME": "Alice A"}, b'From: "Alice A" <alice@example.com>\n'),
    ({"MAILNAME": "Mail Name", "NAME": "no"}, b'From: "Mail Name" <alice@example.com>\n'),
    ({"QMAILNAME": "Q", "MAILNAME": "no"}, b'From: "Q" <alice@example.com>\n'),
    ({"NAME": "Alice A", "QMAILINJECT": "c"}, b"From: alice@example.com (Alice A)\n"),
    ({"QMAILHOST": "h.example.net"}, b"From: alice@h.example.net\n"),
    ({"MAILHOST": "h"}, b"From: alice@h.dom.example\n"),
    ({"QMAILUSER": "bob", "USER": "no"}, b"From: bob@example.com\n"),
    ({"MAILUSER": "carol", "USER": "no"}, b"From: carol@example.com\n"),
    ({"USER": None, "LOGNAME": "dave"}, b"From: dave@example.com\n"),
    ({"USER": None}, b"From: anonymous@example.com\n"),
    ({"QMAILUSER": "j q"}, b'From: "j q"@example.com\n'),
])
def test_default_from_comes_from_the_environment(tree, env, from_line):
    done = inject(tree, b"Date: d\nMessage-ID: <m>\nTo: t@a.b\n\n", "-n", **env)
    assert from_line in done.stdout


@pytest.mark.parametrize("flags, dropped", [("f", b"From: f@a.b"), ("i", b"Message-ID: <m@x>")])
def test_qmailinject_flags_drop_fields_to_be_regenerated(tree, flags, dropped):
    done = inject(tree, FIXED + b"To: t@a.b\n\n", "-n", QMAILINJECT=flags)
    assert dropped not in done.stdout
    assert done.stdout.count(dropped.split(b":")[0] + b":") == 1  # a fresh one instead


@pytest.mark.parametrize("env, args, sender", [
    ({}, [], b"alice@example.com"),
    ({"QMAILSUSER": "bounces", "QMAILSHOST": "b.example.net"}, [], b"bounces@b.example.net"),
    ({"QMAILHOST": "h.x.y"}, [], b"alice@h.x.y"),
    ({"QMAILINJECT": "r"}, [], b"alice-@example.com-@[]"),
    ({}, ["-f", "boss"], b"boss@example.com"),
    ({}, ["-f", ""], b""),
    ({}, ["-f", "j q@a.b"], b"j q@a.b"),
])
def test_envelope_sender(tree, tmp_path, env, args, sender):
    done, _, fields = fake_inject(tree, tmp_path, FIXED + b"To: t@a.b\n\n", *args, **env)
    assert done.returncode == 0, done.stderr
    assert fields[0] == b"F" + sender


def test_return_path_field_gives_the_sender_and_is_removed(tree, tmp_path):
    done, mess, fields = fake_inject(tree, tmp_path, FIXED + b"Return-Path: <rp@x.y>\nTo: t@a.b\n\n")
    assert fields[0] == b"Frp@x.y"
    assert b"Return-Path" not in mess


def test_hack_mess_sender_carries_time_and_pid(tree, tmp_path):
    done, _, fields = fake_inject(tree, tmp_path, FIXED + b"To: t@a.b\n\n", QMAILINJECT="m")
    assert re.fullmatch(rb"Falice-\d+\.\d+@example\.com", fields[0])


HEADER_RCPTS = [b"a2@example.com", b"a@example.com", b"b@example.com", b"c@example.com"]


@pytest.mark.parametrize("args, recipients", [
    ([], HEADER_RCPTS),
    (["x"], [b"x@example.com"]),
    (["-a", "x"], [b"x@example.com"]),
    (["-a"], []),
    (["-h", "x"], HEADER_RCPTS),
    (["-H", "x", "y@z.w"], [b"x@example.com", b"y@z.w", *HEADER_RCPTS]),
    (["-A", "x"], [b"x@example.com"]),
])
def test_recipient_strategies(tree, tmp_path, args, recipients):
    # fields in order; within a field, addresses right to left, as qmail-inject collects them
    message = FIXED + b"To: a, a2\nCc: b\nBcc: c\nSubject: s\n\nbody\n"
    done, mess, fields = fake_inject(tree, tmp_path, message, *args)
    assert done.returncode == 0, done.stderr
    assert [f[1:] for f in fields[1:] if f] == recipients
    assert fields[-2:] == [b"", b""]
    assert b"Bcc" not in mess and mess.endswith(b"\n\nbody\n")


def test_resent_recipients_replace_the_original_ones(tree, tmp_path):
    message = FIXED + b"To: a\nResent-To: r1\nResent-Cc: r2\nResent-Bcc: r3\n\n"
    done, mess, fields = fake_inject(tree, tmp_path, message)
    assert [f[1:] for f in fields[1:] if f] == [b"r1@example.com", b"r2@example.com",
                                               b"r3@example.com"]
    assert b"r3" not in mess


def test_apparently_to_names_recipients(tree, tmp_path):
    done, mess, fields = fake_inject(tree, tmp_path, FIXED + b"Apparently-To: ap\n\n")
    assert fields[1] == b"Tap@example.com"
    assert b"Apparently-To: ap@example.com\n" in mess


def test_body_is_kept_byte_for_byte_and_completed(tree):
    body = b"line 1\r\n\n\x00\xff binary\nFrom not a header\nlast line without newline"
    done = inject(tree, FIXED + b"To: t@a.b\n\n" + body, "-n")
    assert done.stdout.endswith(b"\n\n" + body + b"\n")


def test_a_body_line_in_the_header_gets_a_blank_line_before_it(tree):
    done = inject(tree, FIXED + b"To: t@a.b\nthis is not a field\nmore\n", "-n")
    assert done.stdout.endswith(b"To: t@a.b\n\nthis is not a field\nmore\n")


@pytest.mark.parametrize("variable, value, expect", [
    ("QMAILDEFAULTHOST", "env.host", b"To: joe@env.host\n"),
    ("QMAILDEFAULTDOMAIN", "env.dom", b"To: joe@example.com, j@h.env.dom\n"),
    ("QMAILPLUSDOMAIN", "env.plus", b"To: joe@example.com, j@h.env.plus\n"),
])
def test_environment_overrides_control(tree, variable, value, expect):
    field = b"To: joe\n" if variable == "QMAILDEFAULTHOST" else (
        b"To: joe, j@h\n" if variable == "QMAILDEFAULTDOMAIN" else b"To: joe, j@h+\n")
    done = inject(tree, FIXED + field + b"\n", "-n", **{variable: value})
    assert expect in done.stdout


def test_qmailidhost_overrides_control_idhost(tree):
    done = inject(tree, b"To: t@a.b\n\n", "-n", QMAILIDHOST="env.id")
    assert re.search(rb"^Message-ID: <\d{14}\.\d+\.qmail@env\.id>$", done.stdout, re.M)


def test_controls_fall_back_to_me(tmp_path):
    root = Path(qmail_trees.embedded_tree(tmp_path, fqdn="only.me"))
    for name in ("defaulthost", "defaultdomain", "plusdomain", "idhost"):
        (root / "control" / name).unlink(missing_ok=True)
    done = inject(root, b"To: joe, j@h\n\n", "-n")
    assert b"To: joe@only.me, j@h.only.me\n" in done.stdout
    assert re.search(rb"qmail@only\.me>", done.stdout)


def test_mail_followup_to_for_mailing_lists(tree, tmp_path):
    lists = tmp_path / "lists"
    lists.write_text("# subscribed\nList@Example.com\n")
    done = inject(tree, FIXED + b"To: a@b.c, list@example.com\n\n", "-n", QMAILMFTFILE=str(lists))
    assert b"\nMail-Followup-To: a@b.c,\n  list@example.com\n" in done.stdout
    done = inject(tree, FIXED + b"To: a@b.c\n\n", "-n", QMAILMFTFILE=str(lists))
    assert b"Mail-Followup-To" not in done.stdout


@pytest.mark.parametrize("field", [b"To: (unclosed\n", b"Cc: \"open\n", b"From: a>\n",
                                   b"Reply-To: ]x\n", b"To: a;;\n"])
def test_unparseable_address_field_is_refused(tree, tmp_path, field):
    done, mess, _ = fake_inject(tree, tmp_path, FIXED + field + b"\nbody\n")
    assert done.returncode == 100
    assert done.stderr == b"qmail-inject: fatal: unable to parse this line:\n" + field
    assert mess is None  # qmail-queue never ran


def test_unparseable_recipient_argument_is_refused(tree, tmp_path):
    done, mess, _ = fake_inject(tree, tmp_path, FIXED, "ok", "a@(x")
    assert (done.returncode, done.stderr) == (100, b"qmail-inject: fatal: unable to parse address: a@(x\n")
    assert mess is None


def test_unparseable_sender_option_is_refused(tree):
    done = inject(tree, FIXED, "-f", "a@[x")
    assert (done.returncode, done.stderr) == (100, b"qmail-inject: fatal: unable to parse this line:\na@[x")


def test_bad_option(tree):
    done = inject(tree, FIXED, "-z")
    assert (done.returncode, done.stderr) == (100, b"qmail-inject: illegal option -- z\n")


@pytest.mark.parametrize("code, text, exit_code, message", [
    (53, "", 111, b"qq write error or disk full (#4.3.0)"),
    (31, "", 100, b"mail server permanently rejected message (#5.3.0)"),
    (82, "Dno thanks (#5.7.1)", 100, b"no thanks (#5.7.1)"),
    (82, "Zlater (#4.3.0)", 111, b"later (#4.3.0)"),
])
def test_queue_failures_are_reported_with_qmails_text(tree, tmp_path, code, text, exit_code, message):
    done, _, _ = fake_inject(tree, tmp_path, FIXED + b"To: t@a.b\n\n", FAKEQ_EXIT=str(code),
                             FAKEQ_TEXT=text)
    assert done.returncode == exit_code
    assert done.stderr == b"qmail-inject: fatal: " + message + b"\n"


def test_missing_root_is_an_internal_bug(tmp_path):
    done = inject(tmp_path / "absent", FIXED)
    assert (done.returncode, done.stderr) == (111, b"qmail-inject: fatal: internal bug\n")


def test_message_lands_in_the_real_queue(tree):
    before = qmail_trees.queued(str(tree))
    done = inject(tree, b"To: someone@else.where, local\nSubject: q\n\nhello\n", "-f", "me@x.y")
    assert done.returncode == 0, done.stderr
    new = [n for n in qmail_trees.queued(str(tree)) if n not in before]
    assert len(new) == 1
    todo = qmail_trees.todo(str(tree), new[0])
    assert todo.sender == b"me@x.y"
    assert sorted(todo.recipients) == [b"local@example.com", b"someone@else.where"]
    assert qmail_trees.message(str(tree), new[0]).endswith(b"Subject: q\n\nhello\n")


def test_embedded_tree_works_as_an_ordinary_user(user_tree):  # noqa: F811
    root, user = user_tree
    argv = support.as_user([support.prog("qmail-inject"), "demo"], user)
    env = support.suite_env(QMAIL_ROOT=root, USER=user.pw_name, QMAILQUEUE=None)
    done = support.run(argv, input=b"Subject: hi\n\nhello\n", env=env)
    assert done.returncode == 0, done.stderr
    (num,) = qmail_trees.queued(root)
    assert qmail_trees.todo(root, num).recipients == [b"demo@" + qmail_trees.FQDN.encode()]


# --- property: any header either rewrites or is refused with exit 100, never a crash ---

from hypothesis import given, settings, strategies as st  # noqa: E402

from qmail.formats import address  # noqa: E402
from qmail.mailin import qmail_inject

FIELD_NAMES = st.sampled_from([b"To", b"Cc", b"Bcc", b"From", b"Reply-To", b"Return-Path",
                               b"Resent-To", b"Resent-From", b"Subject", b"X-Any"])
FIELD_TEXT = st.binary(max_size=80).filter(lambda b: b"\n" not in b)


@pytest.fixture(scope="module")
def property_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("property") / "qmail"
    (root / "control").mkdir(parents=True)
    (root / "control" / "me").write_text("mx.example.com\n")
    return root


@settings(max_examples=300, deadline=None)
@given(fields=st.lists(st.tuples(FIELD_NAMES, FIELD_TEXT), min_size=1, max_size=5))
def test_header_rewriting_never_crashes(property_root, fields):
    injector = qmail_inject.Injector({"USER": "alice"}, str(property_root))
    for name, text in fields:
        try:
            injector.header_field(name + b": " + text + b"\n")
        except SystemExit as stop:
            assert stop.code == 100  # refused as unparseable, never anything else
            return
    for line in injector.saved:
        assert line.endswith(b"\n")
        assert address.field_valid(line)  # every kept field is still a header field


def test_long_lines_survive_intact(tree):
    long_field = b"X-Long: " + b"h" * 200000 + b"\n"
    long_body = b"b" * 3000000
    done = inject(tree, FIXED + b"To: t@a.b\n" + long_field + b"\n" + long_body, "-n")
    assert done.returncode == 0
    assert done.stdout.endswith(long_field + b"\n" + long_body + b"\n")
