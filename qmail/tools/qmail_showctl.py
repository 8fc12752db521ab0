"""qmail-showctl: analyse the qmail configuration files (qmail-showctl(8)).

Synopsis:
    qmail-showctl

Prints the compiled-in settings (home directory, user-ext delimiter, paternalism, silent
concurrency limit, subdirectory split, user and group ids), then every control file of
qmail-control(5) with its value or "(Default.)" and the default, in qmail-showctl's
wording, then "I have no idea what this file does." for any other file in control/
(in name order; the original lists them in directory order).

In embedded mode the qmail users do not exist: their ids print as the current user's.

Exit codes: 0; 111 when ROOT or ROOT/control cannot be entered or control/me not read.
Environment: QMAIL_ROOT.
"""

import grp
import os
import pwd
import re
import sys

from qmail.config import control, install_root
from qmail.queue import queue_layout

USERS = ("alias", "qmaild", "qmaill", "root", "qmailp", "qmailq", "qmailr", "qmails")
GROUPS = ("nofiles", "qmail")
BREAK, PATERNALISM, SPAWN_LIMIT = "-", 2, 120

# (kind, name, default, prefix, suffix or flag-me): the order qmail-showctl prints them
ENTRIES = (
    ("lst", "badmailfrom", "Any MAIL FROM is allowed.", "", " not accepted in MAIL FROM."),
    ("str", "bouncefrom", "MAILER-DAEMON", "Bounce user name is ", False),
    ("str", "bouncehost", "bouncehost", "Bounce host name is ", True),
    ("int", "concurrencylocal", "10", "Local concurrency is ", ""),
    ("int", "concurrencyremote", "20", "Remote concurrency is ", ""),
    ("int", "databytes", "0", "SMTP DATA limit is ", " bytes"),
    ("str", "defaultdomain", "defaultdomain", "Default domain name is ", True),
    ("str", "defaulthost", "defaulthost", "Default host name is ", True),
    ("str", "doublebouncehost", "doublebouncehost", "2B recipient host: ", True),
    ("str", "doublebounceto", "postmaster", "2B recipient user: ", False),
    ("str", "envnoathost", "envnoathost", "Presumed domain name is ", True),
    ("str", "helohost", "helohost", "SMTP client HELO host name is ", True),
    ("str", "idhost", "idhost", "Message-ID host name is ", True),
    ("str", "localiphost", "localiphost", "Local IP address becomes ", True),
    ("lst", "locals", "Messages for me are delivered locally.", "Messages for ",
     " are delivered locally."),
    ("str", "me", "undefined! Uh-oh", "My name is ", False),
    ("lst", "percenthack", "The percent hack is not allowed.",
     "The percent hack is allowed for user%host@", "."),
    ("str", "plusdomain", "plusdomain", "Plus domain name is ", True),
    ("lst", "qmqpservers", "No QMQP servers.", "QMQP server: ", "."),
    ("int", "queuelifetime", "604800", "Message lifetime in the queue is ", " seconds"),
    ("rcpthosts",),
    ("str", "smtpgreeting", "smtpgreeting", "SMTP greeting: 220 ", True),
    ("lst", "smtproutes", "No artificial SMTP routes.", "SMTP route: ", ""),
    ("int", "timeoutconnect", "60", "SMTP client connection timeout is ", " seconds"),
    ("int", "timeoutremote", "1200", "SMTP client data timeout is ", " seconds"),
    ("int", "timeoutsmtpd", "1200", "SMTP server data timeout is ", " seconds"),
    ("lst", "virtualdomains", "No virtual domains.", "Virtual domain: ", ""),
)
KNOWN = {e[1] for e in ENTRIES if len(e) > 1} | {"rcpthosts", "morercpthosts",
                                                "morercpthosts.cdb"}
TROUBLE = "Oops! Trouble reading this file.\n"


def safe(text: str) -> str:
    """qmail-showctl's safeput: anything outside printable ASCII becomes '?'."""
    return "".join(ch if 32 <= ord(ch) <= 126 else "?" for ch in text)


def show_int(root, name, default, pre, post) -> str:
    try:
        line = control.read_line(root, name)
    except control.ControlTrouble:
        return TROUBLE
    digits = re.match(r"[0-9]*", line or "").group(0) if line is not None else ""
    if not digits:  # control_readint: absent or not a number means the default
        return f"(Default.) {pre}{default}{post}.\n"
    return f"{pre}{int(digits)}{post}.\n"


def show_str(root, name, default, pre, flag_me, me) -> str:
    try:
        line = control.read_line(root, name)
    except control.ControlTrouble:
        return TROUBLE
    if line is None:
        return f"(Default.) {pre}{safe(me if flag_me and me is not None else default)}.\n"
    return f"{pre}{safe(line)}.\n"


def show_lst(root, name, default, pre, post) -> tuple[str, int]:
    try:
        lines = control.read_lines(root, name)
    except control.ControlTrouble:
        return TROUBLE, -1
    if lines is None:
        return f"(Default.) {default}\n", 0
    return "\n" + "".join(f"{pre}{safe(line)}{post}\n" for line in lines), 1


def ids() -> tuple[list[int], list[int]]:
    def uid(name):
        try:
            return pwd.getpwnam(name).pw_uid
        except KeyError:
            return os.getuid()

    def gid(name):
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            return os.getgid()
    return [uid(u) for u in USERS], [gid(g) for g in GROUPS]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    root = install_root.root()
    out = []
    uids, gids = ids()
    out.append(f"qmail home directory: {root}.\n")
    out.append(f"user-ext delimiter: {BREAK}.\n")
    out.append(f"paternalism (in decimal): {PATERNALISM}.\n")
    out.append(f"silent concurrency limit: {SPAWN_LIMIT}.\n")
    out.append(f"subdirectory split: {queue_layout.SPLIT}.\n")
    out.append(f"user ids: {', '.join(map(str, uids))}.\n")
    out.append(f"group ids: {', '.join(map(str, gids))}.\n")
    code = 0
    if not os.path.isdir(root):
        out.append(f"Oops! Unable to chdir to {root}.\n")
        code = 111
    elif not os.path.isdir(os.path.join(root, "control")):
        out.append("Oops! Unable to chdir to control.\n")
        code = 111
    else:
        try:
            me = control.read_line(root, "me")
        except control.ControlTrouble:
            out.append("Oops! Trouble reading control/me.")
            code = 111
        else:
            out.append(body(root, me))
    sys.stdout.buffer.write("".join(out).encode("latin-1", "replace"))
    sys.stdout.flush()
    return code


def body(root: str, me: str | None) -> str:
    out = []
    for entry in ENTRIES:
        if entry[0] == "rcpthosts":
            out.append(rcpthosts(root))
            continue
        kind, name, default, pre, extra = entry
        out.append(f"\n{name}: ")
        if kind == "int":
            out.append(show_int(root, name, default, pre, extra))
        elif kind == "str":
            out.append(show_str(root, name, default, pre, extra, me))
        else:
            out.append(show_lst(root, name, default, pre, extra)[0])
    try:
        names = sorted(os.listdir(os.path.join(root, "control")))
    except OSError:
        names = []
    for name in names:
        if name not in KNOWN:
            out.append(f"\n{name}: I have no idea what this file does.\n")
    return "".join(out)


def rcpthosts(root: str) -> str:
    text, found = show_lst(root, "rcpthosts", "SMTP clients may send messages to any recipient.",
                           "SMTP clients may send messages to recipients at ", ".")
    out = ["\nrcpthosts: ", text, "\nmorercpthosts: "]
    if found:
        out.append(show_lst(root, "morercpthosts", "No effect.",
                            "SMTP clients may send messages to recipients at ", ".")[0])
    else:
        out.append(show_lst(root, "morercpthosts", "No rcpthosts; morercpthosts is irrelevant.",
                            "No rcpthosts; doesn't matter that morercpthosts has ", ".")[0])
    out.append("\nmorercpthosts.cdb: ")
    plain = os.path.join(root, "control", "morercpthosts")
    cdb = plain + ".cdb"
    try:
        st_plain = os.stat(plain)
    except OSError:
        st_plain = None
    try:
        st_cdb = os.stat(cdb)
    except OSError:
        st_cdb = None
    if st_plain is None:
        out.append("(Default.) No effect.\n" if st_cdb is None
                   else "Oops! morercpthosts.cdb exists but morercpthosts doesn't.\n")
    elif st_cdb is None:
        out.append("Oops! morercpthosts exists but morercpthosts.cdb doesn't.\n")
    elif int(st_plain.st_mtime) > int(st_cdb.st_mtime):
        out.append("Oops! morercpthosts.cdb is older than morercpthosts.\n")
    else:
        out.append("Modified recently enough; hopefully up to date.\n")
    return "".join(out)
