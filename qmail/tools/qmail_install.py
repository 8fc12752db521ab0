"""qmail-install: create or complete a qmail installation tree (what qmail's
`make setup check` and `config-fast NAME` do; docs/architecture.md, "Root mode and embedded mode").

Synopsis:
    qmail-install [ --embedded ] [ --fqdn NAME ] [ --services DIR ] [ --root ROOT | ROOT ]

Creates, under ROOT (default $QMAIL_ROOT or /var/qmail), whatever is missing of:
    bin/        a launcher for every qmail program, pinned to ROOT (rewritten each run)
    control/    me, defaultdomain, plusdomain, locals, rcpthosts as config-fast NAME
                writes them (an existing file is left alone), defaultdelivery ./Maildir/
    queue/      every directory and lock file of qmail 1.03's queue (qmail/queue/queue_layout.py)
    alias/      .qmail-postmaster, .qmail-mailer-daemon, .qmail-root
    users/      (embedded) assign and cdb mapping the mailbox demo to the current user
                with home ROOT/mailboxes/demo and its Maildir; every other local address
                goes to alias, as qmail-getpw would send it
    run/        where the injection service qmail-queued (as qmailq) puts its socket
Root mode (the default when run as root without --embedded): qmail's groups qmail and
nofiles and users alias, qmaild, qmaill, qmailp, qmailq, qmailr, qmails (and vmail, group
vmail: qmail-vuser's virtual-mail owner) are created when missing, and owners and modes
are set as qmail's hier.c sets them. Embedded mode: everything belongs to the current
user; the alias .qmail files deliver to ROOT/alias/Maildir/.
Running it again changes nothing that exists but owners, modes and launchers. --embedded
as root warns loudly: such a tree delivers nothing (qmail-lspawn refuses uid 0).
--services DIR also installs the book's service directories (qmail-send, qmail-smtpd,
qmail-qmtpd, qmail-qmqpd, qmail-queued, each with log/) into DIR for svscan, with the
tcprules files tcp.smtp, tcp.qmtp, tcp.qmqp and their cdbs (qmail/tools/install_services.py;
embedded mode reads $SMTP_PORT, $QMTP_PORT, $QMQP_PORT).

Exit codes: 0 done; 100 usage; 111 a file or user could not be created.
"""

import grp
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
from importlib.metadata import entry_points

from qmail.config import install_root, users
from qmail.queue import queue_layout
from qmail.tools import boot_scripts, install_services
from ucspi.runtime import durable, exitcodes

PROG = "qmail-install"
# qmail never delivers as root: qmail-lspawn refuses every delivery in a tree root owns.
EMBEDDED_AS_ROOT = ("--embedded as root makes a tree owned by root, and qmail never "
                    "delivers as root: qmail-lspawn will refuse every local delivery in it "
                    "(\"Not allowed to perform deliveries as root.\"). Run qmail-install "
                    "--embedded as the user who will run the tree, or without --embedded.")
USAGE = "qmail-install [ --embedded ] [ --fqdn NAME ] [ --services DIR ] [ --root ROOT | ROOT ]"

GROUPS = ("qmail", "nofiles", "vmail")
# user, group, home relative to ROOT ("" = ROOT itself), as qmail's INSTALL.ids
USERS = (
    ("alias", "nofiles", "alias"),
    ("qmaild", "nofiles", ""),
    ("qmaill", "nofiles", ""),
    ("qmailp", "nofiles", ""),
    ("qmailq", "qmail", ""),
    ("qmailr", "qmail", ""),
    ("qmails", "qmail", ""),
    ("vmail", "vmail", "vdomains"),  # owns the virtual domains' mailboxes (docs/virtual.md)
)
ALIAS_FILES = (".qmail-postmaster", ".qmail-mailer-daemon", ".qmail-root")
DEMO = "demo"


class Trouble(Exception):
    """Something could not be created: the message for `fatal`."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    embedded, fqdn, root, services = False, None, None, None
    args = list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg == "--embedded":
            embedded = True
        elif arg in ("--fqdn", "--root", "--services") and args:
            value = args.pop(0)
            if arg == "--fqdn":
                fqdn = value
            elif arg == "--services":
                services = value
            else:
                root = value
        elif arg.startswith("--fqdn="):
            fqdn = arg.split("=", 1)[1]
        elif arg.startswith("--services="):
            services = arg.split("=", 1)[1]
        elif arg.startswith("--root="):
            root = arg.split("=", 1)[1]
        elif not arg.startswith("-") and root is None:
            root = arg
        else:
            exitcodes.usage(PROG, USAGE)
    if (fqdn is not None and not fqdn) or (services is not None and not services):
        exitcodes.usage(PROG, USAGE)
    root = os.path.abspath(root or install_root.root())
    if os.geteuid() != 0:
        embedded = True
    elif embedded:
        exitcodes.warn(PROG, EMBEDDED_AS_ROOT)
    try:
        install(root, fqdn, embedded)
        if services is not None:
            install_services.install(root, services, embedded)
    except (Trouble, install_services.Trouble) as trouble:
        exitcodes.fatal(PROG, str(trouble))
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to set up {err.filename or root}", err)
    return 0


def install(root: str, fqdn: str | None, embedded: bool) -> None:
    ids = Ids.embedded() if embedded else Ids.qmail(root)
    directory(root, ids.uid("root"), ids.gid("qmail"), 0o755)
    for name, mode in (("bin", 0o755), ("control", 0o755), ("users", 0o755), ("boot", 0o755)):
        directory(os.path.join(root, name), ids.uid("root"), ids.gid("qmail"), mode)
    # qmail-queued, running as qmailq, makes its socket here
    directory(os.path.join(root, "run"), ids.uid("qmailq"), ids.gid("qmail"), 0o755)
    directory(os.path.join(root, "alias"), ids.uid("alias"), ids.gid("qmail"),
              0o755 if embedded else 0o2755)
    install_queue(root, ids)
    install_launchers(root)
    boot_scripts.write_all(root)  # qmail's boot/ default deliveries (home, proc, binm1..3, +df)
    install_control(root, fqdn or default_fqdn(root), ids)
    install_aliases(root, ids, embedded)
    if embedded:
        install_demo(root, ids)


def default_fqdn(root: str) -> str:
    """control/me if there is one, else this host's name (no DNS query)."""
    try:
        with open(os.path.join(root, "control", "me"), "rb") as f:
            me = f.read().split(b"\n", 1)[0].strip().decode("latin-1")
        if me:
            return me
    except OSError:
        pass
    return socket.gethostname() or "localhost"


def config_fast_domains(fqdn: str) -> tuple[str, str]:
    """(defaultdomain, plusdomain) as config-fast derives them from the host name."""
    default = re.sub(r"^([^.]*)\.([^.]*)\.", r"\2.", fqdn, count=1)
    default = re.sub(r"^.*\.([^.]*)\.([^.]*)$", r"\1.\2", default, count=1)
    plus = re.sub(r"^.*\.([^.]*)\.([^.]*)$", r"\1.\2", fqdn, count=1)
    return default, plus


def directory(path: str, uid: int, gid: int, mode: int) -> None:
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if not os.path.isdir(path):
            raise Trouble(f"{path} exists and is not a directory")
    own(path, uid, gid, mode)


def own(path: str, uid: int, gid: int, mode: int) -> None:
    if uid >= 0 and os.geteuid() == 0:
        os.chown(path, uid, gid)
    os.chmod(path, mode)


def new_file(path: str, data: bytes, uid: int, gid: int, mode: int) -> None:
    """path with data unless it exists; its owner and mode set either way."""
    if not os.path.lexists(path):
        durable.write_bytes(path, data, mode=mode)
    own(path, uid, gid, mode)


def install_queue(root: str, ids: "Ids") -> None:
    qdir = queue_layout.queue_dir(root)
    for path, d in queue_layout.all_dirs(qdir):
        directory(path, ids.uid(d.owner), ids.gid("qmail"), d.mode)
    for name, owner, mode, kind in queue_layout.LOCK_FILES:
        path = os.path.join(qdir, "lock", name)
        if kind == "fifo":
            if not os.path.lexists(path):
                os.mkfifo(path, mode)
            elif not stat.S_ISFIFO(os.lstat(path).st_mode):
                raise Trouble(f"{path} exists and is not a FIFO")
            own(path, ids.uid(owner), ids.gid("qmail"), mode)
        else:
            size = queue_layout.TCPTO_SIZE if kind == "tcpto" else 0
            new_file(path, bytes(size), ids.uid(owner), ids.gid("qmail"), mode)


def launcher_text(root: str, module: str) -> bytes:
    """A console-script-like file: our interpreter, QMAIL_ROOT pinned, module's main.
    ucspi.runtime.launch recognises it and warm-starts it with the pinned variable set."""
    return (f"#!{sys.executable}\n"
            f"import os\n"
            f"import sys\n"
            f"os.environ[{install_root.VARIABLE!r}] = {root!r}\n"
            f"from {module} import main\n"
            f"if __name__ == '__main__':\n"
            f"    sys.exit(main())\n").encode()


def programs() -> dict[str, str]:
    """name -> module of every qmail program registered as a console script."""
    found = {}
    for entry in entry_points(group="console_scripts"):
        module, _, func = entry.value.partition(":")
        if module.startswith("qmail.") and func.strip() == "main":
            found[entry.name] = module.strip()
    return found


def install_launchers(root: str) -> None:
    bindir = os.path.join(root, "bin")
    for name, module in sorted(programs().items()):
        path = os.path.join(bindir, name)
        text = launcher_text(root, module)
        try:
            with open(path, "rb") as f:
                if f.read() == text:
                    os.chmod(path, 0o755)
                    continue
        except OSError:
            pass
        durable.write_bytes(path, text, tmp=os.path.join(bindir, f".{name}.new"), mode=0o755)


def install_control(root: str, fqdn: str, ids: "Ids") -> None:
    default, plus = config_fast_domains(fqdn)
    control = os.path.join(root, "control")
    for name, value in (("me", fqdn), ("defaultdomain", default), ("plusdomain", plus),
                        ("locals", fqdn), ("rcpthosts", fqdn), ("defaultdelivery", "./Maildir/")):
        new_file(os.path.join(control, name), f"{value}\n".encode(), ids.uid("root"),
                 ids.gid("qmail"), 0o644)


def maildir(path: str, uid: int, gid: int) -> None:
    directory(path, uid, gid, 0o700)
    for sub in ("tmp", "new", "cur"):
        directory(os.path.join(path, sub), uid, gid, 0o700)


def install_aliases(root: str, ids: "Ids", embedded: bool) -> None:
    alias = os.path.join(root, "alias")
    content = b""
    if embedded:
        maildir(os.path.join(alias, "Maildir"), ids.uid("alias"), ids.gid("nofiles"))
        content = b"./Maildir/\n"
    for name in ALIAS_FILES:
        new_file(os.path.join(alias, name), content, ids.uid("alias"), ids.gid("nofiles"), 0o644)


def install_demo(root: str, ids: "Ids") -> None:
    """users/assign and users/cdb: demo -> the current user, the rest -> alias."""
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    home = os.path.join(root, "mailboxes", DEMO)
    directory(os.path.dirname(home), uid, gid, 0o755)
    directory(home, uid, gid, 0o700)
    maildir(os.path.join(home, "Maildir"), uid, gid)
    alias = os.path.join(root, "alias")
    lines = [f"={DEMO}:{user}:{uid}:{gid}:{home}:::",
             f"+{DEMO}-:{user}:{uid}:{gid}:{home}:-::",
             f"+:{user}:{uid}:{gid}:{alias}:-::",
             "."]
    assign = os.path.join(root, "users", "assign")
    new_file(assign, ("\n".join(lines) + "\n").encode(), uid, gid, 0o644)
    cdb = os.path.join(root, "users", "cdb")
    if not os.path.exists(cdb):  # as qmail-newu builds it
        with open(assign, "rb") as f:
            text = f.read()
        durable.replace(cdb, cdb + ".tmp", lambda out: users.build_cdb(text, out), 0o644)


class Ids:
    """uids and gids by qmail user/group name: all the current user's in embedded mode."""

    def __init__(self, users: dict[str, int], groups: dict[str, int]):
        self.users, self.groups = users, groups

    @classmethod
    def embedded(cls) -> "Ids":
        return cls({}, {})

    @classmethod
    def qmail(cls, root: str) -> "Ids":
        for group in GROUPS:
            if not _exists(grp.getgrnam, group):
                _run(["groupadd", "-r", group])
        for user, group, home in USERS:
            if not _exists(pwd.getpwnam, user):
                _run(["useradd", "-r", "-g", group, "-d", os.path.join(root, home),
                      "-s", "/usr/sbin/nologin", "-M", user])
        users = {name: pwd.getpwnam(name).pw_uid for name, _, _ in USERS}
        users["root"] = 0
        groups = {name: grp.getgrnam(name).gr_gid for name in GROUPS}
        return cls(users, groups)

    def uid(self, name: str) -> int:
        return self.users.get(name, -1)

    def gid(self, name: str) -> int:
        return self.groups.get(name, -1)


def _exists(lookup, name: str) -> bool:
    try:
        lookup(name)
        return True
    except KeyError:
        return False


# groupadd and useradd live in the administrator's directories, which a root started
# with a plain PATH (cron, a run script, sudo's secure_path aside) may not search.
ADMIN_PATH = "/usr/sbin:/sbin"


def _run(argv: list[str]) -> None:
    search = os.pathsep.join(filter(None, (os.environ.get("PATH"), ADMIN_PATH)))
    program = shutil.which(argv[0], path=search) or argv[0]
    try:
        done = subprocess.run([program, *argv[1:]], stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise Trouble(f"unable to run {argv[0]}: {exitcodes.error_str(err)}")
    if done.returncode != 0:
        raise Trouble(f"{argv[0]} {argv[-1]} failed: "
                      f"{done.stderr.decode(errors='replace').strip()}")
