"""forward: forward new mail to one or more addresses (forward(1)).

Synopsis:
    forward address ...

Queues the message on its input, with $DTLINE in front, to the addresses, with $NEWSENDER
as envelope sender (the mailing-list owner when qmail-local found one), and prints
`forward: qp N`.

Exit codes: 0 queued; 100 $NEWSENDER or $DTLINE missing, or a permanent queue error;
111 temporary trouble (qmail-queue's text after `forward: fatal: `).

Environment: NEWSENDER, DTLINE (from qmail-local), QMAIL_ROOT, QMAILQUEUE.
"""

import os
import sys

from qmail.delivery import condredirect
from ucspi.runtime import exitcodes

PROG = "forward"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    qp = condredirect.redirect(PROG, "NEWSENDER", [os.fsencode(a) for a in argv[1:]])
    exitcodes.say(f"{PROG}: qp {qp}")
    return 0
