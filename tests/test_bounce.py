"""qmail/queue/bounce.py: the bounce paragraphs and message qmail-send writes (QSBMF)."""

import calendar

import pytest
from hypothesis import given, strategies as st

from qmail.formats import address
from qmail.queue import bounce


def test_paragraph_names_the_recipient_and_keeps_the_report():
    assert (bounce.paragraph(b"joe@example.org", b"Sorry, no mailbox here by that name. (#5.1.1)\n")
            == b"<joe@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n")


def test_paragraph_adds_a_missing_final_newline_and_none_for_an_empty_report():
    assert bounce.paragraph(b"a@b", b"no newline") == b"<a@b>:\nno newline\n\n"
    assert bounce.paragraph(b"a@b", b"") == b"<a@b>:\n\n"


def test_paragraph_turns_blank_lines_inside_into_slashes():
    assert (bounce.paragraph(b"a@b", b"one\n\ntwo\n\n\nthree\n")
            == b"<a@b>:\none\n/two\n//three\n\n")


def test_paragraph_hides_newlines_in_the_recipient():
    assert bounce.paragraph(b"a\nb@c", b"x\n") == b"<a_b@c>:\nx\n\n"


@pytest.mark.parametrize("local, quoted", [
    (b"joe", b"joe"),
    (b"joe.smith", b"joe.smith"),
    (b"MAILER-DAEMON", b"MAILER-DAEMON"),
    (b"a+b=c!#$%&'*/?^_`{|}~", b"a+b=c!#$%&'*/?^_`{|}~"),
    (b"", b'""'),
    (b"joe smith", b'"joe smith"'),
    (b".joe", b'".joe"'),
    (b"joe.", b'"joe."'),
    (b"jo..e", b'"jo..e"'),
    (b'a"b\\c', b'"a\\"b\\\\c"'),
    (b"a(b)", b'"a(b)"'),
    (b"\xe9", b'"\xe9"'),
])
def test_quote_only_when_needed(local, quoted):
    assert address.quote(local) == quoted


def test_quote_address_quotes_only_the_local_part():
    assert address.quote2(b"joe smith@example.org") == b'"joe smith"@example.org'
    assert address.quote2(b"a@b@example.org") == b'"a@b"@example.org'
    assert address.quote2(b"") == b""
    assert address.quote2(b"#@[]") == b"#@[]"


@given(st.binary(max_size=30))
def test_quoted_local_part_reads_back(local):
    out = address.quote(local)
    if out == local:
        assert local and not address.quote_need(local)
    else:
        assert out[:1] == b'"' and out[-1:] == b'"'
        body = out[1:-1]
        back = bytearray()
        i = 0
        while i < len(body):
            if body[i] == ord("\\"):
                i += 1
            back.append(body[i])
            i += 1
        assert bytes(back) == local


def test_date_field_as_qmail_writes_it():
    when = calendar.timegm((2026, 3, 5, 7, 8, 9, 0, 0, 0))
    assert bounce.date_field(when) == b"Date: 5 Mar 2026 07:08:09 -0000\n"


def test_unverp_and_who_gets_the_bounce():
    assert bounce.unverp(b"list-@lists.example-@[]") == b"list-@lists.example"
    assert bounce.unverp(b"joe@example.org") == b"joe@example.org"
    assert bounce.bounce_recipient_sender(b"joe@x", b"postmaster@me") == (b"", b"joe@x")
    assert bounce.bounce_recipient_sender(b"", b"postmaster@me") == (b"#@[]", b"postmaster@me")
    assert bounce.bounce_recipient_sender(b"#@[]", b"postmaster@me") is None


def test_compose_single_bounce_is_qmails_text():
    when = calendar.timegm((2026, 11, 25, 5, 0, 0, 0, 0, 0))
    text = bounce.compose(when, b"MAILER-DAEMON", b"mx.example", b"joe@example.org",
                          b"joe@example.org", b"<x@y>:\nno.\n\n", b"Subject: hi\n\nbody\n")
    assert text == (
        b"Date: 25 Nov 2026 05:00:00 -0000\n"
        b"From: MAILER-DAEMON@mx.example\n"
        b"To: joe@example.org\n"
        b"Subject: failure notice\n"
        b"\n"
        b"Hi. This is the qmail-send program at mx.example.\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\n"
        b"\n"
        b"<x@y>:\nno.\n\n"
        b"--- Below this line is a copy of the message.\n"
        b"\n"
        b"Return-Path: <joe@example.org>\n"
        b"Subject: hi\n\nbody\n")


def test_compose_double_bounce_is_qmails_text():
    text = bounce.compose(0, b"MAILER-DAEMON", b"mx.example", b"", b"postmaster@mx.example",
                          b"<a@b>:\nno.\n\n", b"orig\n")
    assert b"To: postmaster@mx.example\n" in text
    assert (b"Hi. This is the qmail-send program at mx.example.\n"
            b"I tried to deliver a bounce message to this address, but the bounce bounced!\n"
            b"\n<a@b>:\nno.\n\n--- Below this line is the original bounce.\n\n"
            b"Return-Path: <>\norig\n") in text
