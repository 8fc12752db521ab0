"""A glimpse of a message for people watching their mail (qbiff, maildirwatch).

Both read the message as qmail's headerbody does (qmail/formats/address.py split_header) and
show the Subject followed by the start of the body, cut to a width, with anything that is
not printable ASCII replaced.
"""

import re

from qmail.formats import address


def skip_name(field: bytes) -> int:
    """Where a field's value starts: after the colon and the blanks and newlines after it."""
    colon = field.find(b":")
    i = len(field) if colon < 0 else colon + 1
    while i < len(field) and field[i] in b" \t\r\n":
        i += 1
    return i


def printable(text: bytes, replacement: bytes) -> bytes:
    """text with every byte outside 32..126 replaced."""
    return bytes(ch if 32 <= ch <= 126 else replacement[0] for ch in text)


def read_events(data: bytes):
    """headerbody's events for a whole message."""
    return address.split_header(re.findall(rb"[^\n]*\n|[^\n]+$", data))


class Glimpse:
    """Subject and body text (up to limit bytes), plus chosen header values."""

    def __init__(self, start: bytes, limit: int):
        self.text = bytearray(start)
        self.limit = limit
        self.fields: dict[str, bytes] = {}

    def add(self, data: bytes) -> None:
        self.text += data
        del self.text[self.limit:]

    def feed(self, data: bytes) -> "Glimpse":
        for kind, value in read_events(data):
            if kind == "field":
                name = address.field_known(value)
                if name == "subject":
                    self.add(value[skip_name(value):])
                elif name is not None:
                    self.fields[name] = value  # a later field of the same name wins
            elif kind == "body":
                self.add(value)
        return self
