"""The Received header line qmail's network entrances write (received.c), and RFC 822 dates
as qmail writes them (date822fmt.c).

    Received: from REMOTEHOST (HELO HELOHOST) (INFO@REMOTEIP)
      by LOCAL with PROTOCOL; 26 Sep 1995 04:46:54 -0000

The HELO part appears only when the client's HELO/EHLO argument differs (ignoring case)
from the remote host name; INFO@ only when TCPREMOTEINFO is set. Every byte of the
variable parts that is not a letter, digit or one of . @ % + / = : - [ ] becomes "?", so
a client cannot inject header text.
"""

import time

_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.@%+/=:-[]")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def safe(text: bytes) -> bytes:
    """text with every unsafe byte replaced by '?' (received.c's safeput)."""
    return bytes(ch if ch in _SAFE else 63 for ch in text)


def date822(when: float | None = None) -> bytes:
    """`26 Sep 1995 04:46:54 -0000` (UTC, day without a leading zero), no newline."""
    t = time.gmtime(time.time() if when is None else when)
    return (f"{t.tm_mday} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} -0000").encode()


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
              date822(when), b"\n"]
    return b"".join(parts)
