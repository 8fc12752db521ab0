"""qmail-remote: send a message to a remote host by SMTP (qmail-remote(8)).

Synopsis: qmail-remote host sender recip [ recip ... ]

Reads the message from descriptor 0 and delivers it to the mail exchangers of host (its
MX records, best preference first, equal preferences in random order; its A record when
it has no MX; a literal [1.2.3.4] as is), or to the relay control/smtproutes names for
host: "domain:relay" or "domain:relay:port", matched on host, then each .suffix of it,
then the empty domain; an empty relay means "use the MX records".  Exchangers that are
this host, and all worse ones, are skipped (so a misconfigured MX cannot loop), unless
a route chose the relay.  The dialogue is qmail 1.03's: HELO helohost, MAIL FROM,
RCPT TO for each recipient, DATA with lines dot-stuffed and ended by CRLF, QUIT.

Output on descriptor 1 (read by qmail-rspawn), each record \\0-terminated: one per
recipient, r (accepted), h (rejected for good) or s (rejected for now) followed by the
reason; then one K (delivered), Z (try again later) or D (failed for good) followed by
a human-readable report, including what the remote host said.  Exit code 0 whatever
happened (the records say it).

Control files: helohost (default me), smtproutes, timeoutconnect (60), timeoutremote
(1200).  Environment: QMAIL_ROOT, DNSCACHEIP (ucspi/runtime/dns_lookup.py).
"""

import ipaddress
import os
import random
import select
import signal
import socket
import sys

import dns.exception
import dns.resolver

from qmail.formats import address as address_822
from qmail.config import control, install_root, ipme
from ucspi.runtime import dns_lookup, durable

PORT_SMTP = 25
HUGESMTPTEXT = 5000


class Done(Exception):
    """The final record has been written: stop."""


class Remote:
    def __init__(self):
        self.out = bytearray()
        self.partner = ""
        self.sock: socket.socket | None = None
        self.timeout = 1200
        self.critical = False
        self.smtptext = bytearray()
        self.inbuf = b""

    # --- output records ------------------------------------------------------------
    def put(self, text: str | bytes) -> None:
        self.out += text.encode("latin-1") if isinstance(text, str) else text

    def zero(self) -> None:
        self.out += b"\0"

    def die(self, text: str | bytes = b"") -> None:
        """The final record, then stop."""
        self.put(text)
        self.zero()
        raise Done

    def put_smtptext(self) -> None:
        if self.smtptext:
            self.put(b"Remote host said: " + bytes(self.smtptext).replace(b"\0", b"?"))
            self.smtptext.clear()

    def dropped(self) -> None:
        self.put(f"ZConnected to {self.partner} but connection died. ")
        if self.critical:
            self.put("Possible duplicate! ")
        self.die("(#4.4.2)\n")

    # --- the SMTP connection -------------------------------------------------------
    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            _, ready, _ = select.select([], [self.sock], [], self.timeout)
            if not ready:
                self.dropped()
            try:
                view = view[self.sock.send(view):]
            except OSError:
                self.dropped()

    def getch(self) -> int:
        if not self.inbuf:
            ready, _, _ = select.select([self.sock], [], [], self.timeout)
            if not ready:
                self.dropped()
            try:
                self.inbuf = self.sock.recv(128)
            except OSError:
                self.inbuf = b""
            if not self.inbuf:
                self.dropped()
        ch = self.inbuf[0]
        self.inbuf = self.inbuf[1:]
        if ch != 13 and len(self.smtptext) < HUGESMTPTEXT:
            self.smtptext.append(ch)
        return ch

    def smtpcode(self) -> int:
        """The reply's code; its text (all lines, CR removed) is kept in smtptext."""
        self.smtptext.clear()
        code = 0
        for _ in range(3):
            code = code * 10 + (self.getch() - 48)
        ch = self.getch()
        while ch == ord("-"):
            while ch != 10:
                ch = self.getch()
            for _ in range(4):
                ch = self.getch()
        while ch != 10:
            ch = self.getch()
        return code

    def quit(self, prepend: str, append: str) -> None:
        try:
            self.sock.send(b"QUIT\r\n")  # waiting for the answer is pointless
        except OSError:
            pass
        self.put(prepend + self.partner + append + ".\n")
        self.put_smtptext()
        self.die()

    def blast(self, message) -> None:
        """The message, dot-stuffed, LF -> CRLF, then the final dot."""
        out = bytearray()
        while True:
            try:
                line = message.readline()
            except OSError:
                self.die("ZUnable to read message. (#4.3.0)\n")
            if not line:
                break
            if not line.endswith(b"\n"):
                self.die("DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n")
            if line.startswith(b"."):
                out += b"."
            out += line[:-1] + b"\r\n"
            if len(out) >= 65536:
                self.send(bytes(out))
                out.clear()
        self.critical = True
        self.send(bytes(out) + b".\r\n")

    def smtp(self, helohost: bytes, sender: bytes, recips: list[bytes], message) -> None:
        if self.smtpcode() != 220:
            self.quit("ZConnected to ", " but greeting failed")
        self.send(b"HELO " + helohost + b"\r\n")
        if self.smtpcode() != 250:
            self.quit("ZConnected to ", " but my name was rejected")
        self.send(b"MAIL FROM:<" + sender + b">\r\n")
        code = self.smtpcode()
        if code >= 500:
            self.quit("DConnected to ", " but sender was rejected")
        if code >= 400:
            self.quit("ZConnected to ", " but sender was rejected")
        bother = False
        for recip in recips:
            self.send(b"RCPT TO:<" + recip + b">\r\n")
            code = self.smtpcode()
            if code >= 400:
                self.put(("h" if code >= 500 else "s") + self.partner + " does not like recipient.\n")
                self.put_smtptext()
                self.zero()
            else:
                self.put("r")
                self.zero()
                bother = True
        if not bother:
            self.quit("DGiving up on ", "")
        self.send(b"DATA\r\n")
        code = self.smtpcode()
        if code >= 500:
            self.quit("D", " failed on DATA command")
        if code >= 400:
            self.quit("Z", " failed on DATA command")
        self.blast(message)
        code = self.smtpcode()
        self.critical = False
        if code >= 500:
            self.quit("D", " failed after I sent the message")
        if code >= 400:
            self.quit("Z", " failed after I sent the message")
        self.quit("K", " accepted message")


def find_route(routes: list[str], host: str) -> str | None:
    """smtproutes' relay for host ("relay" or "relay:port"), None for the MX records."""
    table = {}
    for line in routes:
        key, colon, relay = line.partition(":")
        if colon:
            table[key.lower()] = relay  # the last duplicate wins, as constmap
    for i in range(len(host) + 1):
        if i == 0 or i == len(host) or host[i] == ".":
            relay = table.get(host[i:].lower())
            if relay is not None:
                return relay or None
    return None


def mangle(address: bytes) -> bytes:
    """The address as qmail-remote sends it: the box quoted as RFC 821 wants it."""
    at = address.rfind(b"@")
    if at < 0:
        return address
    return address_822.quote(address[:at]) + address[at:]


def literal(host: str) -> str | None:
    """The IPv4 address in a [1.2.3.4] host, else None."""
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv4Address(host[1:-1]))
        except ValueError:
            return None
    return None


class NoHost(Exception):
    """The name does not exist (permanent)."""


def ask(host: str, rdtype: str, resolver):
    """The answer for host's rdtype records, empty when it has none. NoHost when the name
    does not exist; DNSTrouble when no answer can be had now."""
    try:
        return resolver.resolve(host, rdtype, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        raise NoHost from None
    except (dns.exception.DNSException, OSError) as err:
        raise dns_lookup.DNSTrouble(str(err)) from err


def resolve_a(host: str, resolver) -> list[str]:
    return sorted({rr.address for rr in ask(host, "A", resolver)})


def exchangers(host: str, use_mx: bool, resolver) -> list[tuple[int, str]]:
    """(preference, IPv4 address) to try, best first (equal preferences shuffled)."""
    ip = literal(host)
    if ip:
        return [(0, ip)]
    if not use_mx:
        return [(0, a) for a in resolve_a(host, resolver)]
    answer = ask(host, "MX", resolver)
    if not answer.rrset:
        return [(0, a) for a in resolve_a(host, resolver)]
    found = []
    for rr in answer:
        name = rr.exchange.to_text(omit_final_dot=True)
        try:
            for address in resolve_a(name, resolver):
                found.append((rr.preference, random.random(), address))
        except NoHost:
            continue
    found.sort()
    return [(pref, address) for pref, _, address in found]


def deliver(remote: Remote, argv: list[str], message) -> None:
    root = install_root.root()
    try:
        os.chdir(root)
    except OSError:
        remote.die("ZUnable to switch to home directory. (#4.3.0)\n")
    try:
        remote.timeout = control.int_or_default(root, "timeoutremote")
        timeoutconnect = control.int_or_default(root, "timeoutconnect")
        helohost = control.line_or_default(root, "helohost")
        routes = control.read_lines(root, "smtproutes") or []
    except control.ControlTrouble:
        remote.die("ZUnable to read control files. (#4.3.0)\n")
    host = argv[1]
    port = PORT_SMTP
    relay = find_route(routes, host)
    if relay is not None:
        name, colon, port_text = relay.partition(":")
        if colon:
            digits = ""
            for ch in port_text:
                if not ch.isdigit():
                    break
                digits += ch
            port = int(digits or "0")
        host = name
    sender = mangle(os.fsencode(argv[2]))
    recips = [mangle(os.fsencode(r)) for r in argv[3:]]
    try:
        ips = exchangers(host, relay is None, dns_lookup.resolver())
    except NoHost:
        remote.die("DSorry, I couldn't find any host named " + _safe(host) + ". (#5.1.2)\n")
    except dns_lookup.DNSTrouble:
        remote.die("ZSorry, I couldn't find any host by that name. (#4.1.2)\n")
    if not ips:  # names but no address: qmail treats it as trouble in the DNS
        remote.die("ZSorry, I couldn't find any host by that name. (#4.1.2)\n")
    prefme = 100000
    if relay is not None:
        prefme = 300000
    else:
        try:
            mine = ipme.addresses()
        except ipme.Trouble:
            remote.die("ZSystem resources temporarily unavailable. (#4.3.0)\n")
        for pref, address in ips:
            if address in mine and pref < prefme:
                prefme = pref
    usable = [(pref, address) for pref, address in ips if pref < prefme]
    if not usable:
        remote.die("DSorry. Although I'm listed as a best-preference MX or A for that host,\n"
                   "it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n")
    for _, address in usable:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeoutconnect)
        try:
            sock.connect((address, port))
        except OSError:
            sock.close()
            continue
        sock.setblocking(False)
        remote.sock = sock
        remote.partner = address
        remote.smtp(helohost.encode("latin-1"), sender, recips, message)
    remote.die("ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n")


def _safe(text: str) -> str:
    return "".join(ch if 33 <= ord(ch) <= 126 else "?" for ch in text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    remote = Remote()
    try:
        if len(argv) < 4:
            remote.die("DI (qmail-remote) was invoked improperly. (#5.3.5)\n")
        with os.fdopen(os.dup(0), "rb") as message:
            deliver(remote, argv, message)
    except Done:
        pass
    try:
        durable.write_all(1, bytes(remote.out))
    except OSError:
        pass
    if remote.sock is not None:
        remote.sock.close()
    return 0
