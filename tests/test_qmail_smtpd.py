"""qmail-smtpd: the qmail 1.03 dialogue reply for reply, run over pipes as tcpserver's child
would be, with a real embedded tree (qmail-install) and the real qmail-queue behind it.

Each test checks the exact bytes of the replies and what reached the queue (nothing that
should not, everything acknowledged with 250).
"""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from qmail.mailin import smtp_command, smtp_data, smtp_received
from tests import support

FQDN = "mx.example.org"
OK_QP = re.compile(rb"^250 ok (\d+) qp (\d+)\r\n$")


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "qmail"
    result = support.run([support.prog("qmail-install"), "--embedded", "--fqdn", FQDN, root])
    assert result.returncode == 0, result.stderr
    return root


def smtpd_env(root, **extra) -> dict:
    base = {"QMAIL_ROOT": root, "TCPREMOTEIP": "192.0.2.7", "TCPLOCALIP": "127.0.0.1",
            "TCPREMOTEHOST": None, "TCPREMOTEINFO": None, "TCPLOCALHOST": None,
            "RELAYCLIENT": None, "DATABYTES": None, "QMAILQUEUE": None, "SMTPSIZE": None,
            "GREETDELAY": None, "FORCETLS": None, "DISABLETLS": None}
    base.update(extra)
    return support.suite_env(**base)


def session(root, lines, timeout=30, args=(), **extra) -> subprocess.CompletedProcess:
    """Run qmail-smtpd with the given client input (bytes or list of CRLF-less lines)."""
    data = lines if isinstance(lines, bytes) else b"".join(l + b"\r\n" for l in lines)
    return support.run([support.prog("qmail-smtpd"), *args], input=data,
                       env=smtpd_env(root, **extra), timeout=timeout)


def replies(result) -> list[bytes]:
    return result.stdout.split(b"\r\n")[:-1]


def queued(root) -> list[tuple[bytes, bytes]]:
    """(message, envelope) of every message in the queue."""
    found = []
    for mess in sorted((root / "queue" / "mess").rglob("*")):
        if mess.is_file():
            todo = root / "queue" / "todo" / mess.parent.name / mess.name
            found.append((mess.read_bytes(), todo.read_bytes() if todo.exists() else b""))
    return found


def envelope(sender: bytes, *rcpts: bytes) -> bytes:
    """The todo file's tail: F sender, T recipients (qmail-queue drops the final NUL)."""
    return b"F" + sender + b"\0" + b"".join(b"T" + r + b"\0" for r in rcpts)


def message_body(message: bytes) -> bytes:
    """The message as qmail-smtpd gave it: after qmail-queue's own Received line."""
    return message.split(b"\n", 1)[1]


SEND = [b"HELO client.example", b"MAIL FROM:<a@b.example>", b"RCPT TO:<demo@" + FQDN.encode() + b">",
        b"DATA", b"Subject: hi", b"", b"body", b".", b"QUIT"]


# --- the greeting and the simple commands --------------------------------------------------


def test_greeting_helo_ehlo_quit_use_control_me(tree):
    result = session(tree, [b"HELO x", b"EHLO y", b"QUIT"])
    assert result.stdout == (b"220 mx.example.org ESMTP\r\n250 mx.example.org\r\n"
                             b"250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                             b"221 mx.example.org\r\n")
    assert result.returncode == 0


def test_smtpgreeting_replaces_me_in_every_greeting(tree):
    (tree / "control" / "smtpgreeting").write_text("hello there  \n")
    result = session(tree, [b"HELO x", b"QUIT"])
    assert replies(result) == [b"220 hello there ESMTP", b"250 hello there", b"221 hello there"]


@pytest.mark.parametrize("line, reply", [
    (b"NOOP", b"250 ok"), (b"noop anything", b"250 ok"),
    (b"VRFY someone", b"252 send some mail, i'll try my best"),
    (b"HELP", b"214 qmail home page: http://pobox.com/~djb/qmail.html"),
    (b"RSET", b"250 flushed"), (b"EXPN list", b"502 unimplemented (#5.5.1)"),
    (b"garbage \x01\xff", b"502 unimplemented (#5.5.1)"), (b"", b"502 unimplemented (#5.5.1)"),
    (b"STARTTLS", b"502 unimplemented (#5.5.1)"), (b"AUTH PLAIN", b"502 unimplemented (#5.5.1)"),
    (b"DATA", b"503 MAIL first (#5.5.1)"), (b"RCPT TO:<a@b>", b"503 MAIL first (#5.5.1)"),
    (b"MAIL FROM:<" + b"x" * 900 + b">", b"555 syntax error (#5.5.4)"),
    (b"MAIL FROM:<" + b"x" * 898 + b">", b"250 ok"),
    (b"MAIL", b"250 ok"),
])
def test_single_command_reply(tree, line, reply):
    result = session(tree, [line])
    assert replies(result) == [b"220 mx.example.org ESMTP", reply]
    assert result.returncode == 1  # end of input without QUIT


def test_data_without_recipient_is_503_rcpt_first(tree):
    result = session(tree, [b"MAIL FROM:<a@b>", b"DATA"])
    assert replies(result)[-1] == b"503 RCPT first (#5.5.1)"


def test_rset_forgets_the_sender(tree):
    result = session(tree, [b"MAIL FROM:<a@b>", b"RSET", b"RCPT TO:<demo@mx.example.org>"])
    assert replies(result)[-1] == b"503 MAIL first (#5.5.1)"


def test_missing_me_and_greeting_gives_421(tree):
    (tree / "control" / "me").unlink()
    result = session(tree, [b"HELO x"])
    assert result.stdout == b"421 unable to read controls (#4.3.0)\r\n"
    assert result.returncode == 1


def test_unreadable_databytes_gives_421(tree):
    (tree / "control" / "databytes").write_text("lots\n")
    result = session(tree, [b"HELO x"])
    assert result.stdout == b"421 unable to read controls (#4.3.0)\r\n"


# --- a message through the queue ---------------------------------------------------------------


def test_message_is_queued_with_250_ok_time_qp(tree):
    before = int(time.time())
    result = session(tree, SEND, TCPREMOTEHOST="client.example", TCPREMOTEINFO="joe",
                     TCPLOCALHOST="mx.example.org")
    lines = replies(result)
    assert lines[:5] == [b"220 mx.example.org ESMTP", b"250 mx.example.org", b"250 ok", b"250 ok",
                         b"354 go ahead"]
    match = OK_QP.match(lines[5] + b"\r\n")
    assert match and before <= int(match.group(1)) <= time.time() + 1
    assert lines[6] == b"221 mx.example.org" and result.returncode == 0
    [(message, env)] = queued(tree)
    assert env.endswith(envelope(b"a@b.example", b"demo@mx.example.org"))
    # qmail-queue's own line names the same pid as the qp
    assert message.startswith(b"Received: (qmail " + match.group(2) + b" invoked by uid ")
    body = message_body(message)
    assert re.fullmatch(rb"Received: from client\.example \(joe@192\.0\.2\.7\)\n"
                        rb"  by mx\.example\.org with SMTP; \d{1,2} [A-Z][a-z]{2} \d{4} "
                        rb"\d\d:\d\d:\d\d -0000\nSubject: hi\n\nbody\n", body)


def test_received_line_shows_helo_when_it_differs_and_unknowns(tree):
    result = session(tree, [b"HELO Fake<Host>", b"MAIL FROM:<>", b"RCPT TO:<demo@mx.example.org>",
                            b"DATA", b"x", b"."], TCPREMOTEIP=None, TCPLOCALIP=None)
    assert OK_QP.match(replies(result)[-1] + b"\r\n")
    body = message_body(queued(tree)[0][0])
    assert body.startswith(b"Received: from unknown (HELO Fake?Host?) (unknown)\n  by unknown with SMTP; ")


def test_helo_equal_to_remote_host_ignoring_case_is_not_shown(tree):
    session(tree, [b"HELO CLIENT.example", b"MAIL FROM:<>", b"RCPT TO:<demo@mx.example.org>",
                   b"DATA", b"x", b"."], TCPREMOTEHOST="client.EXAMPLE")
    body = message_body(queued(tree)[0][0])
    assert body.startswith(b"Received: from client.EXAMPLE (192.0.2.7)\n")


def test_dot_stuffing_and_crlf_conversion(tree):
    data = (b"MAIL FROM:<a@b>\r\nRCPT TO:<demo@mx.example.org>\r\nDATA\r\n"
            b"..leading dot\r\n.\rkept\r\nbare\rcr\r\n\r\n.\r\nQUIT\r\n")
    result = session(tree, data)
    assert replies(result)[-1] == b"221 mx.example.org"
    body = message_body(queued(tree)[0][0]).split(b"\n", 2)[2]
    assert body == b".leading dot\n.\rkept\nbare\rcr\n\n"


def test_pipelined_session_gets_every_reply_in_order(tree):
    data = b"".join(l + b"\r\n" for l in [b"EHLO x", b"MAIL FROM:<a@b>", b"RCPT TO:<demo@mx.example.org>",
                                          b"RCPT TO:<x@elsewhere.example>", b"DATA"])
    data += b"one\r\n.\r\nMAIL FROM:<c@d>\r\nRCPT TO:<demo@mx.example.org>\r\nDATA\r\ntwo\r\n.\r\nQUIT\r\n"
    lines = replies(session(tree, data))
    assert lines[4:8] == [b"250 ok", b"250 ok", b"553 sorry, that domain isn't in my list of allowed "
                          b"rcpthosts (#5.7.1)", b"354 go ahead"]
    assert OK_QP.match(lines[8] + b"\r\n") and OK_QP.match(lines[12] + b"\r\n")
    assert lines[9:12] == [b"250 ok", b"250 ok", b"354 go ahead"] and lines[13] == b"221 mx.example.org"
    assert len(queued(tree)) == 2


def test_bare_lf_gets_451_and_nothing_is_queued(tree):
    data = b"MAIL FROM:<a@b>\r\nRCPT TO:<demo@mx.example.org>\r\nDATA\r\nline\nmore\r\n.\r\n"
    result = session(tree, data)
    assert replies(result)[-1] == b"451 See http://pobox.com/~djb/docs/smtplf.html."
    assert result.returncode == 1
    assert queued(tree) == []


def test_disconnect_during_data_queues_nothing(tree):
    result = session(tree, b"MAIL FROM:<a@b>\r\nRCPT TO:<demo@mx.example.org>\r\nDATA\r\npartial\r\n")
    assert replies(result)[-1] == b"354 go ahead" and result.returncode == 1
    assert queued(tree) == []


@pytest.mark.parametrize("hops, reply", [(99, None), (100, b"554 too many hops, this message is looping (#5.4.6)")])
def test_hop_count_limit(tree, hops, reply):
    header = b"".join((b"Received: x\r\n", b"DELIVERED-TO: y\r\n")[i % 2] for i in range(hops))
    data = b"MAIL FROM:<a@b>\r\nRCPT TO:<demo@mx.example.org>\r\nDATA\r\n" + header + b"\r\nReceived: body\r\n.\r\n"
    last = replies(session(tree, data))[-1]
    if reply is None:
        assert OK_QP.match(last + b"\r\n") and len(queued(tree)) == 1
    else:
        assert last == reply and queued(tree) == []


@pytest.mark.parametrize("size, ok", [(10, True), (11, False)])
def test_databytes_limit_counts_the_stored_message(tree, size, ok):
    (tree / "control" / "databytes").write_text("10\n")
    # "123456789\n" is 10 bytes stored (CRLF counts as one byte)
    body = b"12345678" + (b"9" if ok else b"99") + b"\r\n"
    data = b"MAIL FROM:<a@b>\r\nRCPT TO:<demo@mx.example.org>\r\nDATA\r\n" + body + b".\r\nNOOP\r\n"
    lines = replies(session(tree, data))
    if ok:
        assert OK_QP.match(lines[-2] + b"\r\n") and len(queued(tree)) == 1
    else:
        assert lines[-2] == b"552 sorry, that message size exceeds my databytes limit (#5.3.4)"
        assert queued(tree) == []
    assert lines[-1] == b"250 ok"  # the session goes on


def test_databytes_environment_overrides_control(tree):
    (tree / "control" / "databytes").write_text("100000\n")
    data = b"MAIL FROM:<a@b>\r\nRCPT TO:<demo@mx.example.org>\r\nDATA\r\n" + b"x" * 50 + b"\r\n.\r\n"
    lines = replies(session(tree, data, DATABYTES="20"))
    assert lines[-1] == b"552 sorry, that message size exceeds my databytes limit (#5.3.4)"


def test_big_message_with_megabyte_line_is_stored_whole(tree):
    big = b"y" * (1 << 20)
    data = b"MAIL FROM:<a@b>\r\nRCPT TO:<demo@mx.example.org>\r\nDATA\r\n" + big + b"\r\n.\r\n"
    assert OK_QP.match(replies(session(tree, data))[-1] + b"\r\n")
    assert message_body(queued(tree)[0][0]).split(b"\n", 2)[2] == big + b"\n"


def test_megabyte_command_line_is_refused_and_session_continues(tree):
    data = b"MAIL FROM:<" + b"a" * (1 << 20) + b">\r\nHELO " + b"h" * (1 << 20) + b"\r\nNOOP\r\n"
    lines = replies(session(tree, data))
    assert lines[1] == b"555 syntax error (#5.5.4)"
    assert lines[2] == b"250 mx.example.org" and lines[3] == b"250 ok"


# --- relaying ------------------------------------------------------------------------------------


def test_no_rcpthosts_accepts_any_domain(tree):
    (tree / "control" / "rcpthosts").unlink()
    lines = replies(session(tree, [b"MAIL FROM:<a@b>", b"RCPT TO:<x@anywhere.example>"]))
    assert lines[-1] == b"250 ok"


def test_rcpthosts_dot_prefix_allows_subdomains_case_insensitively(tree):
    (tree / "control" / "rcpthosts").write_text("mx.example.org\n.Example.NET\n")
    lines = replies(session(tree, [b"MAIL FROM:<a@b>", b"RCPT TO:<x@Deep.Sub.EXAMPLE.net>",
                                   b"RCPT TO:<x@example.net>", b"RCPT TO:<nodomain>"]))
    assert lines[2:] == [b"250 ok", b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
                         b"250 ok"]


def test_morercpthosts_cdb_is_consulted(tree):
    (tree / "control" / "morercpthosts").write_text("Other.Example\n")
    assert support.run([support.prog("qmail-newmrh")], env=smtpd_env(tree)).returncode == 0
    lines = replies(session(tree, [b"MAIL FROM:<a@b>", b"RCPT TO:<x@other.example>",
                                   b"RCPT TO:<x@another.example>"]))
    assert lines[2:] == [b"250 ok", b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"]


def test_relayclient_allows_relaying_and_its_value_is_appended(tree):
    data = [b"MAIL FROM:<a@b>", b"RCPT TO:<x@foreign.example>", b"DATA", b"hi", b"."]
    lines = replies(session(tree, data, RELAYCLIENT=""))
    assert lines[2] == b"250 ok" and OK_QP.match(lines[-1] + b"\r\n")
    assert queued(tree)[0][1].endswith(envelope(b"a@b", b"x@foreign.example"))


def test_relayclient_suffix_example_from_the_book(tree):
    # the book's trick: RELAYCLIENT="@fixme" makes every recipient local-part@domain@fixme
    data = [b"MAIL FROM:<a@b>", b"RCPT TO:<joe@example.com>", b"DATA", b"hi", b"."]
    session(tree, data, RELAYCLIENT="@fixme")
    assert queued(tree)[0][1].endswith(envelope(b"a@b", b"joe@example.com@fixme"))


def test_badmailfrom_address_and_domain_refuse_at_rcpt(tree):
    (tree / "control" / "badmailfrom").write_text("spammer@bad.example\n@Worse.Example\n")
    for sender in (b"SPAMMER@bad.example", b"anyone@worse.example"):
        lines = replies(session(tree, [b"MAIL FROM:<" + sender + b">", b"RCPT TO:<demo@mx.example.org>"]))
        assert lines[1:] == [b"250 ok", b"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"]
    lines = replies(session(tree, [b"MAIL FROM:<good@bad.example>", b"RCPT TO:<demo@mx.example.org>"]))
    assert lines[-1] == b"250 ok"


def test_localiphost_replaces_my_bracketed_ip(tree):
    (tree / "control" / "localiphost").write_text("local.example\n")
    data = [b"MAIL FROM:<a@b>", b"RCPT TO:<demo@[127.0.0.1]>", b"RCPT TO:<demo@[192.0.2.99]>"]
    (tree / "control" / "rcpthosts").write_text("local.example\n")
    lines = replies(session(tree, data))
    assert lines[2:] == [b"250 ok", b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"]


# --- qmail-queue's answers -------------------------------------------------------------------------


def fake_queue(tmp_path, code, custom=b"") -> str:
    script = tmp_path / f"fakeqq{code}"
    script.write_text("#!/bin/sh\ncat >/dev/null\n"
                      + (f"printf '{custom.decode()}' >&6\n" if custom else "")
                      + f"exit {code}\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("code, custom, reply", [
    (53, b"", b"451 qq write error or disk full (#4.3.0)"),
    (31, b"", b"554 mail server permanently rejected message (#5.3.0)"),
    (82, b"Dno viruses here (#5.7.1)", b"554 no viruses here (#5.7.1)"),
    (82, b"Ztry later (#4.3.0)", b"451 try later (#4.3.0)"),
])
def test_qmailqueue_exit_codes_become_qmail_replies(tree, tmp_path, code, custom, reply):
    data = [b"MAIL FROM:<a@b>", b"RCPT TO:<demo@mx.example.org>", b"DATA", b"hi", b"."]
    lines = replies(session(tree, data, QMAILQUEUE=fake_queue(tmp_path, code, custom)))
    assert lines[-1] == reply


def test_timeoutsmtpd_gives_451_timeout(tree):
    (tree / "control" / "timeoutsmtpd").write_text("1\n")
    proc = support.Proc([support.prog("qmail-smtpd")], env=smtpd_env(tree), stdin=subprocess.PIPE)
    start = time.monotonic()
    assert proc.out.wait_line(lambda l: l.startswith("220"), timeout=10)
    assert proc.out.wait_line("451 timeout (#4.4.2)", timeout=10)
    assert proc.wait(10) == 1 and time.monotonic() - start < 8


# --- the parsers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("arg, addr", [
    (b"FROM:<a@b>", b"a@b"), (b"from: <a@b> SIZE=10", b"a@b"), (b"FROM:a@b c", b"a@b"),
    (b"FROM:   a@b", b"a@b"), (b"TO:<@route,@r2:u@h>", b"u@h"), (b'TO:<"x y"@h>', b"x y@h"),
    (b"TO:<a\\>b@h>", b"a>b@h"), (b"", b""), (b"TO:<>", b""), (b"TO:<unterminated", b"unterminated"),
    (b'TO:<"q>q"@h>', b"q>q@h"), (b"TO:<@route-only>", b""),
])
def test_addrparse_table(arg, addr):
    assert smtp_command.addrparse(arg) == addr


@given(st.binary(max_size=1200))
def test_addrparse_never_fails_and_the_limit_is_900_with_the_nul(arg):
    addr = smtp_command.addrparse(arg)
    assert len(addr) <= len(arg)
    assert smtp_command.within_limit(addr) == (len(addr) < 900)


@given(st.text(alphabet="abcdefgh.-+=@", min_size=1, max_size=60))
def test_addrparse_round_trips_plain_addresses(addr):
    if addr.startswith("@"):
        return
    assert smtp_command.addrparse(b"TO:<" + addr.encode() + b">") == addr.encode()


@given(st.binary(max_size=200))
def test_split_command_verb_has_no_space_and_argument_no_leading_space(line):
    verb, arg = smtp_command.split_command(line)
    assert b" " not in verb and not arg.startswith(b" ") and b"\0" not in verb + arg


def reference_blast(data: bytes):
    """qmail 1.03's blast() state machine, one byte at a time: (output, rest) or 'stray'."""
    out = bytearray()
    state = 1
    for i, ch in enumerate(data):
        c = bytes([ch])
        if state == 0:
            if c == b"\n":
                return "stray"
            if c == b"\r":
                state = 4
                continue
        elif state == 1:
            if c == b"\n":
                return "stray"
            if c == b".":
                state = 2
                continue
            if c == b"\r":
                state = 4
                continue
            state = 0
        elif state == 2:
            if c == b"\n":
                return "stray"
            if c == b"\r":
                state = 3
                continue
            state = 0
        elif state == 3:
            if c == b"\n":
                return bytes(out), data[i + 1:]
            out += b".\r"
            if c == b"\r":
                state = 4
                continue
            state = 0
        elif state == 4:
            if c == b"\n":
                state = 1
            elif c != b"\r":
                out += b"\r"
                state = 0
        out += c
    return bytes(out), None


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([b"\r", b"\n", b".", b"a", b"\r\n", b".\r\n", b"\r\n.\r\n", b"xy"]),
                max_size=40), st.lists(st.integers(1, 7), max_size=10))
def test_data_reader_matches_qmail_blast_for_any_chunking(pieces, cuts):
    data = b"".join(pieces)
    expected = reference_blast(data)
    reader = smtp_data.DataReader()
    out, pos, chunks = b"", 0, []
    for cut in cuts:
        chunks.append(data[pos:pos + cut])
        pos += cut
    chunks.append(data[pos:])
    rest = None
    try:
        for i, chunk in enumerate(chunks):
            out += reader.feed(chunk)
            if reader.done:
                rest = reader.rest + b"".join(chunks[i + 1:])
                break
    except smtp_data.StrayNewline:
        assert expected == "stray"
        return
    assert expected != "stray"
    assert (out, rest) == expected


def test_data_reader_counts_received_and_delivered_only_in_the_header():
    reader = smtp_data.DataReader()
    reader.feed(b"ReCeIvEd: a\r\nDelivered-To: b\r\nX: y\r\nreceived\r\nreceive\r\n\r\nReceived: c\r\n.\r\n")
    assert reader.done and reader.hops == 3


def test_received_line_replaces_unsafe_bytes():
    line = smtp_received.received(b"SMTP", b"loc al", b"1.2.3.4", b"h\nx", b"i(f)", b"he lo", when=0)
    assert line == (b"Received: from h?x (HELO he?lo) (i?f?@1.2.3.4)\n"
                    b"  by loc?al with SMTP; 1 Jan 1970 00:00:00 -0000\n")


def test_warm_start_off_gives_the_same_session(tree):
    result = session(tree, SEND, UCSPI_WARMSTART="0")
    lines = replies(result)
    assert lines[4] == b"354 go ahead" and OK_QP.match(lines[5] + b"\r\n")
    assert len(queued(tree)) == 1


def test_embedded_tree_works_as_an_ordinary_user(tmp_path):
    user = support.unprivileged_user()
    base = Path("/tmp") / f"h4-embedded-{os.getpid()}"
    root = base / "qmail"
    try:
        base.mkdir(mode=0o755)
        os.chown(base, user.pw_uid, user.pw_gid)
        install = support.run(support.as_user([support.prog("qmail-install"), "--embedded", "--fqdn", FQDN,
                                               root], user))
        assert install.returncode == 0, install.stderr
        result = support.run(support.as_user([support.prog("qmail-smtpd")], user),
                             input=b"".join(l + b"\r\n" for l in SEND), env=smtpd_env(root))
        lines = replies(result)
        assert OK_QP.match(lines[5] + b"\r\n"), result.stdout + result.stderr
        [(message, _)] = queued(root)
        assert f"invoked by uid {user.pw_uid})".encode() in message.split(b"\n", 1)[0]
    finally:
        subprocess.run(["rm", "-rf", "--", str(base)], timeout=30)
