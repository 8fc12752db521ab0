"""qmail-qmtpd: receive mail via QMTP (qmail-qmtpd(8)).

    tcpserver 0 209 qmail-qmtpd

Reads QMTP packages on stdin, each: a netstring holding a mode byte (LF: lines end in LF;
CR: lines end in CRLF, converted) and the message, a netstring with the envelope sender,
and a netstring of recipient netstrings. Each message goes to qmail-queue with a
Received line ("with QMTP"); the answer is one netstring per recipient, in order:
"Kok TIME qp PID" (or qmail-queue's Z/D text) for each accepted one, and
"Dsorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)" or
"Dsorry, I can't handle that recipient (#5.1.3)" for refused ones. Recipients must be in
control/rcpthosts (or control/morercpthosts.cdb) unless $RELAYCLIENT is set, whose value
is appended to each recipient. control/databytes (or $DATABYTES) limits the message size.

Exit codes: 0 when the client closes; 100 on a protocol violation; 111 on a resource
problem (control files, a length beyond 200000000, the 3600-second session limit).
Environment: RELAYCLIENT, DATABYTES, TCPREMOTEHOST, TCPREMOTEINFO, TCPREMOTEIP,
TCPLOCALHOST, TCPLOCALIP, QMAILQUEUE, QMAIL_ROOT.
"""

import os
import sys

from qmail.config import control, install_root
from qmail.formats import netstring
from qmail.mailin import netstring_server, rcpthosts, smtp_received
from qmail.queue import queue_client
from ucspi.runtime import exitcodes, sgetopt

SESSION_LIMIT = 3600
ADDRESS_LIMIT = 1000
REFUSED_DOMAIN = b"66:Dsorry, that domain isn't in my list of allowed rcpthosts (#5.7.1),"
REFUSED_OTHER = b"46:Dsorry, I can't handle that recipient (#5.1.3),"
BAD_SENDER = b"Dunacceptable sender (#5.1.7)"
TOO_BIG = b"Dsorry, that message size exceeds my databytes limit (#5.3.4)"


def crlf_to_lf(chunks):
    """The message with each CRLF turned into LF (a CR elsewhere stays)."""
    pending_cr = False
    for chunk in chunks:
        if pending_cr:
            chunk = b"\r" + chunk
            pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            pending_cr = True
        yield chunk.replace(b"\r\n", b"\n")
    if pending_cr:
        yield b"\r"


def package(reader: netstring.Reader, hosts, relayclient: bytes | None, databytes: int,
            ident, env) -> bytes:
    """Read one QMTP package, queue it, and return the answer netstrings."""
    length = reader.length()
    if length == 0:
        raise netstring.Malformed("empty message")
    queue = queue_client.Queue(env=env)
    mode = reader.byte()
    length -= 1
    if mode not in (10, 13):
        raise netstring.Malformed("bad mode byte")
    local, remoteip, remotehost, remoteinfo = ident
    queue.put(smtp_received.received(b"QMTP", local, remoteip, remotehost, remoteinfo, None))
    size = 0
    body = reader.chunks(length)
    if mode == 13:
        body = crlf_to_lf(body)
    elif databytes and length > databytes:
        queue.fail()
    for piece in body:
        size += len(piece)
        queue.put(piece)
    too_big = bool(databytes) and size > databytes
    if too_big:
        queue.fail()
    reader.comma()

    length = reader.length()
    if length >= ADDRESS_LIMIT:
        reader.take(length)
        sender = b""
        sender_ok = False
    else:
        sender = reader.take(length)
        sender_ok = b"\0" not in sender
    reader.comma()
    queue.from_(sender)
    if not sender_ok:
        queue.fail()

    verdicts = []
    accepted = False
    biglen = reader.length()
    while biglen > 0:
        length = 0
        while True:
            if not biglen:
                raise netstring.Malformed("recipient length runs past the list")
            ch = reader.byte()
            biglen -= 1
            if ch == 0x3A:
                break
            if not 0x30 <= ch <= 0x39:
                raise netstring.Malformed("bad length digit")
            length = length * 10 + ch - 0x30
            if length > netstring.LENGTH_LIMIT:
                raise netstring.TooLong("recipient length")
        if length >= biglen:
            raise netstring.Malformed("recipient longer than the list")
        verdict = None
        if length + len(relayclient or b"") >= ADDRESS_LIMIT:
            reader.take(length)
            verdict = "L"
        else:
            rcpt = reader.take(length)
            if b"\0" in rcpt:
                verdict = "N"
            if relayclient is not None:
                rcpt += relayclient
            elif not hosts.allows(rcpt.decode("latin-1")):
                verdict = "D"
            if verdict is None:
                queue.to(rcpt)
                accepted = True
        verdicts.append(verdict)
        reader.comma()
        biglen -= length + 1
    reader.comma()

    if not accepted:
        queue.fail()
    result = netstring_server.answer(queue.close(), queue.pid)
    if not sender_ok:
        result = BAD_SENDER
    if too_big:
        result = TOO_BIG
    answers = []
    for verdict in verdicts:
        if verdict is None:
            answers.append(netstring.encode(result))
        elif verdict == "D":
            answers.append(REFUSED_DOMAIN)
        else:
            answers.append(REFUSED_OTHER)
    return b"".join(answers)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    env = dict(os.environ)
    netstring_server.limit_session(SESSION_LIMIT)
    root = install_root.root(env)
    if not os.path.isdir(root):
        return exitcodes.TEMPORARY
    try:
        hosts = rcpthosts.Rcpthosts(root)
        databytes = control.read_int(root, "databytes") or 0
    except control.ControlTrouble:
        return exitcodes.TEMPORARY
    if env.get("DATABYTES") is not None:
        databytes = sgetopt.scan_ulong(env["DATABYTES"])
    relay = env.get("RELAYCLIENT")
    relayclient = None if relay is None else os.fsencode(relay)
    ident = netstring_server.identity(env)
    reader = netstring.Reader(0)
    while True:
        try:
            answer = package(reader, hosts, relayclient, databytes, ident, env)
        except netstring.Incomplete:
            return 0
        except netstring.Malformed:
            return exitcodes.PERMANENT
        except (netstring.TooLong, control.ControlTrouble):
            return exitcodes.TEMPORARY
        except OSError:
            return 0  # the client's side failed (saferead)
        netstring_server.write_all(answer)
