"""qmail-popup: read a POP username and password (qmail-popup(8), notqmail 1.09's replies).

Synopsis:
    qmail-popup hostname subprogram [args...]

e.g. `qmail-popup mail.example.com checkpassword qmail-pop3d Maildir` under tcpserver.
Greets with `+OK <pid.time@hostname>` (the APOP timestamp), then, in the AUTHORIZATION
state:
  USER name   +OK  (empty name: -ERR syntax error)
  PASS pw     -ERR USER first / -ERR syntax error, else the login below
  APOP u d    -ERR syntax error without the space, else the login below
  QUIT        +OK, exit
  NOOP        +OK
  CAPA        (RFC 2449) TOP, UIDL, USER, PIPELINING, STLS when offered, IMPLEMENTATION
  STLS        (RFC 2595) when offered: +OK, then TLS (below)
  other       -ERR authorization first
The login runs subprogram with descriptors 0 and 1 the client's, and descriptor 3
reading `user\\0password\\0<pid.time@hostname>\\0` (for APOP the digest takes the
password's place). subprogram (checkpassword) logs the user in and runs the rest of the
chain (qmail-pop3d), which answers the client from then on; qmail-popup waits for it and
then exits 1, after `-ERR aack, child crashed` if it was killed by a signal or `-ERR
authorization failed` if it exited nonzero. One login attempt per connection, as qmail.
Errors of qmail's doanddie: `-ERR unable to open pipe`, `-ERR unable to fork`, `-ERR
unable to write pipe`. Usage: `-ERR usage: popup hostname subprogram`, exit 1.

Timeouts: 1200 seconds for each read and each write (qmail-popup(8): "a 20-minute idle
timeout"); then exit 1, as at the end of input.

TLS (not in qmail 1.03), the UCSPI-TLS protocol of `sslserver -n`: when UCSPITLS is set
and SSLCTLFD, SSLREADFD, SSLWRITEFD name descriptors, STLS is offered. On STLS:
`+OK begin TLS negotiation`, then `Y` is written to $SSLCTLFD, and from then on commands
are read from $SSLREADFD and replies written to $SSLWRITEFD; a USER given before is
forgotten (RFC 2595). The subprogram then gets those two as its descriptors 0 and 1.
UCSPITLS=! means TLS is required: USER, PASS and APOP before STLS get `-ERR STLS first`
and CAPA does not list USER. UCSPITLS and the SSL*FD variables are removed from the
subprogram's environment.

What follows PASS or APOP in the same packet is left unread for the subprogram (see
pop3_io: exact reads), so PIPELINING holds across the login.

Exit codes: 1 always (qmail-popup's die()), as the original.
"""

from __future__ import annotations

import os
import sys
import time

from qmail.auth import checkpw
from qmail.pop3 import pop3_io
from ucspi.runtime import children, launch

OK = b"+OK \r\n"
TLS_VARIABLES = ("UCSPITLS", "SSLCTLFD", "SSLREADFD", "SSLWRITEFD")


def err(text: str) -> bytes:
    return b"-ERR " + text.encode() + b"\r\n"


USAGE = err("usage: popup hostname subprogram")
PIPE = err("unable to open pipe")
WRITE = err("unable to write pipe")
FORK = err("unable to fork")
CRASHED = err("aack, child crashed")
BADAUTH = err("authorization failed")
SYNTAX = err("syntax error")
WANTUSER = err("USER first")
AUTHORIZ = err("authorization first")
WANTTLS = err("STLS first")
TLS_GO = b"+OK begin TLS negotiation\r\n"


class Die(Exception):
    """qmail-popup's die(): exit 1."""


def tls_descriptors(env) -> tuple[int, int, int] | None:
    """(ctl, read, write) from $SSLCTLFD, $SSLREADFD, $SSLWRITEFD when UCSPITLS is set
    and all three are open descriptors; else None (no STLS)."""
    if "UCSPITLS" not in env:
        return None
    try:
        fds = tuple(int(env[name]) for name in ("SSLCTLFD", "SSLREADFD", "SSLWRITEFD"))
    except (KeyError, ValueError):
        return None
    return fds if all(fd >= 0 and launch.is_open(fd) for fd in fds) else None


class Session:
    def __init__(self, conn: pop3_io.Conn, hostname: bytes, childargs: list[str], env):
        self.conn = conn
        self.hostname = hostname
        self.childargs = childargs
        self.env = env
        self.tls = tls_descriptors(env)
        self.tls_required = env.get("UCSPITLS") == "!" and self.tls is not None
        self.tls_active = False
        self.username: bytes | None = None
        self.unique = b"%d.%d@" % (os.getpid(), int(time.time()))
        self.table = {b"user": self.user, b"pass": self.pass_, b"apop": self.apop,
                      b"quit": self.quit, b"noop": self.okay, b"capa": self.capa,
                      b"stls": self.stls}

    def okay(self, arg: bytes = b"") -> None:
        self.conn.out(OK)

    def greet(self) -> None:
        self.conn.out(b"+OK <" + self.unique + self.hostname + b">\r\n")

    def authoriz(self, arg: bytes) -> None:
        self.conn.out(AUTHORIZ)

    def quit(self, arg: bytes) -> None:
        self.okay()
        raise Die()

    def cleartext_refused(self) -> bool:
        if self.tls_required and not self.tls_active:
            self.conn.out(WANTTLS)
            return True
        return False

    def capa(self, arg: bytes) -> None:
        lines = [b"+OK capability list follows", b"TOP", b"UIDL"]
        if not (self.tls_required and not self.tls_active):
            lines.append(b"USER")
        lines.append(b"PIPELINING")
        if self.tls and not self.tls_active:
            lines.append(b"STLS")
        lines += [b"IMPLEMENTATION qmail-popup (djb-suite)", b"."]
        self.conn.out(b"\r\n".join(lines) + b"\r\n")

    def stls(self, arg: bytes) -> None:
        if not self.tls or self.tls_active:
            return self.authoriz(arg)
        ctl, rfd, wfd = self.tls
        self.conn.write(TLS_GO)
        try:
            os.write(ctl, b"Y")
        except OSError:
            raise Die() from None
        self.conn.use(rfd, wfd)
        self.tls_active = True
        self.username = None  # RFC 2595: forget what the client said before

    def user(self, arg: bytes) -> None:
        if self.cleartext_refused():
            return
        if not arg:
            return self.conn.out(SYNTAX)
        self.okay()
        self.username = arg

    def pass_(self, arg: bytes) -> None:
        if self.cleartext_refused():
            return
        if self.username is None:
            return self.conn.out(WANTUSER)
        if not arg:
            return self.conn.out(SYNTAX)
        self.doanddie(self.username, arg)

    def apop(self, arg: bytes) -> None:
        if self.cleartext_refused():
            return
        user, space, digest = arg.partition(b" ")
        if not space:
            return self.conn.out(SYNTAX)
        self.doanddie(user, digest)

    def child_env(self) -> dict:
        env = dict(self.env)
        for name in TLS_VARIABLES:
            env.pop(name, None)
        return env

    def doanddie(self, user: bytes, password: bytes) -> None:
        """Run the subprogram with the record on descriptor 3, wait, report, die."""
        self.conn.flush()
        record = checkpw.pop_record(user, password, b"<" + self.unique + self.hostname + b">")
        try:
            read_end, write_end = os.pipe()
        except OSError:
            self.conn.out(PIPE)
            raise Die() from None
        fds = {0: self.conn.rfd, 1: self.conn.wfd, 3: read_end}
        try:
            pid = launch.spawn(self.childargs, self.child_env(), fds=fds, keep_fds=(3,))
        except OSError:
            self.conn.out(FORK)
            raise Die() from None
        finally:
            os.close(read_end)
        try:
            view = memoryview(record)
            while view:
                view = view[os.write(write_end, view):]
        except OSError:
            self.conn.out(WRITE)
            raise Die() from None
        finally:
            os.close(write_end)
        status = children.wait_status(pid)
        if status is None:
            raise Die()
        if os.WIFSIGNALED(status):
            self.conn.out(CRASHED)
        elif os.WEXITSTATUS(status):
            self.conn.out(BADAUTH)
        raise Die()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    conn = pop3_io.Conn(0, 1, exact=True)
    try:
        if len(argv) < 3 or not argv[1]:
            conn.write(USAGE)
            return 1
        session = Session(conn, os.fsencode(argv[1]), argv[2:], launch.environ())
        session.greet()
        try:
            pop3_io.commands(conn, session.table, session.authoriz)
        except Die:
            pass
        conn.flush()
    except (pop3_io.Closed, OSError):
        pass
    return 1
