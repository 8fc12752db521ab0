"""qmail users (qmail-users(5)): users/assign, users/cdb, and qmail-getpw's rules.

A local address is assigned to a user, uid, gid, home directory, dash and extension:

  * users/assign, compiled by qmail-newu into users/cdb, lists exact addresses
    (`=local:user:uid:gid:homedir:dash:ext:`) and wildcards
    (`+prefix:user:uid:gid:homedir:dash:pre:`, which matches every address beginning with
    prefix; its extension is pre + the rest of the address). A line `.` ends the file.
  * otherwise qmail-getpw's rules: the longest account name that is the whole address or
    the part before a `-`, lowercased, with a non-zero uid and a home directory it owns;
    failing that, the `alias` user with dash `-` and the whole address as extension.

users/cdb: key `!local\\0` (exact) or `!prefix` (wildcard), both lowercased; value
`user\\0uid\\0gid\\0homedir\\0dash\\0ext`; key "" holds the last characters of every
wildcard prefix, so a lookup only tries prefixes that could match.
"""

import os
import pwd
from dataclasses import dataclass

import cdblib

from ucspi.runtime import exitcodes

BREAK = b"-"  # conf-break
ALIAS_USER = "alias"  # conf-users: the user whose home holds the .qmail-* alias files
USERNAME_LIMIT = 32  # longest account name qmail-getpw tries


@dataclass(frozen=True)
class Assignment:
    """Where mail for an address goes (what qmail-lspawn passes to qmail-local)."""
    user: bytes
    uid: int
    gid: int
    home: bytes
    dash: bytes
    ext: bytes


class FormatError(Exception):
    """users/assign has a line qmail-newu cannot read."""


class Trouble(Exception):
    """A temporary failure looking a user up (users/cdb unreadable, NFS, passwd)."""


def encode(a: Assignment) -> bytes:
    """The user\\0uid\\0gid\\0home\\0dash\\0ext\\0 form qmail-getpw prints."""
    return b"\0".join((a.user, b"%d" % a.uid, b"%d" % a.gid, a.home, a.dash, a.ext)) + b"\0"


def decode(data: bytes) -> Assignment:
    """Inverse of encode; ValueError when data is not six NUL-terminated fields."""
    fields = data.split(b"\0")
    if len(fields) < 7 or fields[6] != b"":
        raise ValueError("not six fields")
    user, uid, gid, home, dash, ext = fields[:6]
    return Assignment(user, _number(uid), _number(gid), home, dash, ext)


def _number(text: bytes) -> int:
    """scan_ulong: the leading decimal digits (0 when none)."""
    digits = b""
    for ch in text:
        if not 48 <= ch <= 57:
            break
        digits += bytes((ch,))
    return int(digits) if digits else 0


def parse_assign(text: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The (key, value) records of users/assign text and the wildcard characters."""
    records = []
    wildchars = bytearray()
    lines = text.split(b"\n")
    for number, line in enumerate(lines):
        if line.startswith(b"."):
            break
        if number == len(lines) - 1:
            raise FormatError("missing final line")  # last line without newline, no `.`
        if b"\0" in line:
            raise FormatError("NUL in line")
        colon = line.find(b":")
        if colon <= 0:
            raise FormatError("no key")
        if line.startswith(b"+"):
            key = (b"!" + line[1:colon]).lower()
            last = line[colon - 1]
            if colon >= 2 and last not in wildchars:
                wildchars.append(last)
        else:
            key = (b"!" + line[1:colon] + b"\0").lower()
        fields = line[colon + 1:].split(b":")
        if len(fields) < 7:
            raise FormatError("fewer than seven fields")
        records.append((key, b"\0".join(fields[:6])))
    return records, bytes(wildchars)


def build_cdb(text: bytes, out) -> None:
    """Write the users/cdb for users/assign text to the binary file out."""
    records, wildchars = parse_assign(text)
    writer = cdblib.Writer(out)
    for key, value in records:
        writer.put(key, value)
    writer.put(b"", wildchars)
    writer.finalize()


def lookup_cdb(data: bytes, local: bytes) -> Assignment | None:
    """users/cdb's assignment for local (qmail-lspawn's search), or None.

    ValueError when the cdb is corrupt.
    """
    try:
        reader = cdblib.Reader(data)
        wildchars = reader.get(b"")
    except Exception as err:
        raise ValueError("corrupt users/cdb") from err
    if wildchars is None:
        raise ValueError("users/cdb has no wildcard record")
    key = b"!" + local.lower() + b"\0"
    value = _get(reader, key)
    if value is not None:
        return decode(value + b"\0")
    for i in range(len(key) - 1, 0, -1):
        if i == 1 or key[i - 1] in wildchars:
            value = _get(reader, key[:i])
            if value is not None:
                return decode(value + local[i - 1:] + b"\0")
    return None


def _get(reader, key: bytes) -> bytes | None:
    try:
        return reader.get(key)
    except Exception as err:
        raise ValueError("corrupt users/cdb") from err


def getpw(local: bytes) -> Assignment | None:
    """qmail-getpw's answer for local: a system user, else the alias user, else None.

    Trouble on a temporary failure (stat of a home directory over NFS).
    """
    for end in range(len(local), -1, -1):
        if end >= USERNAME_LIMIT:
            continue
        if end < len(local) and local[end:end + 1] != BREAK:
            continue
        found = _mail_user(local[:end].lower())
        if found is not None:
            dash, ext = (b"-", local[end + 1:]) if end < len(local) else (b"", b"")
            return Assignment(os.fsencode(found.pw_name), found.pw_uid, found.pw_gid,
                              os.fsencode(found.pw_dir), dash, ext)
    try:
        alias = pwd.getpwnam(ALIAS_USER)
    except KeyError:
        return None
    return Assignment(os.fsencode(alias.pw_name), alias.pw_uid, alias.pw_gid,
                      os.fsencode(alias.pw_dir), b"-", local)


def _mail_user(name: bytes):
    """The passwd entry of name if it may receive mail: uid not 0, owns its home."""
    if not name or b"\0" in name:
        return None
    try:
        entry = pwd.getpwnam(os.fsdecode(name))
    except (KeyError, UnicodeError, ValueError):
        return None
    if entry.pw_uid == 0:
        return None
    try:
        st = os.stat(entry.pw_dir)
    except OSError as err:
        if exitcodes.error_temp(err.errno):  # qmail-getpw's QLX_NFS
            raise Trouble(f"unable to stat {entry.pw_dir}") from err
        return None
    return entry if st.st_uid == entry.pw_uid else None
