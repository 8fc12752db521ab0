"""dot-forward: read a sendmail-style .forward file under qmail (dot-forward(1)).

Synopsis:
    in ~/.qmail: |dot-forward [ -nN ] file ...

Uses the first file that exists and says something. Each line not beginning with # is
an RFC 822 address list (comments, quotes, <route addresses>; commas, colons and
semicolons separate addresses, as do adjacent words), read right to left:

  * $USER (any case; `\\joe` is joe, the backslash quoting the j) or $USER@$HOST:
    direct delivery;
  * an address without @ beginning with |: a command, run by /bin/sh with $UFLINE,
    $RPLINE and $DTLINE in front of the message;
  * an address without @ beginning with /: a file delivery, not supported (fatal);
  * anything else: a forward, qualified as qmail-inject does (no host: @defaulthost; a
    host ending in +: the + becomes .plusdomain; a host without a dot: .defaultdomain).

Forwards go out in one message (with $DTLINE in front, envelope sender $NEWSENDER) after
the commands ran. Exit 99 (qmail-local skips the rest of .qmail) unless the file asked for
direct delivery, or no file said anything: then exit 0.

-n: print the instructions (`forward X`, `pipe through X`, `direct delivery`, `skipping
empty file F`) on descriptor 2 and do nothing; -N (default): follow them.

Exit codes: 0, 99 as above; 100 usage, or a command/queue failing for good; 111 temporary
trouble: unreadable file or controls, an unparseable line, a file delivery, a command
failing temporarily, qmail-queue trouble.

Files: ROOT/control/me, defaulthost, defaultdomain, plusdomain (default: me, or "me").
Environment: USER, HOST, NEWSENDER, DTLINE, UFLINE, RPLINE, QMAIL_ROOT, QMAILQUEUE.
"""

import errno
import os
import signal
import sys
from dataclasses import dataclass

from qmail.config import control, install_root
from qmail.delivery import delivery_env, forwarding
from qmail.formats import address
from ucspi.runtime import exitcodes, filters, sgetopt

PROG = "dot-forward"
USAGE = "dot-forward [ -nN ] file ..."
PHRASE = (address.COMMENT, address.ATOM, address.QUOTE, address.AT, address.DOT)


class Unparseable(Exception):
    """A line of the file is not an address list."""


class FileDelivery(Exception):
    """The file asks for delivery to a file, which dot-forward does not do."""


@dataclass
class Names:
    """The host names qualification uses (qmail-inject's controls)."""
    defaulthost: bytes = b"me"
    defaultdomain: bytes = b"me"
    plusdomain: bytes = b"me"


def qualify(addr: bytes, names: Names, has_at: bool) -> bytes:
    """A forward address made complete as qmail-inject would (has_at: an unquoted @)."""
    if not has_at:
        addr += b"@" + names.defaulthost
    at = addr.rfind(b"@")
    host = addr[at + 1:]
    if host.endswith(b"+"):
        host = host[:-1] + b"." + names.plusdomain
    elif b"." not in host:
        host += b"." + names.defaultdomain
    return addr[:at + 1] + host


def classify(tokens: list, user: bytes | None, host: bytes | None, names: Names):
    """The step for one address (tokens in order), or None for an empty one."""
    text = address.unquote(tokens)
    if not text:
        return None
    has_at = any(kind == address.AT for kind, _ in tokens)
    if not has_at:
        if user is not None and text.lower() == user.lower():
            return ("direct", b"")
        if text.startswith(b"|"):
            return ("program", text[1:])
        if text.startswith(b"/"):
            raise FileDelivery(text)
    elif user is not None and host is not None and text.lower() == (user + b"@" + host).lower():
        return ("direct", b"")
    return ("forward", qualify(text, names, has_at))


def walk(tokens: list, emit) -> None:
    """Pass each address of a line's tokens to emit(tokens in order), right to left.

    Like qmail's address-list walk, but without groups: a colon or semicolon outside
    <...> only ends a phrase; words next to each other are separate addresses; the
    phrase before <...> is dropped. Raises Unparseable on a > without its <.
    """
    addr: list = []
    wordok = True

    def flush():
        if addr:
            emit(addr[::-1])
            addr.clear()

    t = len(tokens) - 1
    while t >= 0:
        kind = tokens[t][0]
        if kind == address.RIGHT:
            flush()
            t -= 1
            while t >= 0 and tokens[t][0] != address.LEFT:
                addr.append(tokens[t])
                t -= 1
            emit(addr[::-1])  # even when empty: <> is an address
            addr.clear()
            if t < 0:
                raise Unparseable()
            t -= 1
            while t >= 0 and tokens[t][0] in PHRASE:
                t -= 1
            wordok = False
            continue
        if kind in (address.ATOM, address.QUOTE, address.LITERAL):
            if not wordok:
                flush()
            wordok = False
            addr.append(tokens[t])
        elif kind == address.COMMA:
            flush()
            wordok = True
        elif kind not in (address.COMMENT, address.COLON, address.SEMI):
            wordok = True  # < @ . belong to the address being read
            addr.append(tokens[t])
        t -= 1
    flush()


def parse_line(line: bytes, user: bytes | None, host: bytes | None, names: Names, act) -> None:
    """Pass each address of one line, right to left, to act(step)."""
    def emit(tokens):
        step = classify(tokens, user, host, names)
        if step is not None:
            act(step)
    try:
        walk(address.tokenise(line), emit)
    except (address.Unparseable, Unparseable):
        raise Unparseable(line) from None


def plan_file(text: bytes, user, host, names: Names, act) -> None:
    """Each line with its newline (a backslash before it escapes it, as in the original)."""
    start = 0
    while start < len(text):
        end = text.find(b"\n", start)
        end = len(text) if end < 0 else end + 1
        line = text[start:end]
        start = end
        if not line.startswith(b"#"):
            parse_line(line, user, host, names, act)


def read_names(root: str) -> Names:
    me = control.read_line(root, "me")
    me_b = b"me" if me is None else me.encode("latin-1")

    def value(name):
        found = control.read_line(root, name)
        return me_b if found is None else found.encode("latin-1")
    return Names(defaulthost=value("defaulthost"), defaultdomain=value("defaultdomain"),
                 plusdomain=value("plusdomain"))


def read_file(path: str) -> bytes | None:
    """The file's contents; None when it does not exist. OSError on other trouble."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno in (errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG):
            return None
        raise


def say(text: bytes) -> None:
    try:
        os.write(2, text)
    except OSError:
        pass


def run_program(command: bytes) -> None:
    """Feed the delivery lines and the message to command under /bin/sh."""
    head = b"".join(os.environb.get(name, b"") for name in (b"UFLINE", b"RPLINE", b"DTLINE"))
    read_end, write_end = os.pipe()
    try:
        pid = os.posix_spawn(b"/bin/sh", [b"/bin/sh", b"-c", command], os.environb,
                             file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0),
                                           (os.POSIX_SPAWN_CLOSE, write_end)],
                             setsigmask=(), setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to run /bin/sh", err)
    os.close(read_end)
    try:
        os.lseek(0, 0, os.SEEK_SET)
    except OSError:
        pass
    filters.feed(write_end, head)  # stops when the command stops reading; its exit code decides
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        exitcodes.fatal(PROG, "child crashed")
    code = os.WEXITSTATUS(status)
    if code in delivery_env.PERMANENT_PROGRAM_CODES:
        raise SystemExit(100)
    if code != 0:
        raise SystemExit(111)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    opts, files = sgetopt.options(argv, "nN", PROG, USAGE)
    doit = True
    for opt, _ in opts:
        doit = opt == "N"
    user = os.environb.get(b"USER")
    host = os.environb.get(b"HOST")
    root = install_root.root()
    try:
        names = read_names(root)
    except control.ControlTrouble as err:
        exitcodes.fatal(PROG, f"unable to read controls: {err}")

    steps: list = []
    for path in files:
        try:
            text = read_file(path)
        except OSError as err:
            exitcodes.fatal_sys(PROG, f"unable to read {path}", err)
        if text is None:
            continue
        found: list = []

        def act(step):
            kind, value = step
            if not doit and kind != "direct":  # direct delivery is said once, at the end
                say({"forward": b"forward ", "program": b"pipe through "}[kind] + value + b"\n")
            found.append(step)
        try:
            plan_file(text, user, host, names, act)
        except Unparseable as err:
            say(b"dot-forward: fatal: unable to parse this line: " + err.args[0] + b"\n")
            return 111
        except FileDelivery as err:
            say(b"dot-forward: fatal: file delivery " + err.args[0] + b" not supported\n")
            return 111
        if not found:
            if not doit:
                say(b"skipping empty file " + os.fsencode(path) + b"\n")
            continue
        steps = found
        break
    else:
        if not doit:
            say(b"direct delivery\n")
        return 0

    direct = any(kind == "direct" for kind, _ in steps)
    if not doit:
        if direct:
            say(b"direct delivery\n")
        return 0 if direct else 99
    recipients = []
    for kind, value in steps:
        if kind == "program":
            run_program(value)
        elif kind == "forward":
            recipients.append(value)
    if recipients:
        forward(recipients, root)
    return 0 if direct else 99


def forward(recipients: list[bytes], root: str) -> None:
    sender = os.environb.get(b"NEWSENDER", b"")
    dtline = os.environb.get(b"DTLINE", b"")
    try:
        os.lseek(0, 0, os.SEEK_SET)
    except OSError:
        pass
    try:
        result, qp = forwarding.forward(0, dtline, sender, recipients, root=root)
    except forwarding.ReadError as err:
        exitcodes.fatal_sys(PROG, "unable to read message", err.err)
    if result.code != 0:
        exitcodes.fatal(PROG, f"unable to forward message: {result.text}",
                        100 if result.permanent else 111)
    say(b"dot-forward: info: qp %d\n" % qp)
