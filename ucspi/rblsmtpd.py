"""rblsmtpd: block mail from RBL-listed sites in front of any SMTP server (ucspi-tcp 0.88).

Synopsis:
    rblsmtpd [ -b ] [ -B ] [ -c ] [ -C ] [ -t timeout ] [ -r base ] [ -a base ] smtpd [ arg ... ]

Normally rblsmtpd runs smtpd (replacing itself, as exec does). It does not when told to
block the client: then it carries on a limited SMTP conversation itself (220 greeting;
250 to HELO, EHLO, MAIL, RSET, NOOP; 221 to QUIT; the rejection to everything else),
drops it after timeout seconds (default 60; 0: print the rejection once, no greeting),
and logs one line on stderr: `rblsmtpd: IP pid N: 451 text`.

Whether to block:
  $RBLSMTPD set and empty        accept, no look-up;
  $RBLSMTPD=text                 reject with 451 text (temporary);
  $RBLSMTPD=-text                reject with 553 text (permanent);
  $RBLSMTPD unset                look $TCPREMOTEIP up in each source, in command-line order,
                                 until one decides: -r base (TXT of d.c.b.a.base: listed,
                                 its text is the rejection) or -a base (A record of
                                 d.c.b.a.base: anti-listed, accept). Like the Debian build,
                                 no source is consulted unless -r is given.
  -b / -B    553 / 451 (default) for addresses listed by the -r sources that follow.
  -c / -C    fail closed / fail open (default) when a look-up that follows fails
             temporarily: closed treats it as listed ("temporary RBL lookup error") or not
             anti-listed; either way the code can then only be 451.
The rejection text is cut to 200 bytes after the code; bytes outside 32..126 become '?'.

Exit codes: 0 after a blocked conversation; 100 usage; 111 smtpd cannot be run
(`rblsmtpd: fatal: unable to run smtpd: reason`); otherwise smtpd's own.

Environment: RBLSMTPD, TCPREMOTEIP (missing: the look-up name is base itself), DNSCACHEIP
(DNS servers, else /etc/resolv.conf; see ucspi.runtime.dns_lookup), PATH, UCSPI_WARMSTART.
"""

import os
import signal
import sys

import dns.exception
import dns.name

from ucspi.runtime import dns_lookup, durable, exitcodes, filters, sgetopt, launch

PROG = "rblsmtpd"
USAGE = "rblsmtpd [ -b ] [ -R ] [ -t timeout ] [ -r base ] [ -a base ] smtpd [ arg ... ]"
DEFAULT_TIMEOUT = 60
TEXT_LIMIT = 200
FAIL_CLOSED_TEXT = b"temporary RBL lookup error"

# Decisions, in the original's order: undecided, accept, reject (451), bounce (553).
UNDECIDED, ACCEPT, REJECT, BOUNCE = 0, 1, 2, 3

LOCAL = b" rblsmtpd.local\r\n"
ACCEPTING_VERBS = (b"helo", b"ehlo", b"mail", b"rset", b"noop")
# The verb ends at the first space; longer than this it cannot be a command, so a
# line's tail need not be kept (the conversation ignores arguments).
_HEAD = 64


def reverse_ip(ip: bytes) -> bytes:
    """d.c.b.a. for a.b.c.d, as ucspi-tcp builds it (a leading empty field is dropped)."""
    out = []
    i = len(ip)
    while i:
        j = ip.rfind(b".", 0, i) + 1
        out.append(ip[j:i] + b".")
        if not j:
            break
        i = j - 1
    return b"".join(out)


def dotted_labels(name: bytes) -> list[bytes]:
    """The labels of a dotted name as djbdns reads it: empty labels skipped, \\ooo escapes."""
    labels, label = [], bytearray()
    i = 0
    while i < len(name):
        ch = name[i]
        i += 1
        if ch == 0x2E:  # '.'
            if label:
                labels.append(bytes(label))
                label = bytearray()
            continue
        if ch == 0x5C:  # backslash: next byte literally, or up to three octal digits
            if i >= len(name):
                break
            ch = name[i]
            i += 1
            if 0x30 <= ch <= 0x37:
                ch -= 0x30
                for _ in range(2):
                    if i < len(name) and 0x30 <= name[i] <= 0x37:
                        ch = ((ch << 3) + name[i] - 0x30) & 0xFF
                        i += 1
                    else:
                        break
        label.append(ch)
    if label:
        labels.append(bytes(label))
    return labels


def query_name(name: bytes) -> str:
    """The name in dnspython's text form; DNSTrouble when DNS cannot carry it (as djbdns)."""
    try:
        return dns.name.Name([*dotted_labels(name), b""]).to_text()
    except dns.exception.DNSException as err:
        raise dns_lookup.DNSTrouble(str(err)) from err


def txt_text(name: bytes) -> bytes:
    """Every TXT record of name, concatenated in the order served (b"": none)."""
    return "".join(dns_lookup.txt_of(query_name(name))).encode("latin-1")


def has_a_record(name: bytes) -> bool:
    """Whether name has an A record. A name of digits and dots is read as addresses, as
    djbdns's dns_ip4 does, without asking: it counts when it holds a whole one."""
    if all(ch in b"0123456789.[]" for ch in name):
        return name.count(b".") + 1 >= 4
    return bool(dns_lookup.ips_of(query_name(name)))


def rejection(code: bytes, text: bytes) -> bytes:
    """`451 text` with text cut to 200 bytes and unprintable bytes turned into '?'."""
    line = code + b" " + text[:TEXT_LIMIT]
    return bytes(ch if 32 <= ch <= 126 else 0x3F for ch in line)


def reply_to(line: bytes, message: bytes) -> bytes | None:
    """The reply to one command line (without its LF); None means QUIT's 221 and the end."""
    if line.endswith(b"\r"):
        line = line[:-1]
    # The verb ends at the first space; a NUL is an ordinary byte (the original reads it
    # as LF inside the line), so "QUIT\0" is no QUIT.
    verb = line.split(b" ", 1)[0].lower()
    if verb == b"quit":
        return None
    if verb in ACCEPTING_VERBS:
        return b"250" + LOCAL
    return message


def write_all(data: bytes) -> None:
    """Write to the client. A broken pipe ends us by SIGPIPE, as it ends the C tool (its
    parents leave SIGPIPE at default); any other write error is ignored, as there."""
    try:
        durable.write_all(1, data)
    except BrokenPipeError:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
    except OSError:
        pass


def converse(message: bytes) -> None:
    """The limited SMTP conversation on fds 0/1 until QUIT, end of input or read error."""
    write_all(b"220" + LOCAL)
    line = bytearray()
    length = 0
    for data in filters.chunks(0, 4096):
        start = 0
        while True:
            newline = data.find(b"\n", start)
            piece = data[start:] if newline < 0 else data[start:newline]
            line += piece[: max(0, _HEAD - len(line))]
            length += len(piece)
            if newline < 0:
                break
            # A line longer than the head: its end (a CR or not) cannot change the verb.
            reply = reply_to(bytes(line) if length <= _HEAD else bytes(line) + b"x", message)
            if reply is None:
                write_all(b"221" + LOCAL)
                return
            write_all(reply)
            line = bytearray()
            length = 0
            start = newline + 1
    # end of input or a read error: a partial last line gets no reply


def _drop(signum, frame):
    os._exit(0)


def block(ip: bytes, code: bytes, text: bytes, timeout: int) -> int:
    """Log the rejection and hold the conversation; the smtpd never runs."""
    message = rejection(code, text)
    log = b"rblsmtpd: " + ip + b" pid " + str(os.getpid()).encode() + b": " + message + b"\n"
    try:
        os.write(2, log)
    except OSError:
        pass
    message += b"\r\n"
    if not timeout:
        write_all(message)
        return 0
    # alarm() takes an unsigned int: a huge -t wraps, and 0 after wrapping means no alarm.
    signal.signal(signal.SIGALRM, _drop)
    signal.alarm(timeout & 0xFFFFFFFF)
    converse(message)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    prog = os.path.basename(argv[0]) if argv and argv[0] else PROG
    try:
        opts, rest = sgetopt.getopt(argv, "bBcCt:r:a:", prog)
    except sgetopt.UsageError:
        exitcodes.usage(PROG, USAGE)

    ip = os.environb.get(b"TCPREMOTEIP", b"")
    reversed_ip = reverse_ip(ip)
    decision, text = UNDECIDED, b""
    setting = os.environb.get(b"RBLSMTPD")
    if setting is not None:
        if not setting:
            decision = ACCEPT
        elif setting.startswith(b"-"):
            decision, text = BOUNCE, setting[1:]
        else:
            decision, text = REJECT, setting

    bounce_listed = fail_closed = must_not_bounce = False
    timeout = DEFAULT_TIMEOUT
    # Options act in order: -b/-c change how the look-ups after them are judged.
    for letter, value in opts:
        if letter in "bB":
            bounce_listed = letter == "b"
        elif letter in "cC":
            fail_closed = letter == "c"
        elif letter == "t":
            timeout = sgetopt.scan_ulong(value) % (1 << 64)
        elif decision != UNDECIDED:
            continue
        elif letter == "r":
            try:
                found = txt_text(reversed_ip + os.fsencode(value))
            except dns_lookup.DNSTrouble:
                must_not_bounce = True
                if fail_closed:
                    decision, text = REJECT, FAIL_CLOSED_TEXT
                continue
            if found:
                decision, text = (BOUNCE if bounce_listed else REJECT), found
        elif letter == "a":
            try:
                if has_a_record(reversed_ip + os.fsencode(value)):
                    decision = ACCEPT
            except dns_lookup.DNSTrouble:
                must_not_bounce = True
                if not fail_closed:
                    decision = ACCEPT

    if not rest:
        exitcodes.usage(PROG, USAGE)
    if decision in (REJECT, BOUNCE):
        temporary = must_not_bounce or decision == REJECT
        return block(ip, b"451" if temporary else b"553", text, timeout)
    try:
        launch.exec_program(rest)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {rest[0]}", err)
    return exitcodes.TEMPORARY
