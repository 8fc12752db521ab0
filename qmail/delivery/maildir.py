"""Maildir (maildir(5)): create one, deliver into one, list what is in one.

Delivery follows the Maildir protocol, which needs no locks: the message is written to
`tmp/` under a name no other delivery can be using, fsynced, then linked into `new/` and
the `tmp/` name removed. A reader only ever sees complete messages in `new/`; a crash
leaves at most a stale file in `tmp/`, which readers ignore.

Unique names are `SECONDS.MUSECPPIDQN.HOST`: the time, the microseconds, the process id and
a per-process delivery counter (so one process can deliver twice in a microsecond), and the
host name with `/` and `:` written as `\\057` and `\\072` as maildir(5) asks.
"""

import errno
import itertools
import os
import socket
import time

from ucspi.runtime import durable, exitcodes

_counter = itertools.count(1)
CHUNK = 65536


class MaildirError(Exception):
    """A delivery failed; kind is chdir (no such Maildir), read (the message) or write."""

    def __init__(self, kind: str, err: OSError | None = None):
        super().__init__(kind, err)
        self.kind = kind
        self.err = err


class ChdirError(Exception):
    """$MAILDIR cannot be entered; the text is qmail's maildir_chdir_err."""


def chdir_env() -> None:
    """chdir to the Maildir $MAILDIR names (qmail's maildir_chdir, for maildir2mbox and
    maildirwatch). Raises ChdirError: "MAILDIR not set", "unable to chdir to DIR: reason"."""
    where = os.environ.get("MAILDIR")
    if where is None:
        raise ChdirError("MAILDIR not set")
    try:
        os.chdir(where)
    except OSError as err:
        raise ChdirError(f"unable to chdir to {where}: {exitcodes.error_str(err)}") from None


def host_part() -> str:
    """The host name as it goes into unique names."""
    return socket.gethostname().replace("/", "\\057").replace(":", "\\072")


def unique_name(now: float | None = None) -> str:
    """A file name no other delivery into any Maildir on this host uses."""
    now = time.time() if now is None else now
    seconds = int(now)
    micros = int((now - seconds) * 1_000_000)
    return f"{seconds}.M{micros}P{os.getpid()}Q{next(_counter)}.{host_part()}"


def make(path: str, mode: int = 0o700) -> None:
    """Create the Maildir path with tmp/, new/ and cur/ (maildirmake)."""
    os.mkdir(path, mode)
    for sub in ("tmp", "new", "cur"):
        os.mkdir(os.path.join(path, sub), mode)


def _copy(source_fd: int, out_fd: int) -> None:
    """The whole message from source_fd (from its start) onto out_fd."""
    offset = 0
    while True:
        try:
            chunk = os.pread(source_fd, CHUNK, offset)
        except OSError as err:
            raise MaildirError("read", err) from err
        if not chunk:
            return
        offset += len(chunk)
        durable.write_all(out_fd, chunk)


def deliver(path: str, head: bytes, source_fd: int, mode: int = 0o600) -> str:
    """Deliver head + the message on source_fd into the Maildir path; its name in new/.

    Raises MaildirError; nothing is left in tmp/ afterwards either way.
    """
    try:
        if not os.path.isdir(os.path.join(path, "tmp")):
            os.stat(os.path.join(path, "tmp"))  # ENOENT and friends say why
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    except OSError as err:
        raise MaildirError("chdir", err) from err
    name = unique_name()
    tmp = os.path.join(path, "tmp", name)
    new = os.path.join(path, "new", name)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as err:
        raise MaildirError("write", err) from err
    try:
        try:
            durable.write_all(fd, head)
            _copy(source_fd, fd)
            os.fsync(fd)  # the message is on disk before it appears in new/
        finally:
            os.close(fd)
        os.link(tmp, new)
        durable.fsync_dir(new)  # new/ holds the name before we report success
    except MaildirError:
        _unlink(tmp)
        raise
    except OSError as err:
        _unlink(tmp)
        raise MaildirError("write", err) from err
    _unlink(tmp)
    return name


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def clean_tmp(path: str, now: float | None = None, age: int = 129600) -> None:
    """Remove files in path/tmp not accessed for 36 hours (abandoned deliveries)."""
    now = time.time() if now is None else now
    tmp = os.path.join(path, "tmp")
    try:
        names = os.listdir(tmp)
    except OSError:
        return
    for name in names:
        if name.startswith("."):
            continue
        try:
            if now > os.stat(os.path.join(tmp, name)).st_atime + age:
                os.unlink(os.path.join(tmp, name))
        except OSError:
            pass


def scan(path: str, subdirs=("new", "cur"), now: float | None = None) -> list[tuple[int, str]]:
    """(mtime, "sub/name") of the messages in path's subdirs, oldest first.

    Files modified in the current second are left for next time, so the order stays
    right; dot files are skipped. OSError when a subdirectory cannot be read.
    """
    now = int(time.time() if now is None else now)
    found = []
    for sub in subdirs:
        for name in os.listdir(os.path.join(path, sub)):
            if name.startswith("."):
                continue
            try:
                mtime = int(os.stat(os.path.join(path, sub, name)).st_mtime)
            except OSError:
                continue
            if mtime < now:
                found.append((mtime, f"{sub}/{name}"))
    found.sort()
    return found
