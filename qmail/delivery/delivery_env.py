"""The environment of a delivery (qmail-command(8)), what its commands' exit codes mean,
and the lines qmail-local adds.

qmail-local describes the delivery to the programs it runs through environment variables,
never through the command line (the command is the user's own .qmail text):

  SENDER NEWSENDER RECIPIENT USER HOME HOST HOST2 HOST3 HOST4 LOCAL
  EXT EXT2 EXT3 EXT4 DEFAULT DTLINE RPLINE UFLINE

DTLINE is `Delivered-To: LOCAL@HOST`, RPLINE `Return-Path: <SENDER>` (local part quoted
as RFC 821 needs), UFLINE the mbox From_ line; each ends in a newline, and a newline
inside one is written as `_`.
"""

from dataclasses import dataclass

from qmail.delivery import dot_qmail
from qmail.formats import address

# qmail-command(8): the exit codes of a command that fail the delivery for good (qmail-local
# and dot-forward exit 100); 0 is success, 99 success that skips the rest of the .qmail
# file, anything else a temporary failure.
PERMANENT_PROGRAM_CODES = frozenset((100, 64, 65, 70, 76, 77, 78, 112))

# RFC 821 characters that may appear unquoted in a local part (qmail's quote.c table).

@dataclass
class Delivery:
    """What qmail-local knows about one delivery (all bytes, as on its command line)."""
    user: bytes
    home: bytes
    local: bytes
    ext: bytes
    host: bytes
    sender: bytes


def recipient(d: Delivery) -> bytes:
    return d.local + b"@" + d.host


def dt_line(d: Delivery) -> bytes:
    """`Delivered-To: LOCAL@HOST` + newline (newlines inside become `_`)."""
    return (b"Delivered-To: " + recipient(d)).replace(b"\n", b"_") + b"\n"


def rp_line(d: Delivery) -> bytes:
    """`Return-Path: <SENDER>` + newline."""
    return (b"Return-Path: <" + address.quote2(d.sender)).replace(b"\n", b"_") + b">\n"


def new_sender(d: Delivery, owner: bool, owner_default: bool) -> bytes:
    """NEWSENDER: the sender, or the list owner when .qmail-EXT-owner exists (with VERP
    when .qmail-EXT-owner-default does too); bounces (<>, #@[]) keep their sender."""
    if not d.sender or d.sender == b"#@[]" or not owner:
        return d.sender
    if owner_default:
        return d.local + b"-owner-@" + d.host + b"-@[]"
    return d.local + b"-owner@" + d.host


def environment(base: dict, d: Delivery, newsender: bytes, uf_line: bytes,
                default: bytes | None) -> dict:
    """base (bytes keys and values) with the qmail-command(8) variables set.

    DEFAULT is set only when a -default file matched (otherwise base's value stays).
    """
    env = dict(base)
    ext, ext2, ext3, ext4 = dot_qmail.extension_fields(d.ext)
    host2, host3, host4 = dot_qmail.host_fields(d.host)
    env.update({
        b"HOST": d.host, b"HOME": d.home, b"USER": d.user, b"LOCAL": d.local,
        b"RECIPIENT": recipient(d), b"DTLINE": dt_line(d), b"SENDER": d.sender,
        b"RPLINE": rp_line(d), b"UFLINE": uf_line,
        b"EXT": ext, b"EXT2": ext2, b"EXT3": ext3, b"EXT4": ext4,
        b"HOST2": host2, b"HOST3": host3, b"HOST4": host4,
        b"NEWSENDER": newsender,
    })
    if default is not None:
        env[b"DEFAULT"] = default
    return env
