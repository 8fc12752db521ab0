"""qmail-pop3d: distribute mail via POP (qmail-pop3d(8), notqmail 1.09's replies).

Synopsis:
    qmail-pop3d maildirname

Normally run by checkpassword after qmail-popup: the user is logged in, the current
directory is the home directory, descriptors 0 and 1 are the network. Refuses to run as
uid 0 (`qmail-pop3d invoked as uid 0, terminating` on stderr, exit 1). chdir to
maildirname (failure: `-ERR this user has no $HOME/Maildir`); files in tmp/ not accessed
for 36 hours are removed; the messages are those in new/ and cur/ (names not starting
with a dot) last modified before the current second, oldest first (`-ERR unable to scan
$HOME/Maildir` when a directory cannot be read); then `+OK ` and the commands:

  STAT        +OK <messages in the list, deleted ones included> <octets not deleted>
  LIST [n]    +OK n size / the list of messages not deleted, ended by "."
  UIDL [n]    the same with the file name (after new/ or cur/, up to ":") as unique id
  RETR n      +OK, the message: LF becomes CRLF, a leading "." is doubled, an empty
              line is added at the end (qmail's blast()), then "."; RETR n m is TOP n m
  TOP n [m]   as RETR with the headers and m lines of body (no m: the whole message)
  DELE n      marks n deleted (+OK ); LAST then says the highest n marked
  LAST        +OK <the highest message number DELE'd in this session, 0 after RSET>
  RSET        unmarks all, LAST 0
  NOOP        +OK
  QUIT        unlinks the marked messages (`-ERR unable to unlink all deleted messages`
              for each that cannot be), renames the other new/X to cur/X:2, and +OK
  CAPA        (RFC 2449, not in qmail 1.03) TOP, UIDL, PIPELINING, IMPLEMENTATION
  anything else: -ERR unimplemented
Message numbers: `-ERR syntax error` (no digits), `-ERR messages are counted from 1`,
`-ERR not that many messages`, `-ERR already deleted`; a message that cannot be opened:
`-ERR unable to open that message`. Sizes are the file's, in octets, before CRLF.

Nothing changes in the Maildir before QUIT: a session that ends any other way (end of
input, 1200 s without input or without the client reading, an error) deletes nothing.
Messages delivered during the session are left for the next. Two sessions on one Maildir
see the same messages; beyond qmail, a message one session's QUIT moved from new/X to
cur/X:2, is still read (RETR, TOP) and deleted there by the other, and one that is gone
gets qmail's answers (unable to open that message; unable to unlink all deleted
messages). Nothing is lost either way.

Exit codes: 0 (the original's die(), however the session ends); 1 as uid 0.
"""

from __future__ import annotations

import os
import sys
import time

from qmail.pop3 import pop3_io

CLEAN_AGE = 129600  # seconds: tmp/ files untouched this long are leftovers (36 hours)
BLAST_CHUNK = 1 << 20

OK = b"+OK \r\n"
CAPABILITIES = (b"+OK capability list follows\r\nTOP\r\nUIDL\r\nPIPELINING\r\n"
                b"IMPLEMENTATION qmail-pop3d (djb-suite)\r\n.\r\n")


def err(text: str) -> bytes:
    return b"-ERR " + text.encode() + b"\r\n"


NOMAILDIR = err("this user has no $HOME/Maildir")
SCAN = err("unable to scan $HOME/Maildir")
SYNTAX = err("syntax error")
UNIMPLEMENTED = err("unimplemented")
DELETED = err("already deleted")
NOZERO = err("messages are counted from 1")
TOOBIG = err("not that many messages")
NOSUCH = err("unable to open that message")
NOUNLINK = err("unable to unlink all deleted messages")
INT_MAX = 2 ** 31 - 1


class Message:
    __slots__ = ("fn", "size", "deleted")

    def __init__(self, fn: str, size: int):
        self.fn = fn
        self.size = size
        self.deleted = False

    def moved(self) -> str | None:
        """Where another qmail-pop3d's QUIT puts a message of new/ (cur/NAME:2,)."""
        return "cur/" + self.fn[4:] + ":2," if self.fn.startswith("new/") else None


def on_file(m: Message, action):
    """action(path) on the message's file, or on where a concurrent session's QUIT moved
    it when it is no longer in new/; raises the first OSError when neither works."""
    try:
        return action(m.fn)
    except FileNotFoundError:
        moved = m.moved()
        if moved is None:
            raise
        try:
            return action(moved)
        except OSError:
            pass
        raise


def clean_tmp(now: float) -> None:
    """qmail's maildir_clean: remove tmp/ files not accessed for 36 hours."""
    try:
        names = os.listdir("tmp")
    except OSError:
        return
    for name in names:
        if name.startswith("."):
            continue
        path = "tmp/" + name
        try:
            if now > os.stat(path).st_atime + CLEAN_AGE:
                os.unlink(path)
        except OSError:
            pass


def scan() -> list[Message] | None:
    """The messages of new/ and cur/ older than this second, oldest first; None when a
    directory cannot be read (qmail's maildir_scan)."""
    now = int(time.time())
    found = []
    for subdir in ("new", "cur"):
        try:
            names = os.listdir(subdir)
        except OSError:
            return None
        for name in names:
            if name.startswith("."):
                continue
            fn = subdir + "/" + name
            try:
                st = os.stat(fn)
            except OSError:
                continue
            if st.st_mtime < now:  # qmail: "don't want to mix up the order"
                found.append((int(st.st_mtime), len(found), fn, st.st_size))
    found.sort()
    return [Message(fn, size) for _, _, fn, size in found]


def parse_ulong(arg: bytes) -> tuple[int, int]:
    """qmail's scan_ulong: (value, digits used)."""
    n = 0
    while n < len(arg) and 48 <= arg[n] <= 57:
        n += 1
    return (int(arg[:n]) if n else 0), n


def stuff(block: bytes) -> bytes:
    """Complete lines (LF-separated, no final LF) as they go on the wire: CRLF, dots
    doubled."""
    data = block.replace(b"\n.", b"\n..").replace(b"\n", b"\r\n")
    return b"." + data if data.startswith(b".") else data


def blast(conn: pop3_io.Conn, f, limit: int) -> None:
    """qmail-pop3d's blast: the message from file f; limit 0 for all of it, else one
    more than the number of body lines wanted."""
    if limit == 0:
        carry = b""
        while True:
            chunk = f.read(BLAST_CHUNK)
            if not chunk:
                break
            data = carry + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            carry = data[cut + 1:]
            conn.write(stuff(data[:cut]) + b"\r\n")
        if carry:
            conn.write(stuff(carry) + b"\r\n")
    else:
        inheaders = True
        out = []
        for raw in f:
            line = raw[:-1] if raw.endswith(b"\n") else raw
            if not inheaders:
                limit -= 1
                if not limit:
                    break
            if not line:
                inheaders = False
            out.append(stuff(line) + b"\r\n")
            if len(out) >= 256:
                conn.write(b"".join(out))
                out = []
        conn.write(b"".join(out))
    conn.write(b"\r\n.\r\n")


class Session:
    def __init__(self, conn: pop3_io.Conn, messages: list[Message]):
        self.conn = conn
        self.m = messages
        self.last = 0
        self.table = {b"quit": self.quit, b"stat": self.stat, b"list": self.list,
                      b"uidl": self.uidl, b"dele": self.dele, b"retr": self.top,
                      b"rset": self.rset, b"last": self.last_, b"top": self.top,
                      b"noop": self.okay, b"capa": self.capa}

    def okay(self, arg: bytes = b"") -> None:
        self.conn.out(OK)

    def unimplemented(self, arg: bytes) -> None:
        self.conn.out(UNIMPLEMENTED)

    def capa(self, arg: bytes) -> None:
        self.conn.out(CAPABILITIES)

    def stat(self, arg: bytes) -> None:
        total = sum(m.size for m in self.m if not m.deleted)
        self.conn.out(b"+OK %d %d\r\n" % (len(self.m), total))

    def rset(self, arg: bytes) -> None:
        for m in self.m:
            m.deleted = False
        self.last = 0
        self.okay()

    def last_(self, arg: bytes) -> None:
        self.conn.out(b"+OK %d\r\n" % self.last)

    def quit(self, arg: bytes) -> None:
        for m in self.m:
            if m.deleted:
                try:
                    on_file(m, os.unlink)
                except OSError:
                    self.conn.out(NOUNLINK)
            elif m.fn.startswith("new/"):
                try:
                    os.rename(m.fn, "cur/" + m.fn[4:] + ":2,")
                except OSError:
                    pass  # qmail: "if it fails, bummer"
        self.okay()
        raise pop3_io.Closed()

    def msgno(self, arg: bytes) -> int:
        u, digits = parse_ulong(arg)
        if not digits:
            self.conn.out(SYNTAX)
            return -1
        if not u:
            self.conn.out(NOZERO)
            return -1
        u -= 1
        if u >= len(self.m) or u >= INT_MAX:
            self.conn.out(TOOBIG)
            return -1
        if self.m[u].deleted:
            self.conn.out(DELETED)
            return -1
        return u

    def dele(self, arg: bytes) -> None:
        i = self.msgno(arg)
        if i == -1:
            return
        self.m[i].deleted = True
        self.last = max(self.last, i + 1)
        self.okay()

    def _entry(self, i: int, uidl: bool) -> bytes:
        if uidl:
            name = self.m[i].fn[4:]
            return b"%d %s\r\n" % (i + 1, os.fsencode(name.split(":", 1)[0]))
        return b"%d %d\r\n" % (i + 1, self.m[i].size)

    def listing(self, arg: bytes, uidl: bool) -> None:
        if arg:
            i = self.msgno(arg)
            if i == -1:
                return
            self.conn.out(b"+OK " + self._entry(i, uidl))
        else:
            self.okay()
            for i, m in enumerate(self.m):
                if not m.deleted:
                    self.conn.out(self._entry(i, uidl))
            self.conn.out(b".\r\n")

    def list(self, arg: bytes) -> None:
        self.listing(arg, False)

    def uidl(self, arg: bytes) -> None:
        self.listing(arg, True)

    def top(self, arg: bytes) -> None:
        i = self.msgno(arg)
        if i == -1:
            return
        _, digits = parse_ulong(arg)
        rest = arg[digits:].lstrip(b" ")
        limit, digits = parse_ulong(rest)
        limit = limit + 1 if digits else 0
        try:
            f = on_file(self.m[i], lambda path: open(path, "rb"))
        except OSError:
            self.conn.out(NOSUCH)
            return
        with f:
            self.okay()
            try:
                blast(self.conn, f, limit)
            except OSError:
                raise pop3_io.Closed() from None  # qmail: a read error mid-message dies


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    conn = pop3_io.Conn(0, 1)
    try:
        if os.getuid() == 0:
            os.write(2, b"qmail-pop3d invoked as uid 0, terminating\n")
            return 1
        try:
            if len(argv) < 2:
                raise OSError()
            os.chdir(argv[1])
        except OSError:
            conn.write(NOMAILDIR)
            return 0
        clean_tmp(time.time())
        messages = scan()
        if messages is None:
            conn.write(SCAN)
            return 0
        session = Session(conn, messages)
        session.okay()
        pop3_io.commands(conn, session.table, session.unimplemented)
        conn.flush()
    except (pop3_io.Closed, OSError):
        pass
    return 0
