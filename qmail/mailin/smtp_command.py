"""The command lines of an SMTP session as qmail-smtpd 1.03 reads them.

split_command: commands.c's split (one CR dropped, cut at NUL, verb up to the first space,
argument after the spaces). addrparse: qmail-smtpd's own lenient address parser for MAIL
and RCPT (not RFC 822: qmail-smtpd keeps it simple on purpose). ip_in_brackets and
is_local_ip: what the localiphost rewrite of user@[my.ip.address] needs. size_parameter:
the SIZE=n of RFC 1870, for the SIZE extension.
"""

import socket

ADDRESS_LIMIT = 900       # qmail-smtpd refuses longer addresses with 555


def addrparse(arg: bytes) -> bytes | None:
    """The address in a MAIL/RCPT argument as qmail-smtpd takes it; None if too long.

    Inside <...> when there is a '<', else after the ':' up to a space; an @route: is
    dropped; quotes are removed and a backslash escapes the next byte.
    """
    lt = arg.find(b"<")
    if lt != -1:
        rest, terminator = arg[lt + 1:], 62  # ">"
    else:
        colon = arg.find(b":")
        rest = arg[colon + 1:] if colon != -1 else b""
        rest, terminator = rest.lstrip(b" "), 32
    if rest[:1] == b"@":
        colon = rest.find(b":")
        rest = rest[colon + 1:] if colon != -1 else b""
    addr = bytearray()
    escaped = quoted = False
    for ch in rest:
        if escaped:
            addr.append(ch)
            escaped = False
        elif not quoted and ch == terminator:
            break
        elif ch == 92:  # backslash
            escaped = True
        elif ch == 34:  # double quote
            quoted = not quoted
        else:
            addr.append(ch)
    if len(addr) + 1 > ADDRESS_LIMIT:
        return None
    return bytes(addr)


def ip_in_brackets(text: bytes) -> str | None:
    """The IPv4 address of exactly `[a.b.c.d]` (each part taken modulo 256, as ip_scan)."""
    if not text.startswith(b"[") or not text.endswith(b"]"):
        return None
    parts = text[1:-1].split(b".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    return ".".join(str(int(p) % 256) for p in parts)


def is_local_ip(ip: str) -> bool:
    """Whether ip belongs to this host (it can be bound to); 0.0.0.0 counts, as ipme."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((ip, 0))
            return True
        except OSError:
            return False


def split_command(line: bytes) -> tuple[bytes, bytes]:
    """(verb, argument) of a command line as commands.c splits it."""
    if line.endswith(b"\r"):
        line = line[:-1]
    line = line.split(b"\0", 1)[0]
    verb, _, arg = line.partition(b" ")
    return verb, arg.lstrip(b" ")


def size_parameter(arg: bytes) -> int | None:
    """The SIZE=n parameter of a MAIL argument (after the address), None if absent."""
    gt = arg.find(b">")
    for word in arg[gt + 1:].split(b" ") if gt != -1 else ():
        if word[:5].upper() == b"SIZE=" and word[5:].isdigit():
            return int(word[5:])
    return None
