"""qmail-qread: list outgoing messages and recipients (qmail-qread(8)).

Synopsis:
    qmail-qread

For every message qmail-send has preprocessed (queue/info), a line
    DATE GMT  #NUM  SIZE  <SENDER>  [bouncing]
(DATE as qmail's date822 without the zone, the time the message entered the queue), then
one line per recipient, "\\tlocal\\tADDR" or "\\tremote\\tADDR", prefixed by "  done" when
delivered. Bytes outside printable ASCII print as '_'. Messages come in split-directory
order, by number within each (the original: directory order). Trouble with one message
gives "warning: trouble with #NUM: reason" on standard output, as the original.

Exit codes: 0; 111 when ROOT/queue cannot be entered.
Environment: QMAIL_ROOT.
"""

import os
import sys

from qmail.config import install_root
from qmail.formats import date822
from qmail.queue import queue_layout
from ucspi.runtime import exitcodes


def printable(data: bytes) -> str:
    return "".join(chr(b) if 32 <= b <= 126 else "_" for b in data)


def stats_line(num: int, size: int, when: float, sender: bytes, bouncing: bool) -> str:
    line = (f"{date822.fmt(when)[:-6]} GMT  #{num}  {size}  <"
            + printable(sender) + "> " + (" bouncing" if bouncing else ""))
    return line


def recipients(path: str, channel: str) -> list[str]:
    """Lines for the recipients in a local/ or remote/ file; OSError but ENOENT raises."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    lines = []
    for record in data.split(b"\0")[:-1]:
        kind, address = record[:1], record[1:]
        if kind in (b"D", b"T"):
            lines.append(("  done" if kind == b"D" else "") + f"\t{channel}\t" + printable(address))
    return lines


def report(qdir: str, num: int) -> list[str]:
    size = os.stat(queue_layout.mess(qdir, num)).st_size
    bouncing = os.path.exists(queue_layout.bounce(qdir, num))
    with open(queue_layout.info(qdir, num), "rb") as f:
        sender = f.read().split(b"\0", 1)[0][1:]
        when = os.fstat(f.fileno()).st_mtime
    lines = [stats_line(num, size, when, sender, bouncing)]
    lines += recipients(queue_layout.local(qdir, num), "local")
    lines += recipients(queue_layout.remote(qdir, num), "remote")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    qdir = queue_layout.queue_dir(install_root.root())
    out = []
    try:
        os.listdir(qdir)
    except OSError as err:
        sys.stdout.write(f"fatal: unable to chdir: {exitcodes.error_str(err)}\n")
        return 111
    for split in range(queue_layout.SPLIT):
        directory = os.path.join(qdir, "info", str(split))
        try:
            names = os.listdir(directory)
        except OSError as err:
            out.append(f"fatal: unable to opendir info/{split}: {exitcodes.error_str(err)}")
            sys.stdout.write("".join(line + "\n" for line in out))
            return 111
        for num in sorted(int(n) for n in names if n.isdigit()):
            try:
                out += report(qdir, num)
            except OSError as err:
                out.append(f"warning: trouble with #{num}: {exitcodes.error_str(err)}")
    sys.stdout.write("".join(line + "\n" for line in out))
    return 0
