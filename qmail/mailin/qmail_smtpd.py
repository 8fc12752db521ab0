"""qmail-smtpd: receive mail via SMTP (qmail 1.03's qmail-smtpd(8), plus switchable extensions).

Synopsis: tcpserver ... qmail-smtpd [ HOSTNAME CHECKPROGRAM SUBPROGRAM... ]

Speaks SMTP on descriptors 0 (input) and 1 (output), run by tcpserver, and hands each
message to qmail-queue (queue_client: $QMAILQUEUE, else ROOT/bin/qmail-queue; ours runs
warm). Replies are qmail 1.03's, word for word:
  220 GREETING ESMTP / 250 GREETING (HELO) / 250-GREETING 250-PIPELINING 250 8BITMIME (EHLO)
  250 ok (MAIL, RCPT, NOOP) / 250 flushed (RSET) / 252 (VRFY) / 214 (HELP) / 221 (QUIT)
  354 go ahead / 250 ok TIME qp PID / 451 or 554 + qmail-queue's text / 451 qqt failure
  502 unimplemented / 503 MAIL first / 503 RCPT first / 555 syntax error
  553 badmailfrom / 553 rcpthosts / 552 databytes / 554 too many hops / 451 bare LF
  451 timeout / 421 unable to read controls / 421 unable to figure out my IP addresses.

Extensions, each off unless switched on, as in the common qmail patches:
  SIZE       $SMTPSIZE set: "SIZE n" in EHLO, MAIL ... SIZE=n above databytes refused (552).
  STARTTLS   control/servercert.pem (certificate and key) exists and $DISABLETLS unset;
             TLS 1.2 or later; the session restarts after the handshake.
  AUTH       HOSTNAME CHECKPROGRAM SUBPROGRAM given: AUTH LOGIN PLAIN (and CRAM-MD5 when
             $SMTPAUTH_CRAM is set) checked by CHECKPROGRAM (checkpassword interface, see
             smtp_auth); offered only under TLS unless $FORCETLS is 0; success grants
             relaying as RELAYCLIENT="" would and puts the user in the Received line.
  recipient validation  control/validrcptto.cdb (qmail-newrcpt) exists: unknown users at
             the domains it lists get "550 sorry, no mailbox here by that name. (#5.1.1)".
  greeting delay  $GREETDELAY=n: wait n seconds before the greeting; a client that talks
             first gets 554 and is dropped.

Exit codes: 0 after QUIT; 1 when the session ends otherwise (end of input, timeout, bare
LF, unreadable control files), as qmail-smtpd.

Files: ROOT/control/{me,smtpgreeting,localiphost,timeoutsmtpd,rcpthosts,
morercpthosts.cdb,badmailfrom,databytes,servercert.pem,validrcptto.cdb}.
Environment: QMAIL_ROOT, TCPLOCALHOST, TCPLOCALIP, TCPREMOTEIP, TCPREMOTEHOST,
TCPREMOTEINFO, RELAYCLIENT, DATABYTES, QMAILQUEUE and the switches above.
"""

import os
import ssl
import sys
import time

from qmail.config import control, install_root, ipme
from qmail.mailin import rcpthosts, smtp_auth, smtp_data
from qmail.queue import queue_client
from qmail.mailin import smtp_command, smtp_io, smtp_received, smtp_validrcpt
from qmail.queue import qmail_queue  # noqa: F401  (loaded once in a warm tcpserver for every queue child)
from ucspi.runtime import sgetopt

MAXHOPS = 100
LINE_LIMIT = 65536        # command bytes kept; the rest of a longer line is dropped
RCPT_LIMIT = 50000        # recipients per message (qmail has none; memory has one)

GREETING_VIOLATION = b"554 sorry, SMTP protocol violation: talking before the greeting (#5.5.1)\r\n"
NO_MAILBOX = b"550 sorry, no mailbox here by that name. (#5.1.1)\r\n"
TOO_MANY_RCPTS = b"452 sorry, too many recipients (#4.5.3)\r\n"
BMF = b"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n"
NOGATEWAY = b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n"
UNIMPL = b"502 unimplemented (#5.5.1)\r\n"
SYNTAX = b"555 syntax error (#5.5.4)\r\n"
WANTMAIL = b"503 MAIL first (#5.5.1)\r\n"
WANTRCPT = b"503 RCPT first (#5.5.1)\r\n"
NOOP = b"250 ok\r\n"
VRFY = b"252 send some mail, i'll try my best\r\n"
QQT = b"451 qqt failure (#4.3.0)\r\n"
TIMEOUT = b"451 timeout (#4.4.2)\r\n"
CONTROLS = b"421 unable to read controls (#4.3.0)\r\n"
IPME = b"421 unable to figure out my IP addresses (#4.3.0)\r\n"
STRAY = b"451 See http://pobox.com/~djb/docs/smtplf.html.\r\n"
HOPS = b"554 too many hops, this message is looping (#5.4.6)\r\n"
SIZE = b"552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n"
HELP = b"214 qmail home page: http://pobox.com/~djb/qmail.html\r\n"
TLS_READY = b"220 ready for tls\r\n"
TLS_UNAVAILABLE = b"454 TLS not available due to temporary reason (#4.3.0)\r\n"
TLS_NOPARAM = b"501 Syntax error (no parameters allowed) (#5.5.4)\r\n"
AUTH_UNAVAILABLE = b"503 auth not available (#5.3.3)\r\n"
AUTH_DONE = b"503 you're already authenticated (#5.5.0)\r\n"
AUTH_IN_MAIL = b"503 no auth during mail transaction (#5.5.0)\r\n"


class SessionEnd(Exception):
    """The session is over; args[0] is the exit code."""


class Session:
    """One SMTP conversation: the state qmail-smtpd keeps in globals."""

    def __init__(self, conn: smtp_io.Conn, root: str, env: dict, auth_argv: list[str]):
        self.conn = conn
        self.root = root
        self.env = env
        self.auth_hostname = os.fsencode(auth_argv[0]) if auth_argv else b""
        self.auth_program = auth_argv[1:]
        self.seenmail = False
        self.flagbarf = False
        self.mailfrom = b""
        self.rcptto: list[bytes] = []
        self.authenticated = False
        self.line_cut = False  # this command line was longer than LINE_LIMIT
        self.commands = {
            b"rcpt": self.smtp_rcpt, b"mail": self.smtp_mail, b"data": self.smtp_data,
            b"quit": self.smtp_quit, b"helo": self.smtp_helo, b"ehlo": self.smtp_ehlo,
            b"rset": self.smtp_rset, b"help": self.smtp_help, b"noop": self.smtp_noop,
            b"vrfy": self.smtp_vrfy, b"starttls": self.smtp_starttls, b"auth": self.smtp_auth,
        }

    def setup(self) -> None:
        """Read the control files and the environment (qmail-smtpd's setup())."""
        root, env = self.root, self.env
        me = control.read_line(root, "me")
        greeting = control.read_line(root, "smtpgreeting")
        if greeting is None:
            greeting = me
        if greeting is None:
            raise control.ControlTrouble("no control/me")
        self.greeting = greeting.encode("latin-1")
        liphost = control.read_line(root, "localiphost")
        self.liphost = (liphost if liphost is not None else me)
        timeout = control.read_int(root, "timeoutsmtpd")
        self.conn.timeout = max(timeout if timeout is not None else 1200, 1)
        self.rcpthosts = rcpthosts.Rcpthosts(root)
        self.badmailfrom = {line.encode("latin-1").lower()
                            for line in control.read_lines(root, "badmailfrom") or ()}
        databytes = control.read_int(root, "databytes") or 0
        if "DATABYTES" in env:
            databytes = sgetopt.scan_ulong(env["DATABYTES"])
        self.databytes = databytes
        self.remoteip = os.fsencode(env.get("TCPREMOTEIP", "unknown"))
        self.local = os.fsencode(env.get("TCPLOCALHOST", env.get("TCPLOCALIP", "unknown")))
        self.remotehost = os.fsencode(env.get("TCPREMOTEHOST", "unknown"))
        info = env.get("TCPREMOTEINFO")
        self.remoteinfo = None if info is None else os.fsencode(info)
        relay = env.get("RELAYCLIENT")
        self.relayclient = None if relay is None else os.fsencode(relay)
        self.size_ext = "SMTPSIZE" in env
        self.certificate = control.path(root, "servercert.pem")
        self.tls_offered = ("DISABLETLS" not in env and os.path.exists(self.certificate)
                            and self.conn.can_starttls())
        self.auth_cleartext = env.get("FORCETLS") == "0"
        self.auth_mechanisms = [b"LOGIN", b"PLAIN"] + ([b"CRAM-MD5"] if "SMTPAUTH_CRAM" in env else [])
        self.validate = os.path.exists(control.path(root, smtp_validrcpt.CDB))
        self.dohelo(self.remotehost)

    def dohelo(self, arg: bytes) -> None:
        self.helohost = arg
        self.fakehelo = None if arg.lower() == self.remotehost.lower() else arg

    def out(self, data: bytes) -> None:
        self.conn.out(data)

    def greet(self, code: bytes) -> None:
        self.out(code + self.greeting)

    def auth_available(self) -> bool:
        return bool(self.auth_program) and (self.conn.tls is not None or self.auth_cleartext)

    # the commands

    def smtp_helo(self, arg: bytes) -> None:
        self.greet(b"250 ")
        self.out(b"\r\n")
        self.seenmail = False
        self.dohelo(arg)

    def smtp_ehlo(self, arg: bytes) -> None:
        lines = [self.greeting, b"PIPELINING", b"8BITMIME"]
        if self.size_ext:
            lines.append(b"SIZE %d" % self.databytes if self.databytes else b"SIZE")
        if self.tls_offered and self.conn.tls is None:
            lines.append(b"STARTTLS")
        if self.auth_available() and not self.authenticated:
            mechanisms = b" ".join(self.auth_mechanisms)
            lines += [b"AUTH " + mechanisms, b"AUTH=" + mechanisms]
        for line in lines[:-1]:
            self.out(b"250-" + line + b"\r\n")
        self.out(b"250 " + lines[-1] + b"\r\n")
        self.seenmail = False
        self.dohelo(arg)

    def smtp_rset(self, arg: bytes) -> None:
        self.seenmail = False
        self.out(b"250 flushed\r\n")

    def smtp_noop(self, arg: bytes) -> None:
        self.out(NOOP)

    def smtp_vrfy(self, arg: bytes) -> None:
        self.out(VRFY)

    def smtp_help(self, arg: bytes) -> None:
        self.out(HELP)

    def smtp_quit(self, arg: bytes) -> None:
        self.greet(b"221 ")
        self.out(b"\r\n")
        self.conn.flush()
        raise SessionEnd(0)

    def smtp_unimpl(self, arg: bytes) -> None:
        self.out(UNIMPL)

    def address(self, arg: bytes) -> bytes | None:
        """addrparse, the localiphost rewrite of user@[my.ip], the 900-byte limit: None
        (555) when too long, or when the line was cut at LINE_LIMIT before the address
        ended (what the rest held could have changed it)."""
        liphost = None if self.liphost is None else self.liphost.encode("latin-1")
        return smtp_command.address(arg, liphost, self.is_me, self.line_cut)

    def is_me(self, ip: str) -> bool:
        try:
            return ipme.is_me(ip)
        except ipme.Trouble:
            self.out(IPME)
            self.conn.flush()
            raise SessionEnd(1)

    def bmfcheck(self, addr: bytes) -> bool:
        if not self.badmailfrom:
            return False
        if addr.lower() in self.badmailfrom:
            return True
        at = addr.rfind(b"@")
        return at != -1 and addr[at:].lower() in self.badmailfrom

    def smtp_mail(self, arg: bytes) -> None:
        addr = self.address(arg)
        if addr is None:
            self.out(SYNTAX)
            return
        if self.size_ext and self.databytes:
            size = smtp_command.size_parameter(arg)
            if size is not None and size > self.databytes:
                self.out(SIZE)
                return
        self.flagbarf = self.bmfcheck(addr)
        self.seenmail = True
        self.rcptto = []
        self.mailfrom = addr
        self.out(b"250 ok\r\n")

    def smtp_rcpt(self, arg: bytes) -> None:
        if not self.seenmail:
            self.out(WANTMAIL)
            return
        addr = self.address(arg)
        if addr is None:
            self.out(SYNTAX)
            return
        if self.flagbarf:
            self.out(BMF)
            return
        text = addr.decode("latin-1")
        if self.relayclient is None and not self.rcpthosts.allows(text):
            self.out(NOGATEWAY)
            return
        if self.validate and not smtp_validrcpt.accepts(self.root, text):
            self.out(NO_MAILBOX)
            return
        if len(self.rcptto) >= RCPT_LIMIT:
            self.out(TOO_MANY_RCPTS)
            return
        if self.relayclient is not None:
            addr += self.relayclient
        self.rcptto.append(addr)
        self.out(b"250 ok\r\n")

    def smtp_data(self, arg: bytes) -> None:
        if not self.seenmail:
            self.out(WANTMAIL)
            return
        if not self.rcptto:
            self.out(WANTRCPT)
            return
        self.seenmail = False
        queue = queue_client.Queue(self.root, self.env)
        if queue.pid < 0:
            queue.close()
            self.out(QQT)
            return
        self.out(b"354 go ahead\r\n")
        protocol = b"SMTP"
        if self.conn.tls is not None:
            protocol = b"(" + (self.conn.tls.cipher() or ("TLS",))[0].encode() + b" encrypted) SMTP"
        queue.put(smtp_received.received(protocol, self.local, self.remoteip, self.remotehost,
                                         self.remoteinfo, self.fakehelo))
        reader = smtp_data.DataReader()
        room = self.databytes + 1 if self.databytes else 0  # qmail's bytestooverflow
        oversized = False
        while not reader.done:
            try:
                chunk = reader.feed(self.conn.read_some())
            except smtp_data.StrayNewline:
                self.out(STRAY)
                self.conn.close_after_reply()
                raise SessionEnd(1)
            if oversized:
                continue
            if room:
                if len(chunk) >= room:
                    oversized = True
                    queue.fail()
                    continue
                room -= len(chunk)
            queue.put(chunk)
        self.conn.unread(reader.rest)
        hops = reader.hops >= MAXHOPS
        if hops:
            queue.fail()
        queue.from_(self.mailfrom)
        for rcpt in self.rcptto:
            queue.to(rcpt)
        result = queue.close()
        if result.ok:
            self.out(b"250 ok %d qp %d\r\n" % (int(time.time()), queue.pid))
        elif hops:
            self.out(HOPS)
        elif oversized:
            self.out(SIZE)
        else:
            self.out((b"554 " if result.permanent else b"451 ") + result.text.encode("utf-8", "replace")
                     + b"\r\n")

    def smtp_starttls(self, arg: bytes) -> None:
        if not self.tls_offered or self.conn.tls is not None:
            self.out(UNIMPL)
            return
        if arg:
            self.out(TLS_NOPARAM)
            return
        try:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(self.certificate)
        except (OSError, ssl.SSLError, ValueError):
            self.out(TLS_UNAVAILABLE)
            return
        self.out(TLS_READY)
        try:
            self.conn.starttls(context)
        except smtp_io.TlsFailed:
            raise SessionEnd(1)
        # RFC 3207: the client starts over with EHLO; nothing said before counts
        self.seenmail = False
        self.dohelo(self.remotehost)

    def smtp_auth(self, arg: bytes) -> None:
        if not self.auth_available():
            self.out(AUTH_UNAVAILABLE)
            return
        if self.authenticated:
            self.out(AUTH_DONE)
            return
        if self.seenmail:
            self.out(AUTH_IN_MAIL)
            return
        mechanism, _, initial = arg.partition(b" ")
        mechanism = mechanism.upper()
        dialogue = smtp_auth.MECHANISMS.get(mechanism)
        if dialogue is None or mechanism not in self.auth_mechanisms:
            self.out(smtp_auth.UNIMPLEMENTED.encode())
            return
        creds = dialogue(self.conn, initial.strip(b" "), self.auth_hostname)
        if creds is None:
            return
        reply = smtp_auth.check(self.auth_program, creds, self.env)
        self.out(reply.encode())
        if reply == smtp_auth.OK:
            self.authenticated = True
            if self.relayclient is None:
                self.relayclient = b""
            self.remoteinfo = creds.user

    # the loop

    def run(self) -> None:
        delay = sgetopt.scan_ulong(self.env.get("GREETDELAY", ""))
        if delay and self.conn.wait_input(delay):
            self.out(GREETING_VIOLATION)
            self.conn.close_after_reply()
            raise SessionEnd(1)
        self.greet(b"220 ")
        self.out(b" ESMTP\r\n")
        commands = self.commands
        extensions = {b"starttls", b"auth"}
        while True:
            line, truncated = self.conn.readline(LINE_LIMIT)
            # A NUL ends the command for qmail too: what was dropped after it never counted.
            self.line_cut = truncated and b"\0" not in line
            verb, arg = smtp_command.split_command(line)
            verb = verb.lower()
            handler = commands.get(verb, self.smtp_unimpl)
            if verb in extensions and not self.extension_on(verb):
                handler = self.smtp_unimpl
            handler(arg)

    def extension_on(self, verb: bytes) -> bool:
        return self.tls_offered if verb == b"starttls" else bool(self.auth_program)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    env = dict(os.environ)
    root = install_root.root(env)
    conn = smtp_io.Conn(0, 1)
    auth_argv = argv[1:] if len(argv) >= 3 else []
    try:
        try:
            os.chdir(root)
            session = Session(conn, root, env, auth_argv)
            session.setup()
        except (OSError, control.ControlTrouble):
            conn.out(CONTROLS)
            conn.flush()
            return 1
        try:
            session.run()
        except control.ControlTrouble:
            conn.out(CONTROLS)
            conn.flush()
            return 1
        except smtp_io.TimedOut:
            conn.out(TIMEOUT)
            conn.flush()
            return 1
    except SessionEnd as end:
        return end.args[0]
    except smtp_io.Disconnected:
        return 1
    return 1
