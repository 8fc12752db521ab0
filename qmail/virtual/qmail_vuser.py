"""qmail-vuser: manage virtual domains and their users in qmail's own terms (docs/virtual.md).

Synopsis:
    qmail-vuser adddomain DOMAIN
    qmail-vuser deldomain [ -r ] DOMAIN
    qmail-vuser add USER@DOMAIN [ PASSWORD ]
    qmail-vuser del [ -r ] USER@DOMAIN
    qmail-vuser passwd USER@DOMAIN [ PASSWORD ]
    qmail-vuser quota USER@DOMAIN BYTES|none
    qmail-vuser list [ DOMAIN ]

adddomain adds `+DOMAIN-:OWNER:UID:GID:ROOT/vdomains/DOMAIN:-::` to users/assign and
runs qmail-newu, creates ROOT/vdomains/DOMAIN (qmail/virtual/vdomains.py), then adds `DOMAIN:DOMAIN` to control/virtualdomains and DOMAIN to control/rcpthosts (when
that file exists). qmail-send reads virtualdomains at start and on SIGHUP: the command
says so on stderr (`svc -h` qmail-send's service). deldomain undoes this in the reverse
order; a domain with users is refused unless -r, which also deletes their mail.

add creates USER/Maildir/ and `.qmail-USER` (`./USER/Maildir/`) in the domain directory,
then the login (argon2id hash in .passwd and .passwd.cdb); the password is PASSWORD or,
without it, the first line of standard input (safer: argv is visible to ps). del removes
the login, then `.qmail-USER` (mail to USER now bounces), then the user's directory; a
Maildir holding mail is refused unless -r. passwd sets a new password. quota writes
Maildir++'s maildirsize (`BYTESS`) for readers to report; none removes it (qmail-local
does not enforce it). list prints the domains, or DOMAIN's users as `user@domain QUOTA`
(`-` for none).

Every change holds a lock (ROOT/vdomains/.lock for the domain list, DOMAIN/.lock for its
users) and replaces each file durably (temporary file, fsync, rename); bad input is found
before anything changes.

Owner: the files belong to the virtual-mail owner, the user qmail-local delivers as. Run
by an ordinary user (embedded mode): that user. Run by root: user vmail (created by
qmail-install) for a root-mode tree (queue/mess belonging to qmailq), else the owner of
the embedded tree's queue.

Exit codes: 0 done; 100 bad usage or input (bad name, existing or unknown domain or
user, mail left without -r); 111 temporary trouble (a file, the lock, qmail-newu).

Environment: $QMAIL_ROOT (default /var/qmail).
"""

import os
import pwd
import shutil
import sys

from qmail.config import install_root
from qmail.delivery import maildir
from qmail.virtual import vdomains
from ucspi.runtime import durable, exitcodes, launch, sgetopt

PROG = "qmail-vuser"
USAGE = ("qmail-vuser adddomain|deldomain [-r] DOMAIN | add|passwd USER@DOMAIN [PASSWORD]"
         " | del [-r] USER@DOMAIN | quota USER@DOMAIN BYTES|none | list [DOMAIN]")
VMAIL_USER = "vmail"
PASSWORD_LIMIT = 1024


class Refused(Exception):
    """Bad input: `qmail-vuser: fatal: ...`, exit 100."""


class Owner:
    def __init__(self, name: str, uid: int, gid: int):
        self.name, self.uid, self.gid = name, uid, gid

    def ids(self) -> tuple[int, int] | None:
        """(uid, gid) to give new files, when root writes them for the owner."""
        return (self.uid, self.gid) if os.geteuid() == 0 else None

    def own(self, path: str) -> None:
        if os.geteuid() == 0:
            os.lchown(path, self.uid, self.gid)


def find_owner(root: str) -> Owner:
    """The virtual-mail owner (the module docstring's rule); Refused when it cannot be."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return Owner(entry.pw_name, entry.pw_uid, entry.pw_gid)
    st = os.stat(os.path.join(root, "queue", "mess"))
    try:
        entry = pwd.getpwuid(st.st_uid)
    except KeyError:
        return Owner(str(st.st_uid), st.st_uid, st.st_gid)
    if entry.pw_name == "qmailq":
        try:
            entry = pwd.getpwnam(VMAIL_USER)
        except KeyError:
            raise Refused(f"no user {VMAIL_USER}: run qmail-install") from None
    if entry.pw_uid == 0:
        raise Refused("the virtual-mail owner would be root: qmail never delivers as root")
    return Owner(entry.pw_name, entry.pw_uid, entry.pw_gid)


# --- control files -----------------------------------------------------------------


def edit_lines(path: str, change) -> None:
    """Replace the text file path by change(its lines) durably, keeping its owner and
    mode (a new one: the directory's owner, mode 0644). No file and change gives []:
    nothing is written."""
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
        st = os.stat(path)
    except FileNotFoundError:
        lines, st = None, os.stat(os.path.dirname(path))
    new = change(list(lines or []))
    if new == (lines or []) and (lines is not None or not new):
        return
    text = b"".join(line + b"\n" for line in new)

    def write(f):
        if os.geteuid() == 0:
            os.fchown(f.fileno(), st.st_uid, st.st_gid)
        f.write(text)
    mode = st.st_mode & 0o7777 if lines is not None else 0o644
    durable.replace(path, path + ".tmp", write, mode)


def assign_line(root: str, domain: str, owner: Owner) -> bytes:
    home = vdomains.domain_dir(root, domain)
    return f"+{domain}-:{owner.name}:{owner.uid}:{owner.gid}:{home}:-::".encode()


def _key(line: bytes) -> bytes:
    return line.split(b":", 1)[0].lower()


def set_assign(root: str, domain: str, line: bytes | None) -> None:
    """Put line (None: nothing) in users/assign in place of DOMAIN's, then qmail-newu."""
    key = f"+{domain}-".encode()

    def change(lines):
        kept = [x for x in lines if _key(x) != key]
        end = next((i for i, x in enumerate(kept) if x.startswith(b".")), None)
        if end is None:
            kept.append(b".")
            end = len(kept) - 1
        return kept[:end] + ([line] if line else []) + kept[end:]
    edit_lines(os.path.join(root, "users", "assign"), change)
    run_newu(root)


def run_newu(root: str) -> None:
    env = dict(os.environ)
    env[install_root.VARIABLE] = root
    pid = launch.spawn([install_root.program("qmail-newu", root)], env)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        exitcodes.fatal(PROG, "qmail-newu failed: users/assign is changed, users/cdb is not")


def virtualdomains(root: str) -> list[bytes]:
    try:
        with open(os.path.join(root, "control", "virtualdomains"), "rb") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def set_control(root: str, name: str, domain: str, line: bytes | None) -> None:
    """control/NAME without DOMAIN's line, plus line (None: none)."""
    path = os.path.join(root, "control", name)
    if line is None and not os.path.exists(path):
        return
    mine = domain.encode()
    edit_lines(path, lambda lines: [x for x in lines if _key(x) != mine]
               + ([line] if line else []))


def signal_note() -> None:
    exitcodes.say(f"{PROG}: control/virtualdomains changed: qmail-send rereads it on SIGHUP "
                  "(svc -h its service directory)")


# --- domains -----------------------------------------------------------------------


def add_domain(root: str, domain: str) -> None:
    owner = find_owner(root)
    base = vdomains.directory(root)
    if not os.path.isdir(base):
        os.mkdir(base, 0o711)
        owner.own(base)
        durable.fsync_dir(base)  # ROOT/vdomains exists
    with Held(os.path.join(base, vdomains.LOCK), owner):
        ddir = vdomains.domain_dir(root, domain)
        if os.path.lexists(ddir):
            raise Refused(f"domain {domain} exists")
        for line in virtualdomains(root):
            if _key(line) == domain.encode() and line.partition(b":")[2] != domain.encode():
                raise Refused(f"{domain} is in control/virtualdomains already")
        locals_ = os.path.join(root, "control", "locals")
        if os.path.exists(locals_):
            with open(locals_, "rb") as f:
                if domain.encode() in f.read().lower().splitlines():
                    raise Refused(f"{domain} is in control/locals")
        # users/assign first: a caller who may not change it changes nothing, and a line
        # no virtualdomains entry leads to is harmless (a later run replaces it)
        set_assign(root, domain, assign_line(root, domain, owner))
        fresh = os.path.join(base, f".new-{domain}")
        shutil.rmtree(fresh, ignore_errors=True)
        os.mkdir(fresh, 0o700)
        owner.own(fresh)
        vdomains.store(fresh, [], owner.ids())
        os.rename(fresh, ddir)
        durable.fsync_dir(ddir)  # the domain directory has its name
        set_control(root, "virtualdomains", domain, f"{domain}:{domain}".encode())
        set_control(root, "rcpthosts", domain, domain.encode()
                    if os.path.exists(os.path.join(root, "control", "rcpthosts")) else None)
    signal_note()


def del_domain(root: str, domain: str, remove_mail: bool) -> None:
    owner = find_owner(root)
    base = vdomains.directory(root)
    ddir = vdomains.domain_dir(root, domain)
    if not os.path.isdir(ddir):
        raise Refused(f"no domain {domain}")
    with Held(os.path.join(base, vdomains.LOCK), owner), \
            Held(os.path.join(ddir, vdomains.LOCK), owner):
        if vdomains.read(ddir) and not remove_mail:
            raise Refused(f"domain {domain} has users: use -r to delete them and their mail")
        set_control(root, "rcpthosts", domain, None)
        set_control(root, "virtualdomains", domain, None)
        set_assign(root, domain, None)
        gone = os.path.join(base, f".old-{domain}")
        shutil.rmtree(gone, ignore_errors=True)
        os.rename(ddir, gone)
        durable.fsync_dir(ddir)  # the domain is gone under its name
        shutil.rmtree(gone)
    signal_note()


# --- users -------------------------------------------------------------------------


def read_password(given: str | None) -> bytes:
    if given is not None:
        password = os.fsencode(given)
    else:
        password = sys.stdin.buffer.readline(PASSWORD_LIMIT + 2).rstrip(b"\r\n")
    if not password or len(password) > PASSWORD_LIMIT or b"\0" in password:
        raise Refused("bad password (empty, longer than 1024 bytes, or holding NUL)")
    return password


class Domain:
    """A domain's directory, locked while the object is used as a context."""

    def __init__(self, root: str, domain: str):
        self.root, self.domain = root, domain
        self.dir = vdomains.domain_dir(root, domain)
        self.owner = find_owner(root)
        self.held = None

    def __enter__(self):
        if not os.path.isdir(self.dir):
            raise Refused(f"no domain {self.domain}")
        self.held = Held(os.path.join(self.dir, vdomains.LOCK), self.owner).__enter__()
        self.entries = {e.user: e for e in vdomains.read(self.dir)}
        return self

    def __exit__(self, *exc):
        self.held.__exit__(*exc)

    def entry(self, user: str) -> vdomains.Entry:
        found = self.entries.get(user)
        if found is None:
            raise Refused(f"no user {user}@{self.domain}")
        return found

    def store(self) -> None:
        vdomains.store(self.dir, list(self.entries.values()), self.owner.ids())


def add_user(root: str, user: str, domain: str, password: bytes) -> None:
    with Domain(root, domain) as d:
        if user in d.entries:
            raise Refused(f"user {user}@{domain} exists")
        home = vdomains.user_dir(root, domain, user)
        if os.path.lexists(home):
            raise Refused(f"{home} exists (mail of a deleted user?): remove it first")
        hashed = vdomains.hash_password(password)
        try:
            os.mkdir(home, 0o700)
            d.owner.own(home)
            box = os.path.join(home, vdomains.MAILDIR)
            maildir.make(box)
            for path in (box, *(os.path.join(box, s) for s in ("tmp", "new", "cur"))):
                d.owner.own(path)
            durable.fsync_dir(home)  # the user's directory exists before mail can go to it
        except OSError:
            shutil.rmtree(home, ignore_errors=True)
            raise
        dot = os.path.join(d.dir, vdomains.dot_qmail_name(user))
        data = vdomains.dot_qmail_text(user)
        ids = d.owner.ids()

        def write(f):
            if ids:
                os.fchown(f.fileno(), *ids)
            f.write(data)
        durable.replace(dot, dot + ".tmp", write, 0o600)
        d.entries[user] = vdomains.Entry(user, hashed)
        d.store()


def del_user(root: str, user: str, domain: str, remove_mail: bool) -> None:
    with Domain(root, domain) as d:
        d.entry(user)
        home = vdomains.user_dir(root, domain, user)
        box = os.path.join(home, vdomains.MAILDIR)
        if not remove_mail and os.path.isdir(box) and vdomains.usage(box)[1]:
            raise Refused(f"{user}@{domain} has mail: use -r to delete it with the mail")
        del d.entries[user]
        d.store()
        dot = os.path.join(d.dir, vdomains.dot_qmail_name(user))
        try:
            os.unlink(dot)
        except FileNotFoundError:
            pass
        durable.fsync_dir(dot)  # mail to the user bounces from now on
        shutil.rmtree(home, ignore_errors=True)


def set_password(root: str, user: str, domain: str, password: bytes) -> None:
    with Domain(root, domain) as d:
        old = d.entry(user)
        d.entries[user] = vdomains.Entry(user, vdomains.hash_password(password), old.quota)
        d.store()


def set_quota(root: str, user: str, domain: str, quota: int | None) -> None:
    with Domain(root, domain) as d:
        old = d.entry(user)
        box = os.path.join(vdomains.user_dir(root, domain, user), vdomains.MAILDIR)
        vdomains.write_maildirsize(box, quota, d.owner.ids())
        d.entries[user] = vdomains.Entry(user, old.hash, quota)
        d.store()


def list_domains(root: str) -> list[str]:
    try:
        names = os.listdir(vdomains.directory(root))
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.startswith(".")
                  and os.path.isdir(vdomains.domain_dir(root, n)))


def list_users(root: str, domain: str) -> list[str]:
    ddir = vdomains.domain_dir(root, domain)
    if not os.path.isdir(ddir):
        raise Refused(f"no domain {domain}")
    return [f"{e.user}@{domain} {'-' if e.quota is None else e.quota}"
            for e in sorted(vdomains.read(ddir), key=lambda e: e.user)]


class Held:
    """A lock file held (vdomains.lock) for a with block; created for owner."""

    def __init__(self, path: str, owner: Owner):
        self.path, self.owner = path, owner

    def __enter__(self):
        self.fd = vdomains.lock(self.path)
        self.owner.own(self.path)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


# --- main --------------------------------------------------------------------------


def parse_quota(text: str) -> int | None:
    if text == "none":
        return None
    if not text.isdigit() or not text.isascii() or int(text) == 0:
        raise Refused(f"bad quota: {text} (bytes, or none)")
    return int(text)


def run(root: str, command: str, args: list[str]) -> None:
    """Carry out one subcommand; Refused, BadName, FormatError or OSError."""
    opts, rest = sgetopt.options([command, *args], "r", PROG, USAGE)
    remove = any(opt == "r" for opt, _ in opts)
    if opts and command not in ("del", "deldomain"):
        exitcodes.usage(PROG, USAGE)
    shape = {"adddomain": (1, 1), "deldomain": (1, 1), "add": (1, 2), "del": (1, 1),
             "passwd": (1, 2), "quota": (2, 2), "list": (0, 1)}.get(command)
    if shape is None or not shape[0] <= len(rest) <= shape[1]:
        exitcodes.usage(PROG, USAGE)
    if command == "list":
        lines = list_users(root, vdomains.check_domain(rest[0])) if rest else list_domains(root)
        sys.stdout.write("".join(line + "\n" for line in lines))
    elif command == "adddomain":
        add_domain(root, vdomains.check_domain(rest[0]))
    elif command == "deldomain":
        del_domain(root, vdomains.check_domain(rest[0]), remove)
    else:
        user, domain = vdomains.split_address(rest[0])
        if command == "add":
            add_user(root, user, domain, read_password(rest[1] if len(rest) > 1 else None))
        elif command == "del":
            del_user(root, user, domain, remove)
        elif command == "passwd":
            set_password(root, user, domain, read_password(rest[1] if len(rest) > 1 else None))
        else:
            set_quota(root, user, domain, parse_quota(rest[1]))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) < 2:
        exitcodes.usage(PROG, USAGE)
    os.umask(0o022)  # private files get explicit modes (0600, 0700)
    root = os.path.abspath(install_root.root())
    try:
        run(root, argv[1], argv[2:])
    except (Refused, vdomains.BadName) as err:
        exitcodes.fatal(PROG, str(err), exitcodes.PERMANENT)
    except vdomains.FormatError as err:
        exitcodes.fatal(PROG, f"bad .passwd: {err}")
    except vdomains.Trouble as err:
        exitcodes.fatal(PROG, str(err))
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to update {err.filename or root}", err)
    return 0
