"""SMTP AUTH for qmail-smtpd (RFC 4954), checked through a checkpassword-compatible program.

Not in qmail 1.03; this follows the widely used qmail-smtpd AUTH patch: qmail-smtpd is run
as `qmail-smtpd HOSTNAME CHECKPROGRAM SUBPROGRAM...`, and each AUTH attempt runs
`CHECKPROGRAM SUBPROGRAM...` with descriptor 3 reading `user\\0password\\0\\0` (PLAIN,
LOGIN) or `user\\0challenge\\0response\\0` (CRAM-MD5, for cmd5checkpw-style programs).
Exit 0 means the password is right; 111 is a temporary failure; anything else a wrong
password. Replies are the patch's: 235 ok, 535 authorization failed, 501 malformed input
or cancelled, 504 unknown mechanism, 454 when the program cannot be run or crashes.

The mechanism dialogues are functions of (session I/O, argument) returning the
credentials, or None after having sent the 501 reply themselves.
"""

import base64
import binascii
import os
import time

from qmail.auth.checkpw import Credentials, check  # noqa: F401  (smtp_auth.check, .Credentials)

OK = "235 ok, go ahead (#2.0.0)\r\n"
FAILED = "535 authorization failed (#5.7.0)\r\n"
TEMPORARY = "454 temporary authentication failure (#4.3.0)\r\n"
CHILD = "454 oops, problem with child and I can't auth (#4.3.0)\r\n"
MALFORMED = "501 malformed auth input (#5.5.4)\r\n"
CANCELLED = "501 auth exchange cancelled (#5.0.0)\r\n"
UNIMPLEMENTED = "504 auth type unimplemented (#5.5.1)\r\n"

LINE_LIMIT = 16384
_USERNAME = base64.b64encode(b"Username:")
_PASSWORD = base64.b64encode(b"Password:")


def decode(text: bytes) -> bytes | None:
    """Strict base64 (RFC 4648 alphabet, padding required); None when malformed."""
    try:
        return base64.b64decode(text.strip(b" "), validate=True)
    except (binascii.Error, ValueError):
        return None


def _malformed(conn) -> None:
    """501 malformed input (the patch's err_input); the dialogue returns what this does."""
    conn.out(MALFORMED.encode())


def _answer(conn, prompt: bytes) -> bytes | None:
    """Send 334 PROMPT, read the client's line; None (501 sent) if cancelled or malformed."""
    conn.out(b"334 " + prompt + b"\r\n")
    line, _ = conn.readline(LINE_LIMIT)
    if line.endswith(b"\r"):
        line = line[:-1]
    if line == b"*":
        conn.out(CANCELLED.encode())
        return None
    value = decode(line)
    if value is None:
        return _malformed(conn)
    return value


def plain(conn, arg: bytes, hostname: bytes) -> Credentials | None:
    response = decode(arg) if arg else _answer(conn, b"")
    if response is None:
        return _malformed(conn) if arg else None  # without arg, _answer has replied
    parts = response.split(b"\0")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return _malformed(conn)
    return Credentials(parts[1], parts[2])


def login(conn, arg: bytes, hostname: bytes) -> Credentials | None:
    if arg:
        user = decode(arg)
        if user is None:
            return _malformed(conn)
    else:
        user = _answer(conn, _USERNAME)
        if user is None:
            return None
    if not user:
        return _malformed(conn)
    secret = _answer(conn, _PASSWORD)
    if secret is None:
        return None
    if not secret:
        return _malformed(conn)
    return Credentials(user, secret)


def cram_md5(conn, arg: bytes, hostname: bytes) -> Credentials | None:
    if arg:
        return _malformed(conn)
    challenge = b"<%d.%d@%s>" % (os.getpid(), int(time.time()), hostname)
    response = _answer(conn, base64.b64encode(challenge))
    if response is None:
        return None
    user, _, digest = response.rpartition(b" ")
    if not user or not digest:
        return _malformed(conn)
    return Credentials(user, digest, challenge)


MECHANISMS = {b"LOGIN": login, b"PLAIN": plain, b"CRAM-MD5": cram_md5}
