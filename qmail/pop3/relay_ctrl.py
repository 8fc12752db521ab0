"""POP-before-SMTP, shared by relay-ctrl-allow and relay-ctrl-check (Bruce Guenter's
relay-ctrl names and variables; the chain of the Qmail Quickstarter book).

Synopsis:
    relay-ctrl-allow prog [args...]     (after checkpassword, before qmail-pop3d)
    relay-ctrl-check prog [args...]     (under tcpserver, before qmail-smtpd)

relay-ctrl-allow records that the client at $TCPREMOTEIP has just logged in: it creates
the file $RELAY_CTRL_DIR/<address> (mode 0666, so that the next user logging in from the
same address can renew it) or sets its modification time to now, then runs prog. Both are
single atomic system calls on one file per address: concurrent logins cannot corrupt
anything. A login never fails because of this: when $TCPREMOTEIP is not an IP address,
$RELAY_CTRL_DIR is unset, or the file cannot be made, it says
`relay-ctrl-allow: warning: ...` on stderr and runs prog all the same.

relay-ctrl-check, when $RELAYCLIENT is not set already, looks for the file of
$TCPREMOTEIP: modified within the last $RELAY_CTRL_EXPIRY seconds (default 900; not more
than a minute in the future), it sets RELAYCLIENT to $RELAY_CTRL_RELAYCLIENT (default
empty) for prog; older, the file is removed. Then it runs prog. With $RELAY_CTRL_LOG_IPS
set it says on stderr whether it set RELAYCLIENT and why.

Differences from relay-ctrl 3: the files are empty (relay-ctrl-allow does not record
$USER and $DOMAIN, and relay-ctrl-check exports nothing from the file: whoever can write
the directory could otherwise set any variable of qmail-smtpd); no $RELAY_CTRL_DIR_FD
(relay-ctrl-chdir). The directory must be writable by the users who log in (they run
relay-ctrl-allow after checkpassword), e.g. mode 1733; anyone who can write it can open
relaying for an address.

Exit codes: 100 usage; 111 prog cannot be run; otherwise prog's.
"""

from __future__ import annotations

import ipaddress
import os

from ucspi.runtime import exitcodes, launch

DEFAULT_EXPIRY = 900
FUTURE_SLACK = 60


def address_file(env) -> str | None:
    """$RELAY_CTRL_DIR/<canonical $TCPREMOTEIP>, or None when either is missing or the
    address is not an IP address (never a path of the client's choosing)."""
    directory = env.get("RELAY_CTRL_DIR")
    remote = env.get("TCPREMOTEIP", "")
    if not directory:
        return None
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return None
    return os.path.join(directory, str(address))


def record(path: str) -> None:
    """Create path or set its times to now; OSError when neither works."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    try:
        try:
            os.fchmod(fd, 0o666)  # the umask took bits away; fails harmlessly if not ours
        except OSError:
            pass
        os.utime(fd)
    finally:
        os.close(fd)


def expiry(env) -> int:
    try:
        value = int(env.get("RELAY_CTRL_EXPIRY", DEFAULT_EXPIRY))
        return value if value >= 0 else DEFAULT_EXPIRY
    except ValueError:
        return DEFAULT_EXPIRY


def allowed(path: str, seconds: int, now: float) -> tuple[bool, str]:
    """Whether path was recorded within seconds of now; expired files are removed.
    (answer, reason for the log)."""
    try:
        mtime = os.stat(path).st_mtime
    except FileNotFoundError:
        return False, "not recorded"
    except OSError as err:
        return False, f"unable to stat {path}: {exitcodes.error_str(err)}"
    if mtime > now + FUTURE_SLACK:
        return False, "recorded in the future"
    if now - mtime > seconds:
        try:
            os.unlink(path)
        except OSError:
            pass
        return False, "expired"
    return True, "recorded"


def run(prog: str, argv: list[str], changes: dict) -> int:
    """exec argv[1:] with changes to the environment; usage (100) without it, 111 when it
    cannot be run."""
    if len(argv) < 2:
        exitcodes.usage(prog, f"{prog} prog [args...]")
    try:
        launch.exec_program(argv[1:], changes=changes)
    except OSError as err:
        exitcodes.fatal_sys(prog, f"unable to run {argv[1]}", err)
    return 111
