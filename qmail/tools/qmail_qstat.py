"""qmail-qstat: summarize status of the mail queue (qmail-qstat(8)).

Synopsis:
    qmail-qstat

Prints
    messages in queue: N
    messages in queue but not yet preprocessed: M
N counts the files in queue/mess, M those in queue/todo (both split, see queue_layout).

Exit codes: 0; 111 when the queue cannot be read (as the original's cd would fail).
Environment: QMAIL_ROOT.
"""

import os
import sys

from qmail.config import install_root
from qmail.queue import queue_layout
from ucspi.runtime import exitcodes

PROG = "qmail-qstat"


def count(qdir: str, kind: str) -> int:
    """Files in qdir/kind; OSError when the directory cannot be read."""
    top = os.path.join(qdir, kind)
    total = 0
    for entry in os.scandir(top):
        if entry.is_dir(follow_symlinks=False):
            total += sum(1 for sub in os.scandir(entry.path) if not sub.is_dir(follow_symlinks=False))
        else:
            total += 1
    return total


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    qdir = queue_layout.queue_dir(install_root.root())
    try:
        messages = count(qdir, "mess")
        todo = count(qdir, "todo")
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to read {qdir}", err)
    sys.stdout.write(f"messages in queue: {messages}\n"
                     f"messages in queue but not yet preprocessed: {todo}\n")
    return 0
