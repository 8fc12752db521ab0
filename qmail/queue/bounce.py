"""Bounce messages in qmail's format (QSBMF, qmail-send(8)).

A permanent failure appends one paragraph to the message's bounce/ file:

    <recipient>:
    report text, blank lines inside shown as /
    (blank line)

When every recipient is done, qmail-send sends one bounce holding all paragraphs: to the
message's sender from bouncefrom@bouncehost, with envelope sender <>.  A bounce of a
bounce (sender <>) is a double bounce, sent to doublebounceto@doublebouncehost with
envelope sender #@[]; one of those failing is a triple bounce, discarded.
A VERP sender prefix-@host-@[] bounces to prefix-@host.
"""

from qmail.formats import address, date822

DOUBLE_BOUNCE_SENDER = b"#@[]"

# Characters a local part may hold unquoted (quote.c's table: RFC 821 atoms).

def date_field(when: float) -> bytes:
    """The Date: line qmail writes (UTC, -0000)."""
    return b"Date: " + date822.fmt(when).encode() + b"\n"


def paragraph(recip: bytes, report: bytes) -> bytes:
    """One failed recipient's paragraph for the bounce/ file (recip already stripped of
    any virtual-domain prefix)."""
    text = bytearray(b"<" + recip.replace(b"\n", b"_") + b">:\n" + report)
    if report and not report.endswith(b"\n"):
        text += b"\n"
    # A blank line would end the paragraph early: make it a line holding /.
    for pos in range(len(text) - 2, 0, -1):
        if text[pos] == 10 and text[pos - 1] == 10:
            text[pos] = ord("/")
    return bytes(text + b"\n")


def bounce_recipient_sender(sender: bytes, doublebounceto: bytes) -> tuple[bytes, bytes] | None:
    """(envelope sender, recipient) of the bounce for a message from sender; None for a
    triple bounce (to be discarded).  sender has any VERP -@[] suffix already removed."""
    if sender == DOUBLE_BOUNCE_SENDER:
        return None
    if sender:
        return b"", sender
    return DOUBLE_BOUNCE_SENDER, doublebounceto


def unverp(sender: bytes) -> bytes:
    """prefix-@host-@[] -> prefix-@host (the bounce goes to the list owner)."""
    if len(sender) >= 4 and sender.endswith(b"-@[]"):
        return sender[:-4]
    return sender


def compose(now: float, bouncefrom: bytes, bouncehost: bytes, sender: bytes,
            recipient: bytes, paragraphs: bytes, message: bytes) -> bytes:
    """The whole bounce message; sender is the original (unverped) sender."""
    double = not sender
    head = (date_field(now) + b"From: " + address.quote(bouncefrom) + b"@" + bouncehost
            + b"\nTo: " + address.quote2(recipient) + b"\nSubject: failure notice\n\n"
            + b"Hi. This is the qmail-send program at " + bouncehost)
    if double:
        head += (b".\nI tried to deliver a bounce message to this address, "
                 b"but the bounce bounced!\n\n")
    else:
        head += (b".\nI'm afraid I wasn't able to deliver your message to the "
                 b"following addresses.\nThis is a permanent error; I've given up. "
                 b"Sorry it didn't work out.\n\n")
    tail = (b"--- Below this line is the original bounce.\n\n" if double
            else b"--- Below this line is a copy of the message.\n\n")
    return (head + paragraphs + tail + b"Return-Path: <" + address.quote2(sender)
            + b">\n" + message)
