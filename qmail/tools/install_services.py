"""The book's service directories for svscan: what `qmail-install --services DIR` does.

install(root, service_dir, embedded) renders service-templates/ (qmail-send, qmail-smtpd,
qmail-qmtpd, qmail-qmqpd, qmail-queued, qmail-pop3d, qmail-pop3ds, each with ./run and
./log/run) into service_dir, writes the tcprules sources tcp.smtp, tcp.qmtp, tcp.qmqp and
tcp.pop3 (kept when they exist) and compiles their cdbs, and creates
control/concurrencyincoming (20) when it is missing. qmail-pop3ds (TLS on connect) needs
control/servercert.pem: without it the new service gets ./down.

Root mode: the book's values: the services listen on every address (0) on ports smtp,
209, 628, 110 and 995, tcpserver switches to qmaild:nofiles (POP3 stays root: its
checkpassword switches to the user who logs in), the loggers run `setuidgid qmaill
multilog t ./main` with log/main owned by qmaill, qmail-queued runs as qmailq, and the rules
live in /etc (ROOT/etc for a ROOT other than /var/qmail). Embedded mode: 127.0.0.1 on high ports ($SMTP_PORT, $QMTP_PORT, $QMQP_PORT, $POP3_PORT,
$POP3S_PORT; default 2525, 2209, 2628, 2110, 2995), everything as the current user, POP3
logins checked by checkvpw (virtual users) rather than checkpassword, the rules in ROOT/etc.
Every run script puts our bin directory first in PATH.

A service is built under a dot name (which svscan ignores) and renamed into place
complete; an existing service keeps its supervise/ state and logs, only its run
scripts are replaced. Raises OSError, KeyError (a qmail user is missing) or Trouble.
"""

import os
import pwd
import shutil
import sys

from ucspi.runtime import cdb_rules, durable

SERVICES = ("qmail-send", "qmail-smtpd", "qmail-qmtpd", "qmail-qmqpd", "qmail-queued",
            "qmail-pop3d", "qmail-pop3ds")
RULES = ("tcp.smtp", "tcp.qmtp", "tcp.qmqp", "tcp.pop3")
PORTS = {"SMTP_PORT": ("smtp", 2525), "QMTP_PORT": ("209", 2209), "QMQP_PORT": ("628", 2628),
         "POP3_PORT": ("110", 2110), "POP3S_PORT": ("995", 2995)}
# Services that cannot start without the TLS certificate: installed with ./down until it exists.
NEEDS_CERTIFICATE = ("qmail-pop3ds",)
CERTIFICATE = os.path.join("control", "servercert.pem")
EMBEDDED_HOST = "127.0.0.1"
# The book's softlimit -m 2000000 suits C; a Python interpreter needs more room.
SOFTLIMIT = "100000000"
CONCURRENCY_INCOMING = "20"
BOOK_ROOT = "/var/qmail"


class Trouble(Exception):
    """The templates are unusable or a port setting is bad: the message says which."""


def templates_dir() -> str:
    """service-templates/ at the project's top, two packages above this module."""
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(top, "service-templates")


def bin_dir() -> str:
    """Where our console scripts are: beside the running interpreter."""
    return os.path.dirname(os.path.abspath(sys.executable))


def ports(embedded: bool, environ=None) -> dict[str, str]:
    """SMTP_PORT, QMTP_PORT, QMQP_PORT as the run scripts get them."""
    environ = os.environ if environ is None else environ
    found = {}
    for name, (standard, high) in PORTS.items():
        if not embedded:
            found[name] = standard
            continue
        value = environ.get(name, "") or str(high)
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise Trouble(f"{name} must be a port number, not {value!r}")
        found[name] = str(int(value))
    return found


def values(root: str, service_dir: str, embedded: bool, environ=None) -> dict[str, str]:
    """The @NAME@ substitutions of the templates."""
    found = {
        "ROOT": root,
        "SERVICE": service_dir,
        "PATH": bin_dir() + ":$PATH",
        "SOFTLIMIT": SOFTLIMIT,
        "RULES": rules_dir(root, embedded),
    }
    found.update({name.replace("_", ""): port
                  for name, port in ports(embedded, environ).items()})
    if embedded:
        # An ordinary user has no system passwords to check: virtual users (checkvpw).
        found.update(QMAILDUID="`id -u`", NOFILESGID="`id -g`", IDS="", HOST=EMBEDDED_HOST,
                     LOGUSER="", QUEUEDUSER="", CHECKPASSWORD="checkvpw")
    else:
        found.update(QMAILDUID="`id -u qmaild`", NOFILESGID="`id -g qmaild`",
                     IDS='-u "$QMAILDUID" -g "$NOFILESGID" ', HOST="0",
                     LOGUSER="setuidgid qmaill ", QUEUEDUSER="setuidgid qmailq ",
                     CHECKPASSWORD="checkpassword")
    return found


def rules_dir(root: str, embedded: bool) -> str:
    """The book's /etc for the one root-mode /var/qmail; ROOT/etc for any other tree."""
    if not embedded and root == BOOK_ROOT:
        return "/etc"
    return os.path.join(root, "etc")


def render(text: str, subst: dict[str, str]) -> str:
    for name, value in subst.items():
        text = text.replace(f"@{name}@", value)
    if "@" in text.replace("$@", ""):
        leftover = text[text.index("@"):].split("\n", 1)[0]
        raise Trouble(f"unfilled template value: {leftover}")
    return text


def install(root: str, service_dir: str, embedded: bool, environ=None) -> None:
    root, service_dir = os.path.abspath(root), os.path.abspath(service_dir)
    subst = values(root, service_dir, embedded, environ)
    logger = None if embedded else pwd.getpwnam("qmaill")
    install_rules(subst["RULES"])
    control = os.path.join(root, "control", "concurrencyincoming")
    if not os.path.lexists(control):
        durable.write_bytes(control, (CONCURRENCY_INCOMING + "\n").encode(), mode=0o644)
    os.makedirs(service_dir, mode=0o755, exist_ok=True)
    have_certificate = os.path.exists(os.path.join(root, CERTIFICATE))
    for name in SERVICES:
        down = name in NEEDS_CERTIFICATE and not have_certificate
        install_service(os.path.join(templates_dir(), name), service_dir, name, subst, logger,
                        down)


def install_rules(directory: str) -> None:
    os.makedirs(directory, mode=0o755, exist_ok=True)
    for name in RULES:
        source = os.path.join(directory, name)
        if not os.path.lexists(source):
            with open(os.path.join(templates_dir(), name), "rb") as f:
                durable.write_bytes(source, f.read(), mode=0o644)
        with open(source, "rb") as f:
            lines = f.read().splitlines(keepends=True)
        cdb = source + ".cdb"
        try:
            durable.replace(cdb, source + ".tmp", lambda out: cdb_rules.compile_rules(lines, out),
                            0o644)
        except cdb_rules.ParseError as err:
            raise Trouble(f"unable to parse this line of {source}: "
                          f"{err.args[0].decode(errors='replace')}")


def install_service(template: str, service_dir: str, name: str, subst: dict[str, str],
                    logger, down: bool = False) -> None:
    """down: a new service gets ./down (supervise leaves it stopped until `svc -u`); an
    existing one keeps whatever the administrator did with it."""
    final = os.path.join(service_dir, name)
    if os.path.isdir(final):
        write_scripts(template, final, subst, logger)
        return
    building = os.path.join(service_dir, f".{name}.new")
    shutil.rmtree(building, ignore_errors=True)
    os.mkdir(building, 0o755)
    write_scripts(template, building, subst, logger)
    if down:
        durable.write_bytes(os.path.join(building, "down"), b"", mode=0o644)
    # svscan sees the service only now, complete with its log directory
    os.rename(building, final)
    durable.fsync_dir(final)  # the rename into service_dir is on disk


def write_scripts(template: str, directory: str, subst: dict[str, str], logger) -> None:
    os.makedirs(os.path.join(directory, "log", "main"), mode=0o755, exist_ok=True)
    if logger is not None:
        os.chown(os.path.join(directory, "log", "main"), logger.pw_uid, logger.pw_gid)
    for script in ("run", os.path.join("log", "run")):
        with open(os.path.join(template, script), encoding="utf-8") as f:
            text = render(f.read(), subst)
        path = os.path.join(directory, script)
        durable.write_bytes(path, text.encode(), tmp=path + ".new", mode=0o755)

