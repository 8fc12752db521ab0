"""qmail-tcpto: print the TCP timeout table (qmail-tcpto(8)).

Synopsis:
    qmail-tcpto

For each of the 64 16-byte records of ROOT/queue/lock/tcpto with a timeout count (byte 4)
of at least 1:
    A.B.C.D timed out S seconds ago; # recent timeouts: N
(A.B.C.D bytes 0-3; the time of the last timeout little-endian in bytes 8-11).

Exit codes: 0; 111 with "fatal: unable to ...: reason" on standard output, as the original.
Environment: QMAIL_ROOT.
"""

import fcntl
import os
import sys
import time

from qmail.config import install_root
from qmail.queue import queue_layout
from ucspi.runtime import exitcodes


def lines(table: bytes, now: int) -> list[str]:
    out = []
    for i in range(len(table) // 16):
        record = table[i * 16:(i + 1) * 16]
        if record[4] >= 1:
            when = int.from_bytes(record[8:12], "little")
            ip = ".".join(str(b) for b in record[:4])
            out.append(f"{ip} timed out {(now - when) % (1 << 64)} seconds ago; "
                       f"# recent timeouts: {record[4]}")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    root = install_root.root()
    lockdir = os.path.join(queue_layout.queue_dir(root), "lock")

    def die(what: str, err: OSError) -> int:
        sys.stdout.write(f"fatal: {what}: {exitcodes.error_str(err)}\n")
        return 111

    if not os.path.isdir(lockdir):
        return die("unable to chdir", FileNotFoundError(2, "", lockdir))
    path = queue_layout.tcpto(queue_layout.queue_dir(root))
    try:
        lockfd = os.open(path, os.O_WRONLY)
        fd = os.open(path, os.O_RDONLY)
    except OSError as err:
        return die("unable to open tcpto", err)
    try:
        try:
            fcntl.flock(lockfd, fcntl.LOCK_EX)
        except OSError as err:
            return die("unable to lock tcpto", err)
        try:
            table = os.read(fd, queue_layout.TCPTO_SIZE)
        except OSError as err:
            return die("unable to read tcpto", err)
    finally:
        os.close(fd)
        os.close(lockfd)
    sys.stdout.write("".join(line + "\n" for line in lines(table, int(time.time()))))
    return 0
