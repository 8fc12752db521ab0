"""The command lines of an SMTP session as qmail-smtpd 1.03 reads them.

split_command: commands.c's split (one CR dropped, cut at NUL, verb up to the first space,
argument after the spaces). scan_address/addrparse: qmail-smtpd's own lenient address
parser for MAIL and RCPT (not RFC 822: qmail-smtpd keeps it simple on purpose), then
localiphost_rewrite of user@[one of my addresses] and the 900-byte limit (within_limit),
in that order. size_parameter: the SIZE=n of RFC 1870, for the SIZE extension.
"""

ADDRESS_LIMIT = 900       # qmail-smtpd refuses longer addresses with 555


def scan_address(arg: bytes) -> tuple[bytes, bool]:
    """(address, ended) of a MAIL/RCPT argument as qmail-smtpd's addrparse copies it.

    Inside <...> when there is a '<', else after the ':' up to a space; an @route: is
    dropped; quotes are removed and a backslash escapes the next byte. ended: the address
    stopped at an unquoted '>' of the <...> form, so nothing after it could change it.
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
            return bytes(addr), lt != -1
        elif ch == 92:  # backslash
            escaped = True
        elif ch == 34:  # double quote
            quoted = not quoted
        else:
            addr.append(ch)
    return bytes(addr), False


def addrparse(arg: bytes) -> bytes:
    """The address of a MAIL/RCPT argument, before the localiphost rewrite and the limit."""
    return scan_address(arg)[0]


def localiphost_rewrite(addr: bytes, liphost: bytes, is_me) -> bytes:
    """user@[a.b.c.d] becomes user@LIPHOST when is_me(a.b.c.d), as qmail-smtpd does."""
    at = addr.rfind(b"@")
    if at != -1:
        ip = ip_in_brackets(addr[at + 1:])
        if ip is not None and is_me(ip):
            return addr[:at + 1] + liphost
    return addr


def within_limit(addr: bytes) -> bool:
    """qmail-smtpd's 900-byte limit (its count takes the final NUL), after the rewrite."""
    return len(addr) + 1 <= ADDRESS_LIMIT


def address(arg: bytes, liphost: bytes | None, is_me, cut: bool = False) -> bytes | None:
    """The address qmail-smtpd takes from a MAIL/RCPT argument, None for 555: addrparse,
    the localiphost rewrite (when liphost is set), the limit. cut: the command line was
    cut short, so an address that had not ended yet is unknown (555)."""
    addr, ended = scan_address(arg)
    if cut and not ended:
        return None
    if liphost is not None:
        addr = localiphost_rewrite(addr, liphost, is_me)
    return addr if within_limit(addr) else None


def ip_in_brackets(text: bytes) -> str | None:
    """The IPv4 address of exactly `[a.b.c.d]` (each part taken modulo 256, as ip_scan)."""
    if not text.startswith(b"[") or not text.endswith(b"]"):
        return None
    parts = text[1:-1].split(b".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    return ".".join(str(int(p) % 256) for p in parts)


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
