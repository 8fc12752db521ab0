"""The virtual-mailbox database under ROOT/vdomains (docs/virtual.md).

Layout (every file belongs to the virtual-mail owner; qmail-vuser writes it, checkvpw and
qmail-local read it):

    ROOT/vdomains/                  mode 0711
        .lock                       held while control/virtualdomains and users/assign change
        DOMAIN/                     mode 0700: the home directory users/assign gives DOMAIN
            .lock                   held while the domain's users change
            .passwd                 `user:hash:quota` lines sorted by user, mode 0600
            .passwd.cdb             the same compiled: key user, value `hash:quota`
            .qmail-USER             `./USER/Maildir/` (user first.last: `.qmail-first:last`)
            USER/Maildir/           the mailbox; `maildirsize` in it when a quota is set

hash is an argon2id encoded hash (argon2-cffi; t=3, m=64 MiB, p=1); quota a number of
bytes or empty for none.
The database files begin with a dot and user names cannot, so no user's directory can
collide with them.

Names: a domain is lowercase letters, digits and `-` in dot-separated labels (each 1-63
characters, not beginning or ending with `-`), 253 characters at most; a user is
lowercase letters, digits and `.` `_` `-`, beginning with a letter, digit or `_`, 64
characters at most, without `..`, not ending with `.`, and neither `default` nor ending
in `-default` (a `.qmail-default` would catch every unknown address). Input is folded to
lowercase (ASCII) first, as qmail folds the domain and qmail-local the extension.

Library results only: BadName and FormatError for bad input, OSError and Trouble for
trouble.
"""

import fcntl
import os
import re
import secrets
from dataclasses import dataclass

import cdblib

from qmail.delivery import dot_qmail
from ucspi.runtime import cdb_make, durable

DIRECTORY = "vdomains"
LOCK = ".lock"
PASSWD = ".passwd"
PASSWD_CDB = ".passwd.cdb"
MAILDIR = "Maildir"
MAILDIRSIZE = "maildirsize"

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")
_USER = re.compile(r"[a-z0-9_][a-z0-9._-]{0,63}\Z")
_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class BadName(ValueError):
    """Not a valid virtual domain or user name."""


class FormatError(ValueError):
    """A .passwd line or .passwd.cdb record that cannot be read."""


class Trouble(Exception):
    """argon2 could not hash or check a password (memory, threads): try again later."""


# --- names -------------------------------------------------------------------------


def check_domain(text: str) -> str:
    """The domain folded to lowercase; BadName when it is not one."""
    name = text.translate(_FOLD)
    if len(name) > 253 or not _DOMAIN.match(name):
        raise BadName(f"bad domain name: {text}")
    return name


def check_user(text: str) -> str:
    """The user name folded to lowercase; BadName when it is not one."""
    name = text.translate(_FOLD)
    if (not _USER.match(name) or ".." in name or name.endswith(".")
            or name == "default" or name.endswith("-default")):
        raise BadName(f"bad user name: {text}")
    return name


def split_address(text: str) -> tuple[str, str]:
    """(user, domain) of `user@domain` or `user%domain` (the last @, else the last %),
    both checked and folded; BadName otherwise."""
    at = text.rfind("@")
    if at < 0:
        at = text.rfind("%")
    if at < 0:
        raise BadName(f"not user@domain: {text}")
    return check_user(text[:at]), check_domain(text[at + 1:])


# --- paths -------------------------------------------------------------------------


def directory(root: str) -> str:
    return os.path.join(root, DIRECTORY)


def domain_dir(root: str, domain: str) -> str:
    return os.path.join(root, DIRECTORY, domain)


def user_dir(root: str, domain: str, user: str) -> str:
    return os.path.join(root, DIRECTORY, domain, user)


def dot_qmail_name(user: str) -> str:
    """The .qmail file qmail-local reads for user (dash `-`, extension user)."""
    return ".qmail-" + os.fsdecode(dot_qmail.safe_ext(os.fsencode(user)))


def dot_qmail_text(user: str) -> bytes:
    return f"./{user}/{MAILDIR}/\n".encode()


# --- locks -------------------------------------------------------------------------


def lock(path: str) -> int:
    """Open path (created mode 0600) and wait for an exclusive flock on it, the lock
    setlock takes; the descriptor, closed by the caller (or its exit) to release it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        os.close(fd)
        raise
    return fd


# --- the password table ------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    user: str
    hash: str
    quota: int | None = None


def parse(text: bytes) -> list[Entry]:
    """.passwd's entries; FormatError on a bad line."""
    entries = []
    for number, line in enumerate(text.split(b"\n"), 1):
        if not line:
            continue
        fields = line.split(b":")
        if len(fields) != 3:
            raise FormatError(f"line {number}: not three fields")
        entries.append(_entry(fields, number))
    return entries


def _entry(fields: list[bytes], where) -> Entry:
    user, hashed, quota = (f.decode("ascii", "replace") for f in fields)
    try:
        if check_user(user) != user:
            raise BadName(user)  # stored names are folded already
    except BadName:
        raise FormatError(f"{where}: bad user name") from None
    if not hashed or any(c in hashed for c in ":\n"):
        raise FormatError(f"{where}: bad hash")
    if quota and not quota.isdigit():
        raise FormatError(f"{where}: bad quota")
    return Entry(user, hashed, int(quota) if quota else None)


def format_entries(entries: list[Entry]) -> bytes:
    """.passwd's text for entries, sorted by user (inverse of parse)."""
    return b"".join(_fields(e) + b"\n" for e in sorted(entries, key=lambda e: e.user))


def _fields(e: Entry) -> bytes:
    quota = b"" if e.quota is None else b"%d" % e.quota
    return e.user.encode() + b":" + e.hash.encode() + b":" + quota


def build_cdb(entries: list[Entry], out) -> None:
    writer = cdb_make.Writer(out)
    writer.put_all([(e.user.encode(), _fields(e).split(b":", 1)[1])
                    for e in sorted(entries, key=lambda e: e.user)])
    writer.finalize()


def read(ddir: str) -> list[Entry]:
    """The domain's entries from .passwd (OSError, FormatError)."""
    with open(os.path.join(ddir, PASSWD), "rb") as f:
        return parse(f.read())


def store(ddir: str, entries: list[Entry], owner: tuple[int, int] | None = None) -> None:
    """Replace .passwd, then .passwd.cdb, each durably (OSError). owner (uid, gid) is
    given when root writes for the virtual-mail owner."""
    text = format_entries(entries)
    _replace(os.path.join(ddir, PASSWD), lambda f: f.write(text), owner)
    _replace(os.path.join(ddir, PASSWD_CDB), lambda f: build_cdb(entries, f), owner)


def _replace(path: str, write, owner) -> None:
    def chowned(f):
        if owner is not None:
            os.fchown(f.fileno(), *owner)
        write(f)
    durable.replace(path, path + ".tmp", chowned, 0o600)


def lookup(root: str, domain: str, user: str) -> Entry | None:
    """user@domain's entry from the domain's .passwd.cdb; None when the domain or the
    user does not exist. OSError when it cannot be read, FormatError when corrupt."""
    try:
        with open(os.path.join(domain_dir(root, domain), PASSWD_CDB), "rb") as f:
            data = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        value = cdblib.Reader(data).get(user.encode())
    except Exception as err:
        raise FormatError("corrupt .passwd.cdb") from err
    if value is None:
        return None
    fields = [user.encode(), *value.split(b":")]
    if len(fields) != 3:
        raise FormatError("corrupt .passwd.cdb")
    return _entry(fields, user)


# --- passwords ---------------------------------------------------------------------


# argon2id with RFC 9106's 64 MiB and three passes, in one lane: a single thread, so that
# checkvpw works under softlimit -m (glibc gives each thread a stack of RLIMIT_STACK,
# which softlimit -m sets too: four lanes' threads never fit its address-space limit).
TIME_COST = 3
MEMORY_COST = 65536  # KiB
PARALLELISM = 1


def _hasher():
    import argon2  # only the programs that hash or verify pay for it
    return argon2.PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST,
                                 parallelism=PARALLELISM)


def hash_password(password: bytes) -> str:
    """An argon2id hash of password; Trouble when argon2 cannot run."""
    import argon2
    try:
        return _hasher().hash(password)
    except argon2.exceptions.Argon2Error as err:
        raise Trouble(f"unable to hash the password: {err}") from err


def password_matches(stored: str, password: bytes) -> bool:
    """Whether password is stored's. Trouble when argon2 cannot run (its 64 MiB and
    threads refused under a memory limit, a corrupt hash): not a wrong password."""
    import argon2
    try:
        return _hasher().verify(stored, password)
    except (argon2.exceptions.VerifyMismatchError, argon2.exceptions.InvalidHashError):
        return False
    except argon2.exceptions.Argon2Error as err:
        raise Trouble(f"unable to check the password: {err}") from err


def decoy_hash() -> str:
    """An argon2id hash with the hasher's parameters but random salt and digest: checking
    a password against it costs what checking a real one costs, and never matches."""
    import base64
    h = _hasher()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode().rstrip("=")
    return (f"$argon2id$v=19$m={h.memory_cost},t={h.time_cost},p={h.parallelism}"
            f"${b64(secrets.token_bytes(h.salt_len))}${b64(secrets.token_bytes(h.hash_len))}")


def spend(password: bytes) -> bool:
    """The unknown user's path: as long as a wrong password takes; always False."""
    password_matches(decoy_hash(), password)
    return False


# --- Maildir++ quota ---------------------------------------------------------------


def usage(maildir: str) -> tuple[int, int]:
    """(bytes, messages) in maildir's new/ and cur/ (the size from a `,S=` in the name,
    as Maildir++ writers put it, else the file's)."""
    total = count = 0
    for sub in ("new", "cur"):
        with os.scandir(os.path.join(maildir, sub)) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                size = _size_in_name(entry.name)
                if size is None:
                    try:
                        size = entry.stat().st_size
                    except OSError:
                        continue
                total += size
                count += 1
    return total, count


def _size_in_name(name: str) -> int | None:
    for part in name.split(":", 1)[0].split(",")[1:]:
        if part.startswith("S=") and part[2:].isdigit():
            return int(part[2:])
    return None


def write_maildirsize(maildir: str, quota: int | None, owner: tuple[int, int] | None = None) -> None:
    """Maildir++'s maildirsize for quota (`NNNS`, then the current bytes and messages),
    written durably; with quota None the file is removed."""
    path = os.path.join(maildir, MAILDIRSIZE)
    if quota is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        durable.fsync_dir(path)  # the quota's removal is on disk
        return
    total, count = usage(maildir)
    text = b"%dS\n%12d %12d\n" % (quota, total, count)
    tmp = os.path.join(maildir, "tmp", f"{MAILDIRSIZE}.{os.getpid()}")

    def write(f):
        if owner is not None:
            os.fchown(f.fileno(), *owner)
        f.write(text)
    durable.replace(path, tmp, write, 0o600)
