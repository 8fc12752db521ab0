"""qmail/mailin/smtp_auth.py: the AUTH dialogues' replies and credentials."""

import base64

import pytest

from qmail.mailin import smtp_auth


class Conn:
    """The session I/O a dialogue sees: the client's lines, what we sent."""

    def __init__(self, lines):
        self.lines = list(lines)
        self.sent = []

    def out(self, data):
        self.sent.append(data)

    def readline(self, limit):
        return self.lines.pop(0), True


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


MALFORMED = smtp_auth.MALFORMED.encode()
CANCELLED = smtp_auth.CANCELLED.encode()
USERNAME = b"334 " + b64(b"Username:") + b"\r\n"
PASSWORD = b"334 " + b64(b"Password:") + b"\r\n"

# (mechanism, argument, client lines, replies we send, credentials record or None)
DIALOGUES = [
    (b"PLAIN", b64(b"\0joe\0pw"), [], [], b"joe\0pw\0\0"),
    (b"PLAIN", b"", [b64(b"\0joe\0pw") + b"\r"], [b"334 \r\n"], b"joe\0pw\0\0"),
    (b"PLAIN", b"!!!", [], [MALFORMED], None),
    (b"PLAIN", b"", [b"!!!"], [b"334 \r\n", MALFORMED], None),
    (b"PLAIN", b"", [b"*"], [b"334 \r\n", CANCELLED], None),
    (b"PLAIN", b64(b"joe\0pw"), [], [MALFORMED], None),
    (b"PLAIN", b64(b"\0\0pw"), [], [MALFORMED], None),
    (b"LOGIN", b"", [b64(b"joe"), b64(b"pw")], [USERNAME, PASSWORD], b"joe\0pw\0\0"),
    (b"LOGIN", b64(b"joe"), [b64(b"pw")], [PASSWORD], b"joe\0pw\0\0"),
    (b"LOGIN", b"!!!", [], [MALFORMED], None),
    (b"LOGIN", b"", [b""], [USERNAME, MALFORMED], None),
    (b"LOGIN", b"", [b"*"], [USERNAME, CANCELLED], None),
    (b"LOGIN", b64(b"joe"), [b""], [PASSWORD, MALFORMED], None),
    (b"LOGIN", b64(b"joe"), [b"!!!"], [PASSWORD, MALFORMED], None),
    (b"CRAM-MD5", b"x", [], [MALFORMED], None),
    (b"CRAM-MD5", b"", [b64(b"nospace")], [None, MALFORMED], None),
    (b"CRAM-MD5", b"", [b"*"], [None, CANCELLED], None),
]


@pytest.mark.parametrize("mechanism, arg, lines, replies, record", DIALOGUES)
def test_dialogue_replies_and_credentials(mechanism, arg, lines, replies, record):
    conn = Conn(lines)
    creds = smtp_auth.MECHANISMS[mechanism](conn, arg, b"host")
    assert len(conn.sent) == len(replies)
    for sent, wanted in zip(conn.sent, replies):
        if wanted is not None:  # None: the CRAM-MD5 challenge, which holds pid and time
            assert sent == wanted
    assert (creds.record() if creds else None) == record


def test_cram_md5_sends_the_challenge_it_records():
    conn = Conn([b64(b"joe 0123abcd")])
    creds = smtp_auth.cram_md5(conn, b"", b"host")
    challenge = base64.b64decode(conn.sent[0][4:-2])
    assert challenge.startswith(b"<") and challenge.endswith(b"@host>")
    assert creds.record() == b"joe\0" + challenge + b"\x000123abcd\0"
