"""Netstrings (cr.yp.to/proto/netstrings.txt) as QMTP and QMQP carry them.

A netstring is `LEN:DATA,` where LEN is the decimal length of DATA. encode() builds one;
decode() takes one off the front of a buffer; Reader reads them from a descriptor with
limits, the way qmail-qmtpd and qmail-qmqpd read theirs (digits up to the colon, a length
bounded by the caller, the comma checked).

Errors: Incomplete (more bytes needed: the peer closed early), Malformed (not a netstring:
a non-digit in the length, a missing comma), TooLong (a length past the caller's limit).
"""

import os

# qmail's readers give up on lengths beyond this (a resource limit, not a protocol error).
LENGTH_LIMIT = 200000000


class NetstringError(Exception):
    """Not a netstring."""


class Incomplete(NetstringError):
    """The input ended inside a netstring."""


class Malformed(NetstringError):
    """The bytes do not form a netstring (bad length digit or missing comma)."""


class TooLong(NetstringError):
    """The announced length exceeds the limit."""


def encode(data: bytes) -> bytes:
    """`LEN:DATA,`."""
    return b"%d:%s," % (len(data), data)


def encode_list(items) -> bytes:
    """A netstring of the concatenated netstrings of items (QMTP's recipient list)."""
    return encode(b"".join(encode(item) for item in items))


def decode(buf: bytes, limit: int = LENGTH_LIMIT) -> tuple[bytes, bytes]:
    """(DATA, rest) for the netstring at the front of buf."""
    colon = buf.find(b":")
    digits = buf if colon < 0 else buf[:colon]
    if not all(0x30 <= ch <= 0x39 for ch in digits):
        raise Malformed("bad length")
    if len(digits) > len(str(limit)) + 1:
        raise TooLong("length beyond limit")
    if colon < 0:
        raise Incomplete("no length yet")
    if not digits:
        raise Malformed("empty length")
    length = int(digits)
    if length > limit:
        raise TooLong(f"length {length} beyond {limit}")
    end = colon + 1 + length
    if len(buf) <= end:
        raise Incomplete("netstring not complete")
    if buf[end:end + 1] != b",":
        raise Malformed("missing comma")
    return buf[colon + 1:end], buf[end + 1:]


def decode_all(buf: bytes, limit: int = LENGTH_LIMIT) -> list[bytes]:
    """Every netstring in buf, which must hold whole netstrings only."""
    items = []
    while buf:
        item, buf = decode(buf, limit)
        items.append(item)
    return items


class Reader:
    """Buffered netstring reading from a descriptor; EOF raises Incomplete.

    `consumed` counts bytes read so far, for protocols bounding a whole package (QMQP).
    """

    def __init__(self, fd: int, read_size: int = 65536):
        self.fd = fd
        self.read_size = read_size
        self.buf = b""
        self.pos = 0  # bytes of buf already handed out (no copying per byte)
        self.consumed = 0

    def _fill(self) -> None:
        data = os.read(self.fd, self.read_size)
        if not data:
            raise Incomplete("end of input")
        self.buf = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            self._fill()
        ch = self.buf[self.pos]
        self.pos += 1
        self.consumed += 1
        return ch

    def chunks(self, n: int):
        """Yield n bytes in pieces as they arrive (a huge length costs memory only as the
        bytes come, and a message can stream to the queue)."""
        while n > 0:
            if self.pos >= len(self.buf):
                self._fill()
            piece = self.buf[self.pos:self.pos + n]
            self.pos += len(piece)
            n -= len(piece)
            self.consumed += len(piece)
            yield piece

    def take(self, n: int) -> bytes:
        """Exactly n bytes."""
        return b"".join(self.chunks(n))

    def length(self, limit: int = LENGTH_LIMIT) -> int:
        """The digits before the colon, as qmail's getlen reads them."""
        n = 0
        seen = False
        while True:
            ch = self.byte()
            if ch == 0x3A:
                if not seen:
                    raise Malformed("empty length")
                return n
            if not 0x30 <= ch <= 0x39:
                raise Malformed("bad length digit")
            seen = True
            n = n * 10 + ch - 0x30
            if n > limit:
                raise TooLong(f"length beyond {limit}")

    def comma(self) -> None:
        if self.byte() != 0x2C:
            raise Malformed("missing comma")

    def netstring(self, limit: int = LENGTH_LIMIT) -> bytes:
        n = self.length(limit)
        data = self.take(n)
        self.comma()
        return data
