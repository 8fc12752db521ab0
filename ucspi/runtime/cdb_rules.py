"""Connection rules: tcprules' text syntax, its cdb encoding, and the lookups tcpserver makes.

Rules text (man tcprules): one rule a line, `address:instructions`; lines starting with `#`,
blank lines and lines without a colon are ignored; trailing spaces, tabs and newlines are
dropped (a CR is not). Instructions are `allow` or `deny`, then any number of `,VAR=xvaluex`
where x is any character. Addresses `a.b.c.lo-hi` and `a.b.lo-hi.` expand to one key per
number (the upper bound is capped at 255).

cdb data of a rule (what C tcprules writes, byte for byte): `D\\0` for deny, nothing for allow,
then `+VAR=value\\0` per variable in file order. The cdb itself is djb's format with keys in
file order, duplicates kept (the first one wins on lookup).

IPv6 (beyond ucspi-tcp 0.88, following fehcom's ucspi-tcp6 key format): a line whose address
is an IPv6 address, optionally `info@` before it or `/N` (1..128) after it, compiles to the
key `EXPANDED` (eight 4-digit upper-case hex groups joined by colons), `info@EXPANDED`, or
`^BITS` for a prefix, BITS being the first N bits with `0` for a zero bit and, for the k-th
one bit (k from 0), the byte 96+k. C tcprules 0.88 rejects every such line (the first colon
falls inside the address), so IPv4 input compiles exactly as before. tcp_keys() for an IPv6
address tries EXPANDED where 0.88 tries the IP, and `^BITS` for /128 down to /1 where 0.88
tries the dotted prefixes.

Reading follows djb's cdb_find step by step, so a damaged file gives the answer C gives:
found, absent, or "protocol error" (CorruptRules) exactly when C's read would run off the file.
"""

import errno
import ipaddress
import mmap
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterable

import cdblib

from ucspi.runtime import cdb_make

DENY = b"D\0"
_U32 = 0xFFFFFFFF
_MATCH_CHUNK = 32  # djb's match() compares the key 32 bytes at a time
_PAIR = struct.Struct("<II")


def encode_data(deny: bool, env: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The cdb data of one rule: `D\\0` if deny, then `+VAR=value\\0` for each variable."""
    parts = [DENY] if deny else []
    parts.extend(b"+" + name + b"=" + value + b"\0" for name, value in env)
    return b"".join(parts)


def decode_data(data: bytes) -> list[bytes]:
    """The NUL-terminated instructions of a rule's data; bytes after the last NUL are ignored, as C does."""
    records = data.split(b"\0")
    records.pop()  # unterminated tail (empty when data ends in NUL)
    return records


def rule_of(key: bytes, data: bytes) -> "Rule":
    """A Rule from a cdb record, read as tcpserver reads it: any `D` record denies,
    every `+VAR=value` record (split at the first '=') sets a variable."""
    deny = False
    env = []
    for record in decode_data(data):
        if record[:1] == b"D":
            deny = True
        elif record[:1] == b"+" and b"=" in record:
            name, value = record[1:].split(b"=", 1)
            env.append((os.fsdecode(name), os.fsdecode(value)))
    return Rule(os.fsdecode(key), deny, env)


def parse_line(line: bytes) -> list[tuple[bytes, bytes]] | None:
    """The (key, data) records one line of rules text compiles to, in order.

    None for a line tcprules skips (comment, blank, no colon); [] for an empty range.
    Raises ParseError (carrying the trimmed line) where C tcprules says "unable to parse".
    """
    if line[:1] == b"#":
        return None
    line = line.rstrip(b"\n \t")
    if not line:
        return None
    colon = line.find(b":")
    if colon < 0:
        return None
    try:
        return _expand(line[:colon], _instructions(line[colon + 1:]))
    except ParseError:
        pass
    try:
        records = _ipv6_rule(line)
    except ParseError:
        records = None
    if records is None:
        raise ParseError(line)
    return records


def compile_rules(lines: Iterable[bytes], out: BinaryIO) -> int:
    """Write the cdb for rules text `lines` to the seekable file `out`; returns the record count.

    Raises ParseError on a bad line (out then holds a partial file to be discarded).
    """
    writer = cdb_make.Writer(out)
    count = 0
    for line in lines:
        records = parse_line(line)
        if records:
            writer.put_all(records)
            count += len(records)
    writer.finalize()
    return count


def tcp_keys(ip: str, host: str | None, info: str | None) -> list[str]:
    """The keys tcpserver tries, in order (man tcprules, ADDRESSES); None means unset."""
    addr = _ipv6_expanded(ip)
    exact = ip if addr is None else addr
    keys = []
    if info is not None:
        keys.append(f"{info}@{exact}")
        if host is not None:
            keys.append(f"{info}@={host}")
    keys.append(exact)
    if host is not None:
        keys.append("=" + host)
    if addr is None:
        keys.extend(ip[:n] for n in range(len(ip), 0, -1) if ip[n - 1] == ".")
    else:
        bits = b"^" + _bitstring(ipaddress.IPv6Address(addr).packed, 128)
        keys.extend(os.fsdecode(bits[:n + 1]) for n in range(128, 0, -1))
    if host is not None:
        keys.extend("=" + host[i:] for i, ch in enumerate(host) if ch == ".")
        keys.append("=")
    keys.append("")
    return keys


def find_data(cdb_path: str, keys: Iterable[str]) -> tuple[str, bytes] | None:
    """(key, data) of the first key present in the cdb at cdb_path, None if none is.

    Raises FileNotFoundError if the file is missing, OSError on read trouble,
    CorruptRules when the file is not a sound cdb where the lookup reads it.
    """
    fd = os.open(cdb_path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO must not hang us
    try:
        db = _CdbFile(fd)
        try:
            for key in keys:
                data = db.find(os.fsencode(key))
                if data is not None:
                    return key, data
            return None
        finally:
            db.close()
    finally:
        os.close(fd)


def find(cdb_path: str, keys: Iterable[str]) -> "Rule | None":
    """Open cdb_path afresh, return the Rule of the first key present, None if none is.

    Raises FileNotFoundError if cdb_path is missing, OSError on read trouble,
    CorruptRules on bad data.
    """
    found = find_data(cdb_path, keys)
    if found is None:
        return None
    key, data = found
    return rule_of(os.fsencode(key), data)


def lookup(cdb_path: str, ip: str, host: str | None, info: str | None) -> "Rule | None":
    """The rule tcpserver follows for a connection: find(cdb_path, tcp_keys(ip, host, info))."""
    return find(cdb_path, tcp_keys(ip, host, info))


def _instructions(text: bytes) -> bytes:
    """cdb data for the part after the colon; ParseError if it is not allow/deny[,VAR=xvx]..."""
    if text.startswith(b"deny"):
        data, rest = [DENY], text[4:]
    elif text.startswith(b"allow"):
        data, rest = [], text[5:]
    else:
        raise ParseError(text)
    while rest:
        if rest[:1] != b",":
            raise ParseError(text)
        eq = rest.find(b"=")
        if eq < 0 or eq + 1 >= len(rest):
            raise ParseError(text)
        quote = rest[eq + 1:eq + 2]
        end = rest.find(quote, eq + 2)
        if end < 0:
            raise ParseError(text)
        data.append(b"+" + rest[1:eq + 1] + rest[eq + 2:end] + b"\0")
        rest = rest[end + 1:]
    return b"".join(data)


def _expand(address: bytes, data: bytes) -> list[tuple[bytes, bytes]]:
    """Records for an address, expanding a lo-hi range as C tcprules does."""
    dash = address.find(b"-")
    if dash < 0 or b"=" in address or b"@" in address:
        return [(address, data)]
    left = address.rfind(b".", 0, dash) + 1
    right = address.find(b".", dash + 1)
    if right < 0:
        right = len(address)
    bot = _number(address[left:dash])
    top = min(_number(address[dash + 1:right]), 255)
    head, tail = address[:left], address[right:]
    return [(head + b"%d" % n + tail, data) for n in range(bot, top + 1)]


def _number(digits: bytes) -> int:
    """C's unsigned long from a run of digits (empty is 0; wraps at 2**64); ParseError otherwise."""
    if digits and not digits.isdigit():
        raise ParseError(digits)
    value = 0
    for i in range(0, len(digits), 18):  # in pieces: int() refuses very long digit strings
        piece = digits[i:i + 18]
        value = (value * 10 ** len(piece) + int(piece)) % (1 << 64)
    return value


def _ipv6_rule(line: bytes) -> list[tuple[bytes, bytes]] | None:
    """Records for an IPv6 rule line, None if the line is not one.

    The instruction colon is the first one followed by allow/deny: an IPv6 address has only
    hex digits, so it never contains ':allow' or ':deny'.
    """
    start = 0
    while True:
        colon = line.find(b":", start)
        if colon < 0:
            return None
        if line.startswith((b"allow", b"deny"), colon + 1):
            break
        start = colon + 1
    address = line[:colon]
    info, at, ip = address.rpartition(b"@")
    ip, slash, prefix = ip.partition(b"/")
    if b"%" in ip:
        return None
    expanded = _ipv6_expanded(ip.decode("ascii", "replace"))
    if expanded is None:
        return None
    data = _instructions(line[colon + 1:])
    if slash:
        if at or not prefix.isdigit() or len(prefix) > 3 or not 1 <= int(prefix) <= 128:
            return None
        packed = ipaddress.IPv6Address(expanded).packed
        return [(b"^" + _bitstring(packed, int(prefix)), data)]
    return [(info + at + expanded.encode("ascii"), data)]


def _ipv6_expanded(ip: str) -> str | None:
    """fehcom's expanded form of an IPv6 address (8 upper-case 4-digit groups), None if ip is not one."""
    if ":" not in ip:
        return None
    try:
        addr = ipaddress.IPv6Address(ip.split("%", 1)[0])  # a link-local scope is not part of the address
    except ValueError:
        return None
    return addr.exploded.upper()


def _bitstring(packed: bytes, nbits: int) -> bytes:
    """ucspi-tcp6's prefix key body: '0' per zero bit, byte 96+k for the k-th one bit."""
    out = bytearray()
    ones = 0
    for i in range(nbits):
        if packed[i >> 3] & (0x80 >> (i & 7)):
            out.append((96 + ones) & 0xFF)
            ones += 1
        else:
            out.append(0x30)
    return bytes(out)


@dataclass
class Rule:
    key: str                         # the address key that matched
    deny: bool
    env: list[tuple[str, str]]       # variables to set, in file order


class ParseError(Exception):
    """tcprules cannot parse this line (args[0]: the line, trailing blanks removed)."""


class CorruptRules(Exception):
    """The rules file is not a sound cdb (djb's cdb says "protocol error")."""

    errno = errno.EPROTO  # so exitcodes.error_str() words it as C does

    def __init__(self, msg: str = "protocol error"):
        super().__init__(msg)


class _CdbFile:
    """djb's cdb lookup over an open descriptor (mapped when it is a non-empty regular file)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.map = None
        self.size = 0
        st = os.fstat(fd)
        if st.st_size > 0 and (st.st_mode & 0o170000) == 0o100000:
            try:
                self.map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
                self.size = len(self.map)
            except (OSError, ValueError):
                self.map = None

    def close(self) -> None:
        if self.map is not None:
            self.map.close()

    def read(self, pos: int, n: int) -> bytes:
        if self.map is not None:
            if pos > self.size or self.size - pos < n:
                raise CorruptRules()
            return self.map[pos:pos + n]
        data = os.pread(self.fd, n, pos) if n else b""
        if len(data) < n:
            raise CorruptRules()
        return data

    def pair(self, pos: int) -> tuple[int, int]:
        """The two little-endian 32-bit numbers at pos."""
        if self.map is not None and pos + 8 <= self.size:
            return _PAIR.unpack_from(self.map, pos)
        return _PAIR.unpack(self.read(pos, 8))

    def find(self, key: bytes) -> bytes | None:
        """The data of the first record for key, None if absent (djb's cdb_find + cdb_read)."""
        h = cdblib.djb_hash(key)
        hpos, hslots = self.pair((h << 3) & 2047)
        if not hslots:
            return None
        end = (hpos + (hslots << 3)) & _U32
        kpos = (hpos + (((h >> 8) % hslots) << 3)) & _U32
        for _ in range(hslots):
            slot_hash, pos = self.pair(kpos)
            if not pos:
                return None
            kpos = (kpos + 8) & _U32
            if kpos == end:
                kpos = hpos
            if slot_hash != h:
                continue
            klen, dlen = self.pair(pos)
            if klen == len(key) and self._match(key, (pos + 8) & _U32):
                return self.read((pos + 8 + klen) & _U32, dlen)
        return None

    def _match(self, key: bytes, pos: int) -> bool:
        for i in range(0, len(key), _MATCH_CHUNK):
            chunk = key[i:i + _MATCH_CHUNK]
            if self.read((pos + i) & _U32, len(chunk)) != chunk:
                return False
        return True

