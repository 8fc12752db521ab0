"""checkvpw: checkpassword for virtual users (docs/virtual.md).

Synopsis:
    checkvpw prog...

The checkpassword interface (qmail/auth/checkpw.py): reads `login\\0password\\0...` from
descriptor 3. login is `user@domain` or `user%domain` (the last @, else the last %),
folded to lowercase; the password is checked against the argon2id hash in
ROOT/vdomains/DOMAIN/.passwd.cdb (qmail/virtual/vdomains.py). An unknown user or domain,
or a login that is no address, costs what a wrong password costs (a decoy hash with the
same parameters is checked).

On success it becomes the virtual-mail owner (the owner of ROOT/vdomains/DOMAIN, never
root; only [gid] as groups), changes to ROOT/vdomains/DOMAIN/USER, sets USER=user@domain,
HOME=that directory, SHELL=/bin/false, and runs prog... (qmail-pop3d Maildir, Dovecot's
checkpassword-reply, nothing for qmail-smtpd's AUTH but its own check). A process that is
not root but already is the owner (embedded mode) runs on as itself.

Dovecot (`passdb { driver = checkpassword; args = checkvpw }`, `userdb { driver =
prefetch }`) sets ORIG_UID and refuses a checkpassword that changes ids. With ORIG_UID in
the environment checkvpw keeps its ids and passes the owner's as userdb_uid and
userdb_gid (added to EXTRA), which checkpassword-reply reports with USER and HOME. Set
ORIG_UID nowhere else: the next program would keep the caller's ids. Lookups without a
password (Dovecot's AUTHORIZED=1, userdb checkpassword) are not supported: they fail as a
wrong password.

Exit codes: 0 never (prog's own); 1 wrong login or password; 2 misuse (no descriptor 3,
a malformed request, no prog); 111 temporary trouble (the database cannot be read,
argon2 cannot run: it needs 64 MiB beside the interpreter, so give softlimit -m at least
150000000; the home directory cannot be entered; prog cannot be run).

Environment: $QMAIL_ROOT (default /var/qmail).
"""

import os
import sys

import argon2  # noqa: F401  (50 ms of imports: paid once in a server that preloads this)

from qmail.auth import checkpw
from qmail.config import install_root
from qmail.virtual import vdomains

SHELL = "/bin/false"
DOVECOT = "ORIG_UID"  # set by Dovecot's checkpassword passdb: the auth process's uid


def verify(request: checkpw.Request) -> checkpw.Account:
    """The Account for a right login; checkpw.Refused otherwise."""
    password = request.password
    try:
        user, domain = vdomains.split_address(request.user.decode("ascii"))
    except (UnicodeError, vdomains.BadName):
        try:
            vdomains.spend(password)
        except vdomains.Trouble:
            raise checkpw.Refused(checkpw.TEMPORARY) from None
        raise checkpw.Refused(checkpw.BAD_LOGIN) from None
    root = os.path.abspath(install_root.root())
    try:
        entry = vdomains.lookup(root, domain, user)
        if entry is None:
            vdomains.spend(password)
            raise checkpw.Refused(checkpw.BAD_LOGIN)
        if not vdomains.password_matches(entry.hash, password):
            raise checkpw.Refused(checkpw.BAD_LOGIN)
    except (OSError, vdomains.FormatError, vdomains.Trouble):
        raise checkpw.Refused(checkpw.TEMPORARY) from None
    try:
        st = os.stat(vdomains.domain_dir(root, domain))
    except OSError:
        raise checkpw.Refused(checkpw.TEMPORARY) from None
    if st.st_uid == 0:
        raise checkpw.Refused(checkpw.BAD_LOGIN)  # qmail never hands mail to root
    name, home = f"{user}@{domain}", vdomains.user_dir(root, domain, user)
    if DOVECOT in os.environ:
        return for_dovecot(name, home, st.st_uid, st.st_gid)
    return checkpw.Account(name, st.st_uid, st.st_gid, home, SHELL)


def for_dovecot(name: str, home: str, uid: int, gid: int) -> checkpw.Account:
    """Dovecot's convention: the owner's ids go back as userdb_uid and userdb_gid (listed
    in EXTRA, for checkpassword-reply), and this process keeps its own, which
    checkpassword-reply checks against ORIG_UID."""
    os.environ["userdb_uid"] = str(uid)
    os.environ["userdb_gid"] = str(gid)
    extra = os.environ.get("EXTRA", "").split()
    os.environ["EXTRA"] = " ".join([*extra, *(v for v in ("userdb_uid", "userdb_gid")
                                              if v not in extra)])
    return checkpw.Account(name, os.getuid(), os.getgid(), home, SHELL, os.getgroups())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    return checkpw.serve(argv, verify)
