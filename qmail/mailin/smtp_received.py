"""The Received header line qmail's network entrances write (received.c); the date is
date822's.

    Received: from REMOTEHOST (HELO HELOHOST) (INFO@REMOTEIP)
      by LOCAL with PROTOCOL; 26 Sep 1995 04:46:54 -0000

The HELO part appears only when the client's HELO/EHLO argument differs (ignoring case)
from the remote host name; INFO@ only when TCPREMOTEINFO is set. Every byte of the
variable parts that is not a letter, digit or one of . @ % + / = : - [ ] becomes "?", so
a client cannot inject header text.
"""

from qmail.formats import date822

_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.@%+/=:-[]")


def safe(text: bytes) -> bytes:
    """text with every unsafe byte replaced by '?' (received.c's safeput)."""
    return bytes(ch if ch in _SAFE else 63 for ch in text)


def received(protocol: bytes, local: bytes, remoteip: bytes, remotehost: bytes,
             remoteinfo: bytes | None, helo: bytes | None, when: float | None = None) -> bytes:
    """The two-line Received header, ending in LF."""
    parts = [b"Received: from ", safe(remotehost)]
    if helo is not None:
        parts += [b" (HELO ", safe(helo), b")"]
    parts.append(b" (")
    if remoteinfo is not None:
        parts += [safe(remoteinfo), b"@"]
    parts += [safe(remoteip), b")\n  by ", safe(local), b" with ", protocol, b"; ",
              date822.fmt(when).encode(), b"\n"]
    return b"".join(parts)
