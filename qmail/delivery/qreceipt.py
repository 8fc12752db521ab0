"""qreceipt: respond to delivery notice requests (qreceipt(1)).

Synopsis:
    in .qmail: |qreceipt deliveryaddress

When the message has a Notice-Requested-Upon-Delivery-To: field naming deliveryaddress,
sends a success notice (From: DELIVERY NOTICE SYSTEM) to the envelope sender $SENDER,
unless that is a bounce address (<> or #@[]). The notice itself has the null sender, so
it cannot loop.

Exit codes: 0 done (a notice sent, or none asked for); 100 usage ($SENDER missing too),
an unparseable notice field, or a permanent qmail-queue error; 111 read trouble or a
temporary qmail-queue error.
"""

import os
import sys

from qmail.formats import address
from qmail.queue import queue_client
from ucspi.runtime import exitcodes

PROG = "qreceipt"


def wants_notice(field: bytes, target: bytes) -> bool:
    """Whether a Notice-Requested-Upon-Delivery-To: field lists target."""
    found = []

    def look(reversed_address):
        found.append(address.unquote(list(reversed(reversed_address))))
        return reversed_address
    address.address_list(address.tokenise(field), look)
    return target in found


def notice(returnpath: bytes, target: bytes, messageid: bytes | None) -> bytes:
    quoted = address.quote2(returnpath)
    text = (b"From: DELIVERY NOTICE SYSTEM <" + quoted + b">\n"
            b"To: <" + quoted + b">\n"
            b"Subject: success notice\n\n"
            b"Hi! This is the qreceipt program. Your message was delivered to the\n"
            b"following address: " + target + b". Thanks for asking.\n")
    if messageid is not None:
        text += b"Your " + messageid
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    returnpath = os.environb.get(b"SENDER")
    if len(argv) < 2 or returnpath is None:
        exitcodes.say(f"{PROG}: usage: qreceipt deliveryaddress")
        return 100
    target = os.fsencode(argv[1])
    try:
        data = sys.stdin.buffer.read()
    except OSError:
        exitcodes.fatal(PROG, "read error")
    requested = False
    messageid = None
    for kind, field in address.split_header(_lines(data)):
        if kind == "end":
            break
        name = address.field_known(field)
        if name == "message-id":
            messageid = field
        elif name == "notice-requested-upon-delivery-to":
            try:
                requested = wants_notice(field, target) or requested
            except address.Unparseable:
                exitcodes.say(f"{PROG}: fatal: unable to parse this: " + os.fsdecode(field).rstrip("\n"))
                return 100
    if not requested or returnpath in (b"", b"#@[]"):
        return 0
    result = queue_client.enqueue(notice(returnpath, target, messageid), b"", [returnpath])
    if result.code != 0:
        if result.permanent:
            exitcodes.fatal(PROG, "permanent qmail-queue error", 100)
        exitcodes.fatal(PROG, "temporary qmail-queue error")
    return 0


def _lines(data: bytes):
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            yield data[start:]
            return
        yield data[start:end + 1]
        start = end + 1
