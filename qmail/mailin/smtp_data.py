"""The body of an SMTP DATA command, as qmail-smtpd 1.03 reads it (its blast()).

A DataReader is fed the raw bytes the client sends after "354" and gives back the
message as qmail stores it:
  * CR LF line ends become LF; a CR not followed by LF is kept;
  * a leading dot is removed (dot-stuffing), except in the odd ".CR x" case where
    qmail keeps ".CR" (kept here for byte-for-byte equality);
  * the message ends at the line "." CR LF; bytes after it are the next commands;
  * a LF without a CR before it (a "bare LF") raises StrayNewline: qmail answers 451 and
    hangs up;
  * hops: header lines (up to the first empty line) that begin with "Received" or
    "Delivered" in any case are counted (qmail refuses at 100: a mail loop).

Works chunk by chunk without holding a line, so a line of any length costs no memory.
"""

STRAY = "stray newline"

# States, named after what was last seen (qmail's blast() states 0..4).
MIDLINE, LINESTART, DOT, DOTCR, CR = range(5)


class StrayNewline(Exception):
    """A bare LF in the message: qmail's 451 See http://pobox.com/~djb/docs/smtplf.html."""


class DataReader:
    """Decoder of one DATA body; feed() until done."""

    def __init__(self):
        self.state = LINESTART
        self.done = False
        self.rest = b""          # bytes after the final ".\r\n" (pipelined commands)
        self.hops = 0
        self.in_header = True
        self.head = b""          # first bytes of the current raw header line

    def feed(self, data: bytes) -> bytes:
        """Decode data; returns message bytes. Sets done and rest at the end of the body."""
        out = []
        state, i, n = self.state, 0, len(data)
        find = data.find
        while i < n:
            if state == MIDLINE or state == CR:
                j = find(b"\n", i)
                pending = b"\r" if state == CR else b""
                if j == -1:
                    text = pending + data[i:]
                    if text.endswith(b"\r"):
                        out.append(text[:-1])
                        state = CR
                    else:
                        out.append(text)
                        state = MIDLINE
                    i = n
                    break
                text = pending + data[i:j]
                if not text.endswith(b"\r"):
                    raise StrayNewline(STRAY)
                out.append(text[:-1])
                out.append(b"\n")
                state = LINESTART
                i = j + 1
                continue
            ch = data[i]
            if state == LINESTART:
                if ch == 10:
                    raise StrayNewline(STRAY)
                if ch == 46:  # "."
                    state, i = DOT, i + 1
                elif ch == 13:
                    state, i = CR, i + 1
                else:
                    state = MIDLINE
            elif state == DOT:
                if ch == 10:
                    raise StrayNewline(STRAY)
                if ch == 13:
                    state, i = DOTCR, i + 1
                else:
                    state = MIDLINE  # the stuffed dot is dropped
            else:  # DOTCR
                if ch == 10:
                    i += 1
                    self.done = True
                    self.rest = data[i:]
                    break
                out.append(b".\r")
                if ch == 13:
                    state, i = CR, i + 1
                else:
                    state = MIDLINE
        self.state = state
        if self.in_header:
            self._count_hops(data[:i])
        return b"".join(out)

    def _count_hops(self, data: bytes) -> None:
        """Follow raw header lines: count Received/Delivered, stop at the empty line."""
        start = 0
        while self.in_header:
            j = data.find(b"\n", start)
            if j == -1:
                if len(self.head) < 9:
                    self.head += data[start:start + 9 - len(self.head)]
                return
            line = self.head + data[start:j + 1] if len(self.head) < 9 else self.head
            self.head = b""
            start = j + 1
            prefix = line[:9].lower()
            if prefix.startswith(b"received") or prefix == b"delivered":
                self.hops += 1
            elif line[:2] == b"\r\n":
                self.in_header = False
