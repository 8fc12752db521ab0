"""qmail-inject: prepare a message read on stdin and give it to qmail-queue.

    qmail-inject [ -nNaAhH ] [ -fsender ] [ recipient ... ]

The header is rewritten as qmail-inject(8) says: addresses in sender and recipient fields
are completed (no @: @defaulthost; a host without a dot: .defaultdomain; a host ending in
+: the + replaced by .plusdomain; routes, a trailing dot or @ dropped), Date:, Message-ID:,
From: (or their Resent- forms) added when missing, "Cc: recipient list not shown: ;" when
there is no To: or Cc:, and Bcc:, Resent-Bcc:, Return-Path: and Content-Length: removed.

Recipients: -a the arguments only; -h the header only (To, Cc, Bcc, Apparently-To; or the
Resent- ones when the message is resent); -H both; -A (default) the arguments if any, else
the header. Sender: -f, else Return-Path:, else QMAILSUSER/QMAILUSER... @QMAILSHOST/
QMAILHOST... -n prints the message (with its Return-Path) instead of queueing it.

Environment: QMAILINJECT (flags c s f i r m), QMAILHOST/MAILHOST, QMAILSHOST, QMAILUSER/
MAILUSER/USER/LOGNAME, QMAILSUSER, QMAILNAME/MAILNAME/NAME, QMAILDEFAULTDOMAIN,
QMAILDEFAULTHOST, QMAILPLUSDOMAIN, QMAILIDHOST, QMAILMFTFILE, QMAILQUEUE, QMAIL_ROOT.
Control: defaultdomain, defaulthost, plusdomain, idhost (each falling back to me).

Exit codes: 0 queued (or printed); 100 a header field or address it cannot parse, a bad
option, or a permanent refusal by qmail-queue; 111 temporary trouble.
"""

import os
import sys
import time

from qmail.config import control, install_root
from qmail.formats import address, date822
from qmail.queue import queue_client
from qmail.formats.address import AT, ATOM, COLON, COMMENT, DOT, LEFT, LITERAL, QUOTE, RIGHT
from ucspi.runtime import durable, exitcodes, sgetopt

PROG = "qmail-inject"
LINELEN = 80

RESENT_FIELDS = ("resent-sender", "resent-from", "resent-reply-to", "resent-to",
                 "resent-cc", "resent-bcc", "resent-date", "resent-message-id")
DROPPED_FIELDS = ("bcc", "resent-bcc", "return-path", "content-length")


def die(msg: bytes, code: int) -> None:
    """qmail-inject's own message shapes (not all end in a newline)."""
    _stderr(b"qmail-inject: fatal: " + msg)
    raise SystemExit(code)


def _stderr(data: bytes) -> None:
    try:
        sys.stderr.flush()
        os.write(2, data)
    except OSError:
        pass


def die_unparseable(line: bytes) -> None:
    die(b"unable to parse this line:\n" + line, exitcodes.PERMANENT)


def die_read() -> None:
    die(b"read error\n", exitcodes.TEMPORARY)


def tokenise_or_die(text: bytes) -> list:
    try:
        return address.tokenise(text)
    except address.Unparseable:
        die_unparseable(text)


def control_value(root: str, name: str) -> bytes:
    """control/NAME, else control/me, else the literal NAME (qmail's control_rldef)."""
    try:
        value = control.read_line(root, name)
        if value is None:
            value = control.read_line(root, "me")
    except control.ControlTrouble:
        die_read()
    return (name if value is None else value).encode("latin-1")


def read_list_file(path: str) -> list[bytes] | None:
    """A list file given by path (QMAILMFTFILE): lines without trailing blanks or comments."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        die_read()
    lines = [raw.rstrip(b" \t") for raw in data.split(b"\n")]
    return [line for line in lines if line and not line.startswith(b"#")]


class Injector:
    """One message's rewriting state (qmail-inject.c's globals)."""

    def __init__(self, env, root: str):
        self.env = env
        self.starttime = int(time.time())
        flags = env.get("QMAILINJECT", "")
        self.name_comment = "c" in flags
        self.delete_sender = "s" in flags
        self.delete_from = "f" in flags
        self.delete_messid = "i" in flags
        self.hack_recip = "r" in flags
        self.hack_mess = "m" in flags

        def get(*names):
            for name in names:
                value = env.get(name)
                if value is not None:
                    return os.fsencode(value)
            return None

        self.mailhost = get("QMAILHOST", "MAILHOST")
        self.mailrhost = get("QMAILSHOST") or self.mailhost
        self.mailuser = get("QMAILUSER", "MAILUSER", "USER", "LOGNAME") or b"anonymous"
        self.mailruser = get("QMAILSUSER") or self.mailuser
        self.fullname = get("QMAILNAME", "MAILNAME", "NAME")

        mft_file = env.get("QMAILMFTFILE")
        self.mft = None
        if mft_file:
            lines = read_list_file(mft_file)
            if lines is not None:
                self.mft = {line.lower() for line in lines}

        if not os.path.isdir(root):
            die(b"internal bug\n", exitcodes.TEMPORARY)
        self.defaultdomain = self._control(root, "defaultdomain", "QMAILDEFAULTDOMAIN", b".")
        self.defaulthost = self._control(root, "defaulthost", "QMAILDEFAULTHOST", b"@")
        self.plusdomain = self._control(root, "plusdomain", "QMAILPLUSDOMAIN", b".")
        self.idhost = control_value(root, "idhost")
        if env.get("QMAILIDHOST") is not None:
            self.idhost = os.fsencode(env["QMAILIDHOST"])

        self.sender: bytes | None = None
        self.seen: set[str] = set()
        self.saved: list[bytes] = []
        self.reciplist: list[bytes] = []
        self.hrlist: list[bytes] = []
        self.hrrlist: list[bytes] = []
        self.tocclist: list[bytes] = []
        self.resent = False
        self.queue = None
        self.out: list[bytes] = []  # when printing (-n)

    def _control(self, root: str, name: str, variable: str, prefix: bytes) -> list:
        value = control_value(root, name)
        if self.env.get(variable) is not None:
            value = os.fsencode(self.env[variable])
        return tokenise_or_die(prefix + value)

    # Address rewriting: each rule gets the address reversed (rightmost token first).

    def rewrite_generic(self, addr: list) -> list:
        if not addr:
            return addr  # <> stays <>
        if len(addr) >= 2 and addr[1][0] == AT and addr[0] == (LITERAL, b""):
            return addr  # foo@[] stays as it is
        if addr[-1][0] == AT:  # a source route: keep only what follows its colon
            while addr:
                if addr.pop()[0] == COLON:
                    break
        if not addr:
            return addr
        if addr[0][0] == DOT:
            addr = addr[1:]
        if not addr:
            return addr
        if addr[0][0] == AT:
            addr = addr[1:]
        if not addr:
            return addr
        if not any(kind == AT for kind, _ in addr):
            addr = list(reversed(self.defaulthost)) + addr
        if addr[0][0] == ATOM and addr[0][1].endswith(b"+"):
            addr = list(reversed(self.plusdomain)) + [(ATOM, addr[0][1][:-1])] + addr[1:]
        domain = []
        for token in addr:
            if token[0] == AT:
                break
            domain.append(token[0])
        if DOT not in domain and LITERAL not in domain:
            addr = list(reversed(self.defaultdomain)) + addr
        return addr

    def set_return(self, addr: list) -> None:
        if self.sender is None:
            self.sender = address.unquote(list(reversed(addr)))
            if self.hack_recip:
                self.sender += b"-@[]"

    def rw_return(self, addr):
        addr = self.rewrite_generic(addr)
        self.set_return(addr)
        return addr

    def rw_sender(self, addr):
        return self.rewrite_generic(addr)

    def rw_hrr(self, addr):
        addr = self.rewrite_generic(addr)
        self.hrrlist.append(address.unquote(list(reversed(addr))))
        return addr

    def rw_hr(self, addr):
        addr = self.rewrite_generic(addr)
        self.hrlist.append(address.unquote(list(reversed(addr))))
        return addr

    def rw_tocc(self, addr):
        addr = self.rw_hr(addr)
        self.tocclist.append(self.hrlist[-1])
        return addr

    def rewrite_field(self, line: bytes, rewrite) -> bytes:
        """The field with its address list rewritten and refolded; exit 100 if unparseable."""
        try:
            tokens = address.tokenise(line)
            return address.unparse(address.address_list(tokens, rewrite), LINELEN)
        except address.Unparseable:
            die_unparseable(line)

    # The message.

    def header_field(self, line: bytes) -> None:
        kind = address.field_known(line)
        if (self.delete_from and kind == "from") or (self.delete_messid and kind == "message-id") \
                or (self.delete_sender and kind == "return-path"):
            return
        if kind:
            self.seen.add(kind)
        elif not address.field_valid(line):
            die(b"invalid header field: " + line, exitcodes.PERMANENT)
        rewrite = {
            "to": self.rw_tocc, "cc": self.rw_tocc,
            "bcc": self.rw_hr, "apparently-to": self.rw_hr,
            "resent-to": self.rw_hrr, "resent-cc": self.rw_hrr, "resent-bcc": self.rw_hrr,
            "return-path": self.rw_return,
        }.get(kind)
        if rewrite is None and kind in ("sender", "from", "reply-to", "return-receipt-to",
                                        "errors-to", "resent-sender", "resent-from",
                                        "resent-reply-to"):
            rewrite = self.rw_sender
        if rewrite is not None:
            line = self.rewrite_field(line, rewrite)
        if kind not in DROPPED_FIELDS:
            self.saved.append(line)

    def recipient_argument(self, arg: bytes) -> None:
        text = address.quote2(arg)
        try:
            tokens = address.tokenise(text)
        except address.Unparseable:
            die(b"unable to parse address: " + arg + b"\n", exitcodes.PERMANENT)
        tokens = self.rewrite_generic(list(reversed(tokens)))
        self.reciplist.append(address.unquote(list(reversed(tokens))))

    def sender_option(self, arg: bytes) -> None:
        text = address.quote2(arg)
        tokens = tokenise_or_die(text)
        tokens = self.rewrite_generic(list(reversed(tokens)))
        self.sender = address.unquote(list(reversed(tokens)))

    def _made_field(self, tokens: list, rewrite) -> bytes:
        """A field built from tokens, printed, re-read and rewritten as a header field."""
        text = address.unparse(tokens, LINELEN)
        tokens = tokenise_or_die(text)
        try:
            return address.unparse(address.address_list(tokens, rewrite), LINELEN)
        except address.Unparseable:
            die_unparseable(text)

    def default_from(self) -> bytes:
        tokens = [(ATOM, b"From"), (COLON, b"")]
        named = self.fullname is not None
        if named and not self.name_comment:
            tokens += [(QUOTE, self.fullname), (LEFT, b"")]
        kind = QUOTE if address.quote_need(self.mailuser) else ATOM
        tokens.append((kind, self.mailuser))
        if self.mailhost is not None:
            tokens += [(AT, b""), (ATOM, self.mailhost)]
        if named and not self.name_comment:
            tokens.append((RIGHT, b""))
        if named and self.name_comment:
            tokens.append((COMMENT, self.fullname))
        return self._made_field(tokens, self.rw_sender)

    def default_return_path(self) -> None:
        user = self.mailruser
        if self.hack_mess:
            user += b"-%d.%d" % (self.starttime, os.getpid())
        if self.hack_recip:
            user += b"-"
        tokens = [(ATOM, b"Return-Path"), (COLON, b""), (QUOTE, user)]
        if self.mailrhost is not None:
            tokens += [(AT, b""), (ATOM, self.mailrhost)]
        self._made_field(tokens, self.rw_return)

    def put(self, data: bytes) -> None:
        if self.queue is not None:
            self.queue.put(data)
        else:
            self.out.append(data)
            if len(self.out) > 256:
                self.flush()

    def flush(self) -> None:
        data = b"".join(self.out)
        self.out = []
        try:
            durable.write_all(1, data)
        except OSError:
            pass  # qmail-inject ignores write errors on its output (substdio_flush)

    def finish_header(self, queue: bool, root: str) -> None:
        self.resent = any(name in self.seen for name in RESENT_FIELDS)
        if self.sender is None:
            self.default_return_path()
        if not queue:
            self.put(b"Return-Path: <" + address.quote2(self.sender) + b">\n")
        else:
            self.queue = queue_client.Queue(root)
        prefix = b"Resent-" if self.resent else b""
        names = ("resent-date", "resent-message-id", "resent-from", "resent-to", "resent-cc") \
            if self.resent else ("date", "message-id", "from", "to", "cc")
        if names[0] not in self.seen:
            self.put(prefix + b"Date: " + date822.fmt(self.starttime).encode() + b"\n")
        if names[1] not in self.seen:
            msgid = address.format_message_id(self.idhost, os.getpid(), self.starttime)
            self.put(prefix + b"Message-ID: " + msgid + b"\n")
        if names[2] not in self.seen:
            self.put(prefix + self.default_from())
        if names[3] not in self.seen and names[4] not in self.seen:
            self.put(prefix + b"Cc: recipient list not shown: ;\n")
        if not self.resent:
            self.finish_mft()
        for line in self.saved:
            self.put(line)

    def finish_mft(self) -> None:
        if self.mft is None or "mail-followup-to" in self.seen:
            return
        if not any(addr.lower() in self.mft for addr in self.tocclist):
            return
        quoted = [address.quote2(addr) for addr in reversed(self.tocclist)]
        self.put(b"Mail-Followup-To: " + b",\n  ".join(quoted) + b"\n")

    def finish(self, header_recipients: bool) -> int:
        if self.queue is None:
            self.flush()
            return 0
        self.queue.from_(self.sender)
        for rcpt in self.reciplist:
            self.queue.to(rcpt)
        if header_recipients:
            for rcpt in (self.hrrlist if self.resent else self.hrlist):
                self.queue.to(rcpt)
        result = self.queue.close()
        if result.code == 0 and not result.text:
            return 0
        die(result.text.encode("utf-8", "surrogateescape") + b"\n",
            exitcodes.PERMANENT if result.permanent else exitcodes.TEMPORARY)
        return 111


def input_lines():
    """stdin's lines as bytes; a read error is qmail-inject's read error."""
    stream = sys.stdin.buffer
    while True:
        try:
            line = stream.readline(65536)  # long lines arrive in pieces
        except OSError:
            die_read()
        if not line:
            return
        yield line


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    env = os.environ
    root = install_root.root(env)
    injector = Injector(env, root)
    try:
        opts, args = sgetopt.getopt(argv, "aAhHnNf:", PROG)
    except sgetopt.UsageError:
        return exitcodes.PERMANENT
    strategy = "default"
    queue = True
    for opt, value in opts:
        if opt == "a":
            strategy = "args"
        elif opt == "A":
            strategy = "default"
        elif opt == "h":
            strategy = "header"
        elif opt == "H":
            strategy = "both"
        elif opt == "n":
            queue = False
        elif opt == "N":
            queue = True
        elif opt == "f":
            injector.sender_option(os.fsencode(value))
    if strategy == "default":
        strategy = "args" if args else "header"
    if strategy != "header":
        for arg in args:
            injector.recipient_argument(os.fsencode(arg))
    for kind, data in address.split_header(input_lines()):
        if kind == "field":
            injector.header_field(data)
        elif kind == "end":
            injector.finish_header(queue, root)
        else:
            injector.put(data)
    return injector.finish(header_recipients=strategy != "args")
