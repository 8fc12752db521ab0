"""condredirect: perhaps redirect mail to another address (condredirect(1)).

Synopsis:
    condredirect newaddress program [ arg ... ]

Runs program with the message on its input. If it exits 0, the message is forwarded to
newaddress (envelope sender $SENDER, with $DTLINE in front) and condredirect exits 99, so
qmail-local skips the rest of the .qmail file; `condredirect: qp N` is printed. If the
program exits 111, condredirect defers; any other exit leaves the message alone (exit 0).

Exit codes: 99 forwarded; 0 not forwarded; 100 usage, $SENDER or $DTLINE missing, or a
permanent queue error; 111 temporary trouble (qmail-queue's text after
`condredirect: fatal: `).

Environment: SENDER, DTLINE (from qmail-local), QMAIL_ROOT, QMAILQUEUE.
"""

import os
import sys

from qmail.delivery import except_, forwarding
from ucspi.runtime import exitcodes, sgetopt

PROG = "condredirect"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    sgetopt.operands(argv, 2, PROG, "condredirect newaddress program [ arg ... ]")
    if except_.run_judged(PROG, argv[2:]) != 0:
        return 0
    try:
        os.lseek(0, 0, os.SEEK_SET)
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to rewind", err)
    qp = redirect(PROG, "SENDER", [os.fsencode(argv[1])])
    exitcodes.say(f"{PROG}: qp {qp}")
    return 99


def redirect(prog: str, sender_variable: str, recipients: list[bytes]) -> int:
    """Forward the message on descriptor 0 with $DTLINE; the qp. Dies as prog on trouble."""
    sender = os.environb.get(sender_variable.encode())
    if sender is None:
        exitcodes.fatal(prog, f"{sender_variable} not set", 100)
    dtline = os.environb.get(b"DTLINE")
    if dtline is None:
        exitcodes.fatal(prog, "DTLINE not set", 100)
    try:
        result, qp = forwarding.forward(0, dtline, sender, recipients)
    except forwarding.ReadError as err:
        exitcodes.fatal_sys(prog, "unable to read message", err.err)
    if result.code != 0:
        exitcodes.fatal(prog, result.text, 100 if result.permanent else 111)
    return qp
