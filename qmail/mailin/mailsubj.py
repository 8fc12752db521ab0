"""mailsubj: send stdin as a mail with a subject (qmail's mailsubj).

    mailsubj subject recipient [ recipient ... ]

Gives qmail-inject a message made of "Subject: SUBJECT", "To: RECIPIENTS" (the
arguments joined by spaces), a blank line and what mailsubj reads; qmail-inject takes the
recipients from that header. Exit codes: qmail-inject's; 111 when it cannot be run.
Environment: QMAIL_ROOT, and everything qmail-inject reads.
"""

import os
import sys

from qmail.config import install_root
from ucspi.runtime import exitcodes, filters, launch


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    words = [os.fsencode(a) for a in argv[1:]]
    subject = words[0] if words else b""
    header = b"Subject: " + subject + b"\nTo: " + b" ".join(words[1:]) + b"\n\n"
    read_end, write_end = os.pipe()
    try:
        pid = launch.spawn([install_root.program("qmail-inject", install_root.root())], fds={0: read_end})
    except OSError as err:
        exitcodes.fatal_sys("mailsubj", "unable to run qmail-inject", err)
    os.close(read_end)
    filters.feed(write_end, header)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)  # what the shell pipeline would report
    return os.WEXITSTATUS(status)
