"""checkpassword: check a system user's password, then run a program as that user.

Synopsis:
    checkpassword prog [args...]

The checkpassword interface (cr.yp.to/checkpwd/interface.html; qmail.auth.checkpw):
descriptor 3 gives `user\\0password\\0timestamp\\0` (at most 512 bytes). The user is
looked up in /etc/passwd and the password checked against its hash in /etc/shadow (or in
/etc/passwd's own field when that is not "x" and shadow has no entry) with crypt(3), the
system's libxcrypt (yescrypt, sha512-crypt, bcrypt...). An empty, locked (`!`, `*`) or
otherwise unusable hash never matches. A right login becomes the user (groups: the
primary gid alone, then gid, then uid), enters the home directory, sets USER, HOME and
SHELL, and runs prog (warm when it is one of ours).

uid 0: as djb's checkpassword, an account with uid 0 and a password logs in as root and
prog runs as root. qmail-pop3d itself refuses to run as root; lock root's password (or
put this behind a check) where root logins must not reach other programs.

Timing: an unknown user, or one whose hash is locked or unusable, costs one crypt(3) of
the same method and cost as the users' own hashes (the most common setting in
/etc/shadow, else yescrypt), so the time taken does not tell which user names exist.

Exit codes: 0 never (prog replaces this program); 1 unknown user, wrong password,
unusable hash, or the ids cannot be taken; 2 misuse (no prog, no descriptor 3, more than
512 bytes, malformed); 111 temporary (/etc/passwd or /etc/shadow cannot be read, a
user whose /etc/passwd entry says "x" has no /etc/shadow entry, the home directory cannot
be entered, prog cannot be run).

Files: /etc/passwd, /etc/shadow (CHECKPASSWORD_PASSWD and CHECKPASSWORD_SHADOW name
others, for tests).
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import crypt_r  # noqa: F401  (20 ms of imports: paid once in a server that preloads this)

from qmail.auth import checkpw

PASSWD = "/etc/passwd"
SHADOW = "/etc/shadow"


def read_table(path: str) -> list[list[str]]:
    """The colon-separated entries of path (comments and blank lines skipped); OSError
    when it cannot be read."""
    with open(path, "rb") as f:
        data = f.read()
    rows = []
    for raw in data.split(b"\n"):
        if not raw or raw.startswith(b"#"):
            continue
        rows.append(raw.decode("utf-8", "surrogateescape").split(":"))
    return rows


def find(rows: list[list[str]], name: str) -> list[str] | None:
    for row in rows:
        if row[0] == name and not name.startswith(("+", "-")):
            return row
    return None


def typical_hash(rows: list[list[str]]) -> str | None:
    """A hash with the method and cost most users' hashes have (None when none is
    usable): what an unknown user's check is made to cost."""
    settings = Counter()
    example = {}
    for row in rows:
        stored = row[1] if len(row) > 1 else ""
        if stored and stored[0] not in "!*":
            prefix = checkpw._setting_prefix(stored)
            if prefix is not None:
                settings[prefix] += 1
                example.setdefault(prefix, stored)
    common = settings.most_common(1)
    return example[common[0][0]] if common else None


def verify(request: checkpw.Request) -> checkpw.Account:
    """The account request names when its password is right; raises checkpw.Refused."""
    name = request.user.decode("utf-8", "surrogateescape")
    try:
        passwd = read_table(os.environ.get("CHECKPASSWORD_PASSWD", PASSWD))
        shadow_path = os.environ.get("CHECKPASSWORD_SHADOW", SHADOW)
        try:
            shadow = read_table(shadow_path)
        except FileNotFoundError:
            shadow = []
    except OSError:
        raise checkpw.Refused(checkpw.TEMPORARY) from None
    entry = find(passwd, name) if name else None
    stored = None
    if entry is not None and len(entry) >= 7:
        spw = find(shadow, name)
        if spw is not None and len(spw) >= 2:
            stored = spw[1]
        elif entry[1] == "x":
            # as djb's checkpassword: getspnam failing is trouble, not a wrong password
            raise checkpw.Refused(checkpw.TEMPORARY)
        else:
            stored = entry[1]
    else:
        entry = None
    if not stored or stored[0] in "!*":  # no hash, or a locked one: never matches
        checkpw.spend_like(request.password, typical_hash(shadow) or typical_hash(passwd))
        raise checkpw.Refused(checkpw.BAD_LOGIN)
    if not checkpw.crypt_matches(request.password, stored):
        raise checkpw.Refused(checkpw.BAD_LOGIN)
    try:
        uid, gid = int(entry[2]), int(entry[3])
    except ValueError:
        raise checkpw.Refused(checkpw.BAD_LOGIN) from None
    return checkpw.Account(entry[0], uid, gid, entry[5], entry[6])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    return checkpw.serve(argv, verify)
