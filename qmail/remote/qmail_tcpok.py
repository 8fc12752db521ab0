"""qmail-tcpok: clear the TCP timeout table (qmail-tcpok(8)).

Synopsis:
    qmail-tcpok

Overwrites ROOT/queue/lock/tcpto with zeros under an exclusive lock, so qmail-remote
tries every host again at once.

Exit codes: 0; 111 with "qmail-tcpok: fatal: ..." when the table cannot be cleared.
Environment: QMAIL_ROOT.
"""

import errno
import fcntl
import os
import stat
import sys

from qmail.config import install_root
from qmail.queue import queue_layout
from ucspi.runtime import exitcodes

PROG = "qmail-tcpok"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    root = install_root.root()
    try:
        if not stat.S_ISDIR(os.stat(root).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", root)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to chdir to {root}", err)
    path = queue_layout.tcpto(queue_layout.queue_dir(root))
    try:
        os.stat(os.path.dirname(path))
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to chdir to {root}/queue/lock", err)
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to write {root}/queue/lock/tcpto", err)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as err:
            exitcodes.fatal_sys(PROG, f"unable to lock {root}/queue/lock/tcpto", err)
        try:
            os.write(fd, bytes(queue_layout.TCPTO_SIZE))
        except OSError as err:
            exitcodes.fatal_sys(PROG, f"unable to clear {root}/queue/lock/tcpto", err)
    finally:
        os.close(fd)
    return 0
