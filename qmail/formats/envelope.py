"""The qmail envelope: one encode/decode pair for qmail-queue's fd-1 format and the
queue's intd/todo files (qmail-queue(8), qmail INTERNALS).

Envelope on qmail-queue's descriptor 1:
    F sender \\0  ( T recipient \\0 )*  \\0
Each address is at most MAX_ADDRESS bytes (qmail-queue.c's ADDR 1003 counts the
terminating NUL among its 1003 reads, so 1002 address bytes fit).

A todo/intd file holds what qmail-queue wrote for qmail-send:
    u uid \\0  p pid \\0  F sender \\0  ( T recipient \\0 )*
(no final empty record: the file's end terminates it).

Addresses are bytes on the wire. The str forms accepted here are encoded as UTF-8 with
surrogateescape, so a string made with os.fsdecode() of wire bytes round-trips exactly.
"""

MAX_ADDRESS = 1002  # bytes, without the NUL


class EnvelopeError(Exception):
    """The envelope is malformed (qmail-queue exit 91)."""


class AddressTooLong(EnvelopeError):
    """An envelope address exceeds MAX_ADDRESS bytes (qmail-queue exit 11)."""


class EnvelopeTruncated(EnvelopeError):
    """The envelope ended before its terminating empty record (qmail-queue exit 54)."""


def to_bytes(address: str | bytes) -> bytes:
    """An address as the bytes the envelope carries."""
    if isinstance(address, bytes):
        return address
    return address.encode("utf-8", "surrogateescape")


def to_str(address: bytes) -> str:
    """The inverse of to_bytes."""
    return address.decode("utf-8", "surrogateescape")


def encode(sender: str | bytes, recipients) -> bytes:
    """The envelope bytes qmail-queue reads on descriptor 1."""
    parts = [b"F", to_bytes(sender), b"\0"]
    for rcpt in recipients:
        parts += [b"T", to_bytes(rcpt), b"\0"]
    parts.append(b"\0")
    return b"".join(parts)


def decode(data: bytes) -> tuple[bytes, list[bytes]]:
    """(sender, recipients) of a complete envelope; bytes after the terminator are ignored.

    Raises EnvelopeError (bad record type), AddressTooLong, EnvelopeTruncated.
    """
    parser = Parser()
    if not parser.feed(data):
        raise EnvelopeTruncated("envelope ended early")
    return parser.sender, parser.recipients


class Parser:
    """Incremental envelope parser: feed() chunks as they arrive from the pipe.

    It checks what qmail-queue checks, in the same order: the first record is F, the
    following are T until an empty record, each address below the limit.
    (A plain class, not a dataclass: qmail-queue's cold start should not pay for
    importing dataclasses.)
    """

    def __init__(self):
        self.sender: bytes | None = None
        self.recipients: list[bytes] = []
        self.done = False
        self._pending = b""

    def feed(self, chunk: bytes) -> bool:
        """Consume chunk; True once the terminating empty record has been read.
        Raises EnvelopeError / AddressTooLong as soon as the data shows the problem."""
        if self.done:
            return True
        buf = self._pending + chunk
        pos = 0
        while pos < len(buf):
            kind = buf[pos:pos + 1]
            if self.sender is None:
                if kind != b"F":
                    raise EnvelopeError("envelope does not begin with F")
            elif kind == b"\0":
                self.done = True
                self._pending = b""
                return True
            elif kind != b"T":
                raise EnvelopeError("recipient record does not begin with T")
            end = buf.find(b"\0", pos + 1, pos + 2 + MAX_ADDRESS)
            if end == -1:
                if len(buf) - pos - 1 > MAX_ADDRESS:
                    raise AddressTooLong("envelope address too long")
                break
            address = buf[pos + 1:end]
            if self.sender is None:
                self.sender = address
            else:
                self.recipients.append(address)
            pos = end + 1
        self._pending = buf[pos:]
        return False


def encode_todo(uid: int, pid: int, sender: bytes, recipients) -> bytes:
    """The contents of a todo (and intd) file."""
    parts = [b"u%d\0p%d\0F" % (uid, pid), to_bytes(sender), b"\0"]
    for rcpt in recipients:
        parts += [b"T", to_bytes(rcpt), b"\0"]
    return b"".join(parts)


class TodoFile:
    """A parsed todo/intd file."""

    def __init__(self, uid: int | None, pid: int | None, sender: bytes | None,
                 recipients: list[bytes]):
        self.uid, self.pid, self.sender, self.recipients = uid, pid, sender, recipients

    def __eq__(self, other):
        return isinstance(other, TodoFile) and vars(self) == vars(other)

    def __repr__(self):
        return f"TodoFile(uid={self.uid!r}, pid={self.pid!r}, sender={self.sender!r}, recipients={self.recipients!r})"


def decode_todo(data: bytes) -> TodoFile:
    """Parse a todo/intd file as qmail-send reads it: records up to each NUL, the kind in
    the first byte; unknown kinds are skipped, an unterminated last record is ignored."""
    todo = TodoFile(None, None, None, [])
    records = data.split(b"\0")
    for record in records[:-1]:  # the part after the last NUL is incomplete
        kind, value = record[:1], record[1:]
        if kind == b"u" and value.isdigit():
            todo.uid = int(value)
        elif kind == b"p" and value.isdigit():
            todo.pid = int(value)
        elif kind == b"F":
            todo.sender = value
        elif kind == b"T":
            todo.recipients.append(value)
    return todo
