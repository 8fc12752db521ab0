"""qmail-pw2u: build assignments from a passwd file (qmail-pw2u(8)).

Synopsis:
    qmail-pw2u [ -/ohHuUC ] [ -cC ] < /etc/passwd > ROOT/users/assign

For each account with a non-zero uid (and, by default, a home directory it owns and no
capital letters in its name) writes `=name:user:uid:gid:home:::` and, with the break
character (-c, default `-`; -C none) `+name-:user:uid:gid:home:-::`; the alias user gets
the catch-all `+:alias:uid:gid:home:-::`. Then the ROOT/users/subusers lines
(`sub:user:pre:`) and ROOT/users/append verbatim, and the final `.`.

Files in ROOT/users: include (only these accounts), exclude (not these), mailnames
(`user:name:name...`: the addresses of an account instead of its name), subusers, append.

Options: -/ dash `-/` instead of `-`; -o skip accounts whose home is missing (default);
-h stop when a home is missing; -H ignore homes; -u allow capitals; -U do not.

Exit codes: 0 done; 100 bad option; 111 trouble (no alias account, an unreadable control
file, a home that cannot be checked), with qmail-pw2u's messages.
"""

import errno
import os
import sys

from qmail.config import install_root
from ucspi.runtime import exitcodes, sgetopt

PROG = "qmail-pw2u"
ALIAS = b"alias"


def fatal(text: str) -> None:
    exitcodes.fatal(PROG, text)


def read_list(name: str) -> list[bytes] | None:
    """A control-style list in users/ (no blank or # lines, trailing blanks dropped)."""
    try:
        with open(os.path.join("users", name), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        fatal("unable to read controls")
    lines = []
    for raw in data.split(b"\n"):
        line = raw.rstrip(b" \t")
        if line and not line.startswith(b"#"):
            lines.append(line)
    return lines


class Options:
    def __init__(self):
        self.dashcolon = b"-:"
        self.homestrategy = 2
        self.noupper = True
        self.breakchar = b"-"


def account(line: bytes, opts: Options, include, exclude, mailnames, out: list, users: dict) -> bool:
    """Write one passwd line's assignments; True when it was the alias account."""
    if b"\0" in line:
        return False
    fields = line.split(b":")
    if len(fields) < 7:
        return False
    user, uidstr, gidstr, home = fields[0], fields[2], fields[3], fields[5]
    digits = b""
    for ch in uidstr:
        if not 48 <= ch <= 57:
            break
        digits += bytes((ch,))
    uid = int(digits) if digits else 0
    if uid == 0:
        return False
    if opts.noupper and any(65 <= ch <= 90 for ch in user):
        return False
    if include is not None and user.lower() not in include:
        return False
    if exclude is not None and user.lower() in exclude:
        return False
    if opts.homestrategy:
        try:
            st = os.stat(home)
        except OSError as err:
            if err.errno != errno.ENOENT or opts.homestrategy == 1:
                fatal(f"unable to stat {os.fsdecode(home)}")
            return False
        if st.st_uid != uid:
            return False
    uugh = b":" + user + b":" + uidstr + b":" + gidstr + b":" + home + b":"
    users.setdefault(user.lower(), uugh)
    is_alias = user == ALIAS
    if is_alias:
        out.append(b"+" + uugh + opts.dashcolon + b":\n")
    names = mailnames.get(user.lower(), user) if mailnames is not None else user
    for name in names.split(b":"):
        if not name:
            continue
        out.append(b"=" + name + uugh + b"::\n")
        if opts.breakchar:
            out.append(b"+" + name + opts.breakchar + uugh + opts.dashcolon + b":\n")
    return is_alias


def subuser(line: bytes, opts: Options, users: dict, out: list) -> None:
    fields = line.split(b":")
    if len(fields) < 4:
        return
    sub, user, pre = fields[0], fields[1], fields[2]
    uugh = users.get(user.lower())
    if uugh is None:
        fatal(f"unable to find {os.fsdecode(user)} user for subuser")
    out.append(b"=" + sub + uugh + opts.dashcolon + pre + b":\n")
    if opts.breakchar:
        out.append(b"+" + sub + opts.breakchar + uugh + opts.dashcolon + pre + b"-:\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    opts = Options()
    try:
        parsed, _ = sgetopt.getopt(argv, "/ohHuUc:C", PROG)
    except sgetopt.UsageError:
        return 100
    for opt, arg in parsed:
        if opt == "/":
            opts.dashcolon = b"-/:"
        elif opt in "ohH":
            opts.homestrategy = {"o": 2, "h": 1, "H": 0}[opt]
        elif opt in "uU":
            opts.noupper = opt == "U"
        elif opt == "c":
            opts.breakchar = os.fsencode(arg)[:1]
        elif opt == "C":
            opts.breakchar = b""
    try:
        os.chdir(install_root.root())
    except OSError:
        fatal("unable to chdir")
    include = read_list("include")
    exclude = read_list("exclude")
    names = read_list("mailnames")
    include = None if include is None else {x.lower() for x in include}
    exclude = None if exclude is None else {x.lower() for x in exclude}
    mailnames = None
    if names is not None:
        mailnames = {}
        for entry in names:
            key, _, value = entry.partition(b":")
            mailnames.setdefault(key.lower(), value)
    try:
        data = sys.stdin.buffer.read()
    except OSError:
        fatal("unable to read input")
    out: list[bytes] = []
    users: dict = {}
    found_alias = False
    for line in data.split(b"\n"):
        found_alias = account(line, opts, include, exclude, mailnames, out, users) or found_alias
    if not found_alias:
        fatal("unable to find alias user")
    for name in ("subusers", "append"):
        try:
            with open(os.path.join("users", name), "rb") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        except OSError:
            fatal("unable to read controls")
        if name == "append":
            out.append(text)
        else:
            for line in text.split(b"\n"):
                subuser(line, opts, users, out)
    out.append(b".\n")
    try:
        sys.stdout.buffer.write(b"".join(out))
        sys.stdout.buffer.flush()
    except OSError:
        fatal("unable to write output")
    return 0
