"""The checkpassword interface (cr.yp.to/checkpwd/interface.html), both sides, in one place.

    checkpassword prog...

reads `user\\0password\\0timestamp\\0` (possibly more data; at most 512 bytes in all) from
descriptor 3, and either exits or, the login being right, becomes the user and runs
`prog...`. Exit codes: 1 the login was wrong (or the change of ids refused), 2 misuse
(no descriptor 3, more than 512 bytes, a record without its two NUL-terminated fields, no
prog), 111 a temporary problem (the password database cannot be read...).

The stable API (qmail-popup, qmail-smtpd's AUTH, checkpassword, checkvpw build on it):

Client side (the program that asks):
  Credentials(user, secret, stamp=b"")   .record(): the bytes written to descriptor 3
      (`user\\0secret\\0\\0`, or `user\\0stamp\\0secret\\0` when stamp is given: the
      cmd5checkpw-style order qmail-smtpd's CRAM-MD5 uses). qmail-popup writes its own
      `user\\0password\\0<timestamp>\\0` record (pop_record).
  pop_record(user, password, timestamp) -> bytes   the record qmail-popup sends.
  run(program, record, env, fds) -> int | None
      spawn program (argv list) with `record` readable on its descriptor 3 and fds
      (target fd -> open descriptor) as its other descriptors; wait; its exit code, or
      None when it could not be started or died by a signal.
  check(program, creds, env) -> str   qmail-smtpd's AUTH: run with 0 and 1 on
      /dev/null; the SMTP reply (smtp_auth.OK, FAILED, TEMPORARY or CHILD).

Server side (the checkpassword program):
  BAD_LOGIN = 1, MISUSE = 2, TEMPORARY = 111; Refused(code) the exception carrying one.
  Request(user, password, timestamp)   bytes each; read_request(fd=3) reads and parses
      it (raises Refused(MISUSE) for no descriptor, > 512 bytes, malformed;
      Refused(TEMPORARY) for a read error) and closes the descriptor.
  Account(name, uid, gid, home, shell, groups=None)   who a right login becomes (str
      name/home/shell; groups None means [gid], as djb's prot_gid).
  login(account, argv) -> NoReturn   become uid/gid/groups (privileges.become), chdir
      home, set USER, HOME, SHELL, exec argv (launch.exec_program). Raises
      Refused(BAD_LOGIN) when the ids cannot be taken, Refused(TEMPORARY) when home
      cannot be entered or argv cannot be run.
  serve(argv, verify) -> int   a whole checkpassword main: argv[1:] is the program to
      run (none: MISUSE); reads the request; verify(request) returns the Account or
      raises Refused; then login. Returns the exit code (never returns on success).
  crypt_matches(password, stored) -> bool   crypt(3) check (libxcrypt through crypt_r:
      yescrypt, sha512-crypt, bcrypt, md5-crypt, DES...); an empty, locked (`!`, `*`,
      anything crypt refuses) hash never matches; compared in constant time.
  decoy_hash(like) -> str   a hash of the same method and cost as `like` (a crypt hash
      or setting) of a random password: checking a password against it costs what a
      wrong password costs, and never matches. None or unusable `like`: the system
      default method (libxcrypt's preferred, yescrypt on current systems).
  spend_like(password, like=None) -> False   one crypt(3) of password with like's
      setting (like: a hash of the cost to imitate, e.g. another account's; None: the
      default method): the unknown user's (or locked account's) path, costing what a
      wrong password costs. Nothing is precomputed: one hash, as the wrong password's.

Identity changes (login): as djb's checkpassword, the groups become exactly [gid] unless
the verifier names others; then gid, then uid. uid 0 is allowed, as in the original: an
account with uid 0 in the password database logs in as root and the next program runs as
root (this is qmail's behaviour; give such accounts no password or a locked one if that
is not wanted). When this process is not root and already has the account's uid and gid
(a checkpassword run by its own user, as in tests and per-user setups), no change is
attempted and the login proceeds; the original would fail setgroups and exit 1.
"""

from __future__ import annotations

import hmac
import os
import secrets

from ucspi.runtime import children, launch

BAD_LOGIN = 1
MISUSE = 2
TEMPORARY = 111
LIMIT = 512  # bytes of the request, at most


class Refused(Exception):
    """Stop with this exit code (BAD_LOGIN, MISUSE or TEMPORARY)."""

    def __init__(self, code: int, why: str = ""):
        super().__init__(code, why)
        self.code = code
        self.why = why


# --- client side -------------------------------------------------------------------


class Credentials:
    def __init__(self, user: bytes, secret: bytes, stamp: bytes = b""):
        self.user = user
        self.secret = secret
        self.stamp = stamp

    def record(self) -> bytes:
        """What the check program reads on descriptor 3."""
        return self.user + b"\0" + self.stamp + b"\0" + self.secret + b"\0" if self.stamp \
            else self.user + b"\0" + self.secret + b"\0\0"


def pop_record(user: bytes, password: bytes, timestamp: bytes) -> bytes:
    """qmail-popup's record: user, password (or the APOP digest), the greeting's
    <timestamp>, each followed by NUL."""
    return user + b"\0" + password + b"\0" + timestamp + b"\0"


def run(program: list[str], record: bytes, env, fds: dict[int, int]) -> int | None:
    """Spawn program with record on descriptor 3 (a pipe) and fds as its descriptors;
    its exit code, or None when it could not be started or was killed by a signal."""
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None
    try:
        pid = launch.spawn(program, env, fds={**fds, 3: read_end}, keep_fds=(3,))
    except OSError:
        pid = -1
    finally:
        os.close(read_end)
    try:
        if pid > 0:
            os.write(write_end, record)  # at most 512 bytes: far below a pipe's capacity
    except OSError:
        pass
    finally:
        os.close(write_end)
    if pid < 0:
        return None
    status = children.wait_status(pid)
    if status is None or os.WIFSIGNALED(status):
        return None
    return os.WEXITSTATUS(status)


def check(program: list[str], creds: Credentials, env) -> str:
    """Run the check program for SMTP AUTH; the reply to send (OK, FAILED, TEMPORARY or
    CHILD of qmail.mailin.smtp_auth)."""
    from qmail.mailin import smtp_auth  # its replies; it imports this module at the top
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return smtp_auth.CHILD
    try:
        code = run(program, creds.record(), env, {0: devnull, 1: devnull})
    finally:
        os.close(devnull)
    if code is None:
        return smtp_auth.CHILD
    if code == 0:
        return smtp_auth.OK
    return smtp_auth.TEMPORARY if code == TEMPORARY else smtp_auth.FAILED


# --- server side -------------------------------------------------------------------


class Request:
    def __init__(self, user: bytes, password: bytes, timestamp: bytes):
        self.user = user
        self.password = password
        self.timestamp = timestamp

    def __repr__(self) -> str:
        return f"Request({self.user!r}, <password>, {self.timestamp!r})"


def parse(data: bytes) -> Request:
    """The request's fields; Refused(MISUSE) when longer than LIMIT or when user and
    password are not both NUL-terminated. The timestamp is what follows, up to its NUL
    (or the end)."""
    if len(data) > LIMIT:
        raise Refused(MISUSE, "request longer than 512 bytes")
    fields = data.split(b"\0", 2)
    if len(fields) < 3:
        raise Refused(MISUSE, "malformed request")
    user, password, rest = fields
    return Request(user, password, rest.split(b"\0", 1)[0])


def read_request(fd: int = 3) -> Request:
    """Read (up to LIMIT + 1 bytes, until end of file) and parse the request on fd, then
    close fd."""
    data = b""
    try:
        while len(data) <= LIMIT:
            try:
                chunk = os.read(fd, LIMIT + 1 - len(data))
            except InterruptedError:
                continue
            if not chunk:
                break
            data += chunk
    except OSError as err:
        import errno
        if err.errno == errno.EBADF:
            raise Refused(MISUSE, "no descriptor 3") from None
        raise Refused(TEMPORARY, f"unable to read descriptor 3: {err.strerror}") from None
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    return parse(data)


class Account:
    def __init__(self, name: str, uid: int, gid: int, home: str, shell: str,
                 groups: list[int] | None = None):
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
        self.shell = shell
        self.groups = groups

    def __repr__(self) -> str:
        return f"Account({self.name!r}, {self.uid}, {self.gid}, {self.home!r}, {self.shell!r})"


def _take_ids(account: Account) -> None:
    from ucspi.runtime import privileges
    groups = [account.gid] if account.groups is None else list(account.groups)
    if os.geteuid() != 0 and os.getresuid() == (account.uid,) * 3 \
            and os.getresgid() == (account.gid,) * 3:
        return  # already this user, and not allowed to change groups: nothing to do
    try:
        privileges.become(account.uid, account.gid, groups)
    except privileges.PrivilegeError as err:
        raise Refused(BAD_LOGIN, f"unable to set {err.step}: {err.strerror}") from None


def _prepare(argv: list[str]) -> None:
    """Import argv's module now if it is one of ours and will run warm: once the ids
    have changed the new user may be unable to read the interpreter's library (exec
    would read it afresh)."""
    try:
        module = launch.resolve(argv[0])
        if module:
            import importlib
            importlib.import_module(module)
    except (OSError, ImportError):
        pass  # exec_program reports what cannot run


def login(account: Account, argv: list[str]):
    """Become the account and exec argv; raises Refused when that fails."""
    _prepare(argv)
    _take_ids(account)
    try:
        os.chdir(account.home)
    except OSError as err:
        raise Refused(TEMPORARY, f"unable to chdir to {account.home}: {err.strerror}") from None
    changes = {"USER": account.name, "HOME": account.home, "SHELL": account.shell}
    try:
        launch.exec_program(list(argv), changes=changes)
    except OSError as err:
        raise Refused(TEMPORARY, f"unable to run {argv[0]}: {err.strerror}") from None


def serve(argv: list[str], verify) -> int:
    """A checkpassword's main: argv is (own name, next program...)."""
    if len(argv) < 2:
        return MISUSE
    try:
        request = read_request(3)
        account = verify(request)
        login(account, argv[1:])
    except Refused as refused:
        return refused.code
    return TEMPORARY  # login returns only by raising


# --- passwords ---------------------------------------------------------------------


def _crypt(password: bytes, setting: str) -> str | None:
    import crypt_r
    try:
        # crypt(3) takes C strings: a password holding NUL cannot be passed whole
        text = password.decode("utf-8", "surrogateescape")
        return crypt_r.crypt(text, setting)
    except (OSError, ValueError, UnicodeError):
        return None


def usable(stored: str | None) -> bool:
    """Whether stored is a hash some password can match: not empty, not locked (!, *),
    one crypt(3) takes and reproduces the shape of."""
    if not stored or stored[0] in "!*":
        return False
    result = _crypt(b"", stored)
    return bool(result) and result[0] != "*" and len(result) == len(stored)


def crypt_matches(password: bytes, stored: str | None) -> bool:
    """password checked against a crypt(3) hash; unusable hashes never match."""
    if not stored or stored[0] in "!*":
        return False
    result = _crypt(password, stored)
    if not result or result[0] == "*":
        return False
    return hmac.compare_digest(result.encode("utf-8", "surrogateescape"),
                               stored.encode("utf-8", "surrogateescape"))


_SALT = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_decoys: dict[str, str] = {}


def _setting_prefix(like: str) -> str | None:
    """The method-and-cost part of a crypt hash or setting (everything before the
    salt), or None when it has none we recognise."""
    if like.startswith("$"):
        parts = like.split("$")
        # $id$[param=...$]salt$hash; yescrypt/gost-yescrypt/scrypt: $y$params$salt$hash
        if parts[1] in ("y", "gy", "7"):
            return "$".join(parts[:3]) + "$" if len(parts) >= 4 else None
        if len(parts) >= 4 and parts[2].startswith("rounds="):
            return "$".join(parts[:3]) + "$"
        if parts[1] in ("2a", "2b", "2y") and len(parts) >= 4:
            return "$".join(parts[:3]) + "$"
        return "$" + parts[1] + "$" if len(parts) >= 3 else None
    return ""  # traditional DES: two salt characters, no prefix


def _default_setting() -> str:
    import crypt_r
    for candidate in ("$y$j9T$", None):
        setting = candidate + "".join(secrets.choice(_SALT) for _ in range(22)) \
            if candidate else crypt_r.mksalt()
        if usable(setting):
            return setting
    return crypt_r.mksalt(crypt_r.METHOD_SHA512)


def decoy_hash(like: str | None = None) -> str:
    """A hash of a random password with like's method and cost (cached per method)."""
    prefix = _setting_prefix(like) if like else None
    key = prefix if prefix is not None else "<default>"
    cached = _decoys.get(key)
    if cached:
        return cached
    if prefix is None:
        setting = _default_setting()
    elif prefix.startswith("$2"):
        setting = prefix + "".join(secrets.choice(_SALT) for _ in range(22))
    elif prefix == "":
        setting = "".join(secrets.choice(_SALT) for _ in range(2))
    else:
        setting = prefix + "".join(secrets.choice(_SALT) for _ in range(16))
    decoy = _crypt(secrets.token_hex(32).encode(), setting)
    if not decoy or decoy[0] == "*":
        decoy = _crypt(secrets.token_hex(32).encode(), _default_setting()) or "*"
    _decoys[key] = decoy
    return decoy


_DEFAULT_LIKE = "$y$j9T$CheckpwDecoySalt.AB$"  # yescrypt at libxcrypt's default cost


def spend_like(password: bytes, like: str | None = None) -> bool:
    """Hash password with like's setting (a hash of the same method and cost, such as
    another account's) exactly as checking a wrong password against it would, and
    return False whatever the result: one crypt(3) of like's cost, nothing precomputed.
    like None or unusable: yescrypt at the default cost (sha512-crypt where libxcrypt
    lacks yescrypt)."""
    if not like or like[0] in "!*":
        like = _DEFAULT_LIKE
    result = _crypt(password, like)
    if (not result or result[0] == "*") and like == _DEFAULT_LIKE:
        _crypt(password, "$6$CheckpwDecoySalt$")
    return False
