"""qbiff: announce new mail the moment it arrives (qbiff(1)).

Synopsis:
    in .qmail: |qbiff

Writes a two-line notice (`*** TO <local> FROM <sender>` and the Subject with the start of
the body, 78 characters at most, anything unprintable replaced) to every terminal where
$USER is logged in (from utmp) that has biff turned on (its owner-execute bit set, as
`biff y` does) and belongs to the user running qbiff.

Exit codes: always 0 (a notice is a courtesy, never a reason to defer or bounce).

Environment: USER, SENDER, LOCAL (from qmail-local).
"""

import os
import stat
import struct
import sys

from qmail.delivery import mail_summary

PROG = "qbiff"
UTMP = "/var/run/utmp"
USER_PROCESS = 7
# glibc's struct utmp on Linux: type, pid, line[32], id[4], user[32], host[256], ...
_RECORD = struct.Struct("=hxxi32s4s32s256s")
RECORD_SIZE = 384


def notice(user_local: bytes, sender: bytes, message: bytes) -> bytes:
    """What gets written to the terminal."""
    tofrom = mail_summary.printable(b"*** TO <" + user_local + b"> FROM <" + sender + b">", b"_")
    text = mail_summary.Glimpse(b"    ", 78).feed(message).text
    return b"\r\n\a" + tofrom + b"\r\n" + mail_summary.printable(bytes(text), b"/") + b"\r\n"


def terminals(utmp: bytes, user: bytes) -> list[bytes]:
    """The tty names (relative to /dev) where user is logged in, from utmp records."""
    found = []
    for offset in range(0, len(utmp) - RECORD_SIZE + 1, RECORD_SIZE):
        kind, _, line, _, name, _ = _RECORD.unpack_from(utmp, offset)
        if kind != USER_PROCESS or name.split(b"\0", 1)[0] != user:
            continue
        line = line.split(b"\0", 1)[0]
        if not line or line.startswith(b"/") or b"." in line:
            continue  # only plain names under /dev
        found.append(line)
    return found


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    user = os.environb.get(b"USER")
    sender = os.environb.get(b"SENDER")
    local = os.environb.get(b"LOCAL")
    if user is None or sender is None or local is None or len(user) > 32:
        return 0
    try:
        os.chdir("/dev")
        message = sys.stdin.buffer.read()
        with open(UTMP, "rb") as f:
            utmp = f.read()
    except OSError:
        return 0
    text = notice(local, sender, message)
    for line in terminals(utmp, user):
        try:
            fd = os.open(line, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if st.st_mode & stat.S_IXUSR and st.st_uid == os.getuid():
                os.write(fd, text)
        except OSError:
            pass
        finally:
            os.close(fd)
    return 0
