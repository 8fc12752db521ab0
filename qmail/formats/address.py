"""RFC 822 header fields and address lists, tokenised the way qmail reads them.

qmail-inject (and anything else rewriting headers as qmail does) needs the exact behaviour
of qmail's token822/headerbody/hfield/quote code, not a modern RFC 5322 parser: the same
tokens, the same tolerance, the same re-folded output at 80 columns. Everything works on
bytes.

  tokenise(field) -> [Token]          a header field (or an address) as tokens; Unparseable
                                      on an unbalanced comment, quote or literal
  unparse(tokens, linelen) -> bytes   tokens back to text, folded after commas, ending "\\n"
  unquote(tokens) -> bytes            the address as an envelope string (comments dropped)
  address_list(tokens, rewrite)       walk an address-list field right to left, passing each
                                      address (reversed) to rewrite; Unparseable on bad groups
  quote_need/quote/quote2             qmail's minimal RFC 821/822 quoting of a local part
  field_known/field_valid/split_header  header field names and the header/body split
  format_message_id                   the Message-ID: qmail writes (its Date: is date822's)
"""

import time

# Token kinds (qmail's TOKEN822_*).
ATOM, QUOTE, LITERAL, COMMENT = "atom", "quote", "literal", "comment"
COMMA, AT, DOT, LEFT, RIGHT, SEMI, COLON = ",", "@", ".", "<", ">", ";", ":"

WORDS = (ATOM, QUOTE, LITERAL, COMMENT)
_SPECIAL = {ord(","): COMMA, ord("@"): AT, ord("."): DOT, ord("<"): LEFT, ord(">"): RIGHT,
            ord(";"): SEMI, ord(":"): COLON}
_SPACE = b" \t\r\n"
_NOT_IN_ATOM = frozenset(b" \t\r\n([\"<>;:@,.")
_ESCAPED_ON_OUTPUT = frozenset(b"\"[]()\\\r\n")
_DELIMITERS = {ATOM: (b"", b""), QUOTE: (b'"', b'"'), LITERAL: (b"[", b"]"), COMMENT: (b"(", b")")}

# Header fields qmail knows by name (hfield.c order), lower case.
KNOWN_FIELDS = (
    "sender", "from", "reply-to", "to", "cc", "bcc", "date", "message-id", "subject",
    "resent-sender", "resent-from", "resent-reply-to", "resent-to", "resent-cc",
    "resent-bcc", "resent-date", "resent-message-id", "return-receipt-to", "errors-to",
    "apparently-to", "received", "return-path", "delivered-to", "content-length",
    "content-type", "content-transfer-encoding", "notice-requested-upon-delivery-to",
    "mail-followup-to",
)

# Characters a local part may hold unquoted (quote.c's table).
_QUOTE_OK = frozenset(b"!#$%&'*+-./0123456789=?ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`"
                      b"abcdefghijklmnopqrstuvwxyz{|}~")

Token = tuple  # (kind, text bytes); text is b"" for the punctuation kinds


class Unparseable(Exception):
    """The field cannot be tokenised or its address list does not nest."""


def tokenise(field: bytes) -> list[Token]:
    """The tokens of field, as token822_parse makes them."""
    tokens: list[Token] = []
    n = len(field)
    i = 0
    while i < n:
        ch = field[i]
        if ch in _SPECIAL:
            tokens.append((_SPECIAL[ch], b""))
            i += 1
        elif ch in _SPACE:
            i += 1
        elif ch in b")]":
            raise Unparseable("unbalanced parenthesis or bracket")
        elif ch in b'(["':
            kind, i = _delimited(field, i, tokens)
        else:
            text = bytearray()
            while True:
                if field[i] == 0x5C:  # backslash quotes the next character, even in an atom
                    i += 1
                    if i >= n:
                        break
                text.append(field[i])
                i += 1
                if i >= n or field[i] in _NOT_IN_ATOM:
                    break
            kind = ATOM
            for c in text:
                # an atom that could not be written back as one becomes a quoted string
                if c < 32 or c > 126 or c in b")]\\":
                    kind = QUOTE
                    break
            tokens.append((kind, bytes(text)))
    return tokens


def _delimited(field: bytes, i: int, tokens: list) -> tuple[str, int]:
    """A comment (nesting, inner parentheses dropped), quoted string or domain literal."""
    opener = field[i]
    kind = {0x28: COMMENT, 0x22: QUOTE, 0x5B: LITERAL}[opener]
    closer = {0x28: 0x29, 0x22: 0x22, 0x5B: 0x5D}[opener]
    text = bytearray()
    level = 1
    n = len(field)
    while level:
        i += 1
        if i >= n:
            raise Unparseable("unterminated " + kind)
        ch = field[i]
        if kind == COMMENT and ch == 0x28:
            level += 1
        elif ch == closer:
            level -= 1
        else:
            if ch == 0x5C:
                i += 1
                if i >= n:
                    raise Unparseable("unterminated " + kind)
                ch = field[i]
            text.append(ch)
    tokens.append((kind, bytes(text)))
    return kind, i + 1


def _needs_space(last: str | None, new: str) -> bool:
    if last is None:
        return False
    if last in (COLON, COMMA) or new == LEFT:
        return True
    return last in WORDS and new in WORDS


def unparse(tokens: list[Token], linelen: int = 80) -> bytes:
    """Tokens back to a header field ending in "\\n", folded after commas past linelen."""
    out = bytearray()
    line_begin = 0
    line_break: int | None = None  # where the last tentative "\n " fold sits

    def fold():
        nonlocal line_begin, line_break
        s = len(out)
        if line_break is not None and (not linelen or s - line_begin <= linelen):
            del out[line_break:line_break + 2]  # the line still fits: drop the last fold
            line_break = len(out)
        else:
            if line_break is not None:
                line_begin = line_break + 1
            line_break = s
        out.extend(b"\n ")

    last = None
    for kind, text in tokens:
        if _needs_space(last, kind):
            out.append(0x20)
        last = kind
        if kind == COMMA:
            out.append(0x2C)
            fold()
        elif kind in WORDS:
            opening, closing = _DELIMITERS[kind]
            out += opening
            for ch in text:
                if ch in _ESCAPED_ON_OUTPUT:
                    out.append(0x5C)
                out.append(ch)
            out += closing
        else:
            out.extend(kind.encode())
    fold()
    del out[-1]
    return bytes(out)


def unquote(tokens: list[Token]) -> bytes:
    """The tokens as an envelope address: texts joined, literals bracketed, comments dropped."""
    out = bytearray()
    for kind, text in tokens:
        if kind == LITERAL:
            out += b"[" + text + b"]"
        elif kind in (ATOM, QUOTE):
            out += text
        elif kind != COMMENT:
            out += kind.encode()
    return bytes(out)


def address_list(tokens: list[Token], rewrite) -> list[Token]:
    """Rewrite every address of an address-list field (tokens[0:2] are its name and colon).

    rewrite(address) gets each address's tokens in reverse order (rightmost first; an
    empty list for <>) and returns the replacement, also reversed. Phrases, comments,
    angle brackets and group syntax pass through; two adjacent addresses get a comma.
    """
    out: list[Token] = []  # built right to left
    addr: list[Token] = []
    ingroup = False
    wordok = True
    t = len(tokens) - 1

    def flush(comma: bool) -> None:
        if addr:
            out.extend(rewrite(list(addr)))
            addr.clear()
            if comma:
                out.append((COMMA, b""))

    while t >= 2:
        kind = tokens[t][0]
        if kind == SEMI:
            flush(True)
            if ingroup:
                raise Unparseable("nested group")
            ingroup = True
            wordok = True
        elif kind == COLON:
            flush(False)
            if not ingroup:
                raise Unparseable("colon outside a group")
            ingroup = False
            while t >= 2 and tokens[t][0] != COMMA:
                out.append(tokens[t])
                t -= 1
            if t >= 2:
                out.append(tokens[t])
                t -= 1
            wordok = True
            continue
        elif kind == RIGHT:
            flush(True)
            out.append(tokens[t])
            t -= 1
            while t >= 2 and tokens[t][0] != LEFT:
                addr.append(tokens[t])
                t -= 1
            out.extend(rewrite(list(addr)))  # even when empty: <> is an address
            addr.clear()
            if t < 2:
                raise Unparseable("> without <")
            out.append(tokens[t])
            t -= 1
            while t >= 2 and tokens[t][0] in (COMMENT, ATOM, QUOTE, AT, DOT):
                out.append(tokens[t])
                t -= 1
            wordok = False
            continue
        elif kind in (ATOM, QUOTE, LITERAL):
            if not wordok:
                flush(True)
            wordok = False
            addr.append(tokens[t])
            t -= 1
            continue
        elif kind == COMMENT:
            pass  # lexically a space: leaves wordok alone
        elif kind == COMMA:
            flush(False)
            wordok = True
        else:
            wordok = True
            addr.append(tokens[t])
            t -= 1
            continue
        out.append(tokens[t])
        t -= 1
    flush(False)
    out.extend(reversed(tokens[:min(len(tokens), 2)]))
    out.reverse()
    return out


def quote_need(box: bytes) -> bool:
    """Whether a local part must be quoted to be written as one."""
    if not box:
        return True
    if any(ch not in _QUOTE_OK for ch in box):
        return True
    return box.startswith(b".") or box.endswith(b".") or b".." in box


def quote(box: bytes) -> bytes:
    """box, in double quotes (CR, LF, quote and backslash escaped) only when needed."""
    if not quote_need(box):
        return box
    out = bytearray(b'"')
    for ch in box:
        if ch in b'\r\n"\\':
            out.append(0x5C)
        out.append(ch)
    out.append(0x22)
    return bytes(out)


def quote2(address: bytes) -> bytes:
    """An envelope address with its local part (before the last @) quoted as needed."""
    if not address:
        return address
    at = address.rfind(b"@")
    if at < 0:
        return quote(address)
    return quote(address[:at]) + address[at:]


def field_known(field: bytes) -> str | None:
    """The lower-case name of a field qmail knows ("to", "resent-bcc" ...), else None.

    The name matches case-insensitively (a hyphen only as itself) and may be followed by
    spaces and tabs before the colon.
    """
    colon = field.find(b":")
    if colon < 0:
        return None
    name = field[:colon].rstrip(b" \t")
    try:
        lowered = name.decode("ascii")
    except UnicodeDecodeError:
        return None
    for known in KNOWN_FIELDS:
        if len(lowered) == len(known) and all(
                c == k or (k.isalpha() and c == k.upper()) for c, k in zip(lowered, known)):
            return known
    return None


def field_valid(field: bytes) -> bool:
    """A colon, a non-empty name before it (trailing blanks allowed), all printable ASCII."""
    colon = field.find(b":")
    if colon < 0:
        return False
    name = field[:colon].rstrip(b" \t")
    return bool(name) and all(33 <= ch <= 126 for ch in name)


def split_header(lines):
    """Events of a message read as headerbody does: ("field", bytes), ("end", b""),
    ("body", bytes).

    lines yields the input in pieces that end in "\\n" except where a line was longer
    than the reader's limit and at the very end. Header lines are joined whole; body
    pieces pass through as they come, and the input's last line gets a "\\n" if it lacks
    one. Continuation lines join their field; a "From " line becomes an "MBOX-Line: "
    field; the first line that is neither ends the header: a blank line is kept as the
    separator, anything else is preceded by an inserted blank line.
    """
    field = None
    in_header = True
    pending = b""  # a header line still arriving
    held = None  # the latest body piece: the last one may need its newline
    for piece in lines:
        if not piece:
            continue
        if not in_header:
            if held is not None:
                yield ("body", held)
            held = piece
            continue
        pending += piece
        if not pending.endswith(b"\n"):
            continue
        line, pending = pending, b""
        field, in_header, events = _header_line(field, line)
        yield from events
    if in_header:
        if pending:
            field, in_header, events = _header_line(field, pending + b"\n")
            yield from events
        if in_header:
            if field is not None:
                yield ("field", field)
            yield ("end", b"")
    if held is not None:
        yield ("body", held if held.endswith(b"\n") else held + b"\n")


def _header_line(field, line):
    """One whole header-phase line: (field being built, still in header, events)."""
    events = []
    if field is not None:
        if line[:1] in (b" ", b"\t"):
            return field + line, True, events
        events.append(("field", field))
        field = None
    if line == b"\n":
        events += [("end", b""), ("body", line)]
        return None, False, events
    if line.startswith(b"From "):
        return b"MBOX-Line: " + line, True, events
    if field_valid(line):
        return line, True, events
    events += [("end", b""), ("body", b"\n"), ("body", line)]
    return None, False, events


def format_message_id(idhost: bytes, pid: int, when: float | None = None) -> bytes:
    """The id part of qmail's Message-ID: "<YYYYMMDDhhmmss.PID.qmail@idhost>"."""
    t = time.gmtime(time.time() if when is None else when)
    stamp = (f"<{t.tm_year}{t.tm_mon:02d}{t.tm_mday:02d}{t.tm_hour:02d}{t.tm_min:02d}"
             f"{t.tm_sec:02d}.{pid}.qmail@")
    return stamp.encode() + idhost + b">"
