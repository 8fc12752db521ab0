"""TAI64N labels as daemontools 0.76 writes and reads them.

A label is `@` followed by 24 lowercase hex digits: 16 for the TAI64 second
(2^62 + TAI seconds since 1970) and 8 for the nanosecond. Like daemontools 0.76 we
take TAI to be UTC + 10 seconds, always: no leap-second table, so a label is
`2^62 + 10 + unix seconds` and reading one subtracts the same constant. The clock is
read in microseconds and the nanosecond field is `1000 * usec + 500`, as taia_now does.

One encode/decode pair (encode/decode), plus what the tools build on it:
now() for tai64n and multilog, scan() for tai64nlocal's lenient reading of a label at a
line start, and format_local() for its `YYYY-MM-DD HH:MM:SS.nnnnnnnnn` rendering.
"""

import time

OFFSET = (1 << 62) + 10  # TAI64 of the unix epoch, with daemontools' fixed 10 s
LABEL_LENGTH = 25  # "@" + 24 hex digits
HEX_DIGITS = b"0123456789abcdef"
_U64 = 1 << 64


class BadLabel(ValueError):
    """Not a TAI64N label: '@' and exactly 24 lowercase hex digits."""


def encode(seconds: int, nano: int) -> bytes:
    """The label for unix time seconds + nano nanoseconds (nano < 10^9)."""
    return b"@%016x%08x" % ((seconds + OFFSET) % _U64, nano & 0xFFFFFFFF)


def decode(label: bytes) -> tuple[int, int]:
    """(unix seconds, nanoseconds) of a strict label; raises BadLabel."""
    if len(label) != LABEL_LENGTH or label[:1] != b"@" or \
            label[1:].strip(HEX_DIGITS) != b"":
        raise BadLabel(label)
    return int(label[1:17], 16) - OFFSET, int(label[17:], 16)


def now() -> bytes:
    """The label for this moment, with daemontools' microsecond resolution."""
    ns = time.time_ns()
    seconds, rest = divmod(ns, 1_000_000_000)
    return encode(seconds, (rest // 1000) * 1000 + 500)


def stamper():
    """A function returning now() labels; it formats the seconds half once per second,
    for callers that stamp every line of a busy log."""
    last = [None, b""]

    def stamp() -> bytes:
        seconds, rest = divmod(time.time_ns(), 1_000_000_000)
        if seconds != last[0]:
            last[0], last[1] = seconds, b"@%016x" % ((seconds + OFFSET) % _U64)
        return last[1] + b"%08x" % ((rest // 1000) * 1000 + 500)
    return stamp


def scan(digits: bytes) -> tuple[int, int]:
    """(unix seconds, nanoseconds) from the hex digits tai64nlocal read after '@'.

    Any number of digits is accepted: the last 8 are the nanoseconds, those before
    them the seconds modulo 2^64, read as a signed 64-bit time as the C tool does.
    """
    value = int(digits, 16) if digits else 0
    nano = value & 0xFFFFFFFF
    seconds = ((value >> 32) - OFFSET) % _U64
    if seconds >= 1 << 63:
        seconds -= _U64
    return seconds, nano


def format_local(seconds: int, nano: int) -> bytes:
    """`YYYY-MM-DD HH:MM:SS.nnnnnnnnn` in local time; raises OverflowError or OSError
    when the C library cannot represent that time."""
    tm = time.localtime(seconds)
    year = tm.tm_year if tm.tm_year >= 0 else tm.tm_year + _U64  # C prints it unsigned
    return b"%d-%02d-%02d %02d:%02d:%02d.%09d" % (
        year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nano)
