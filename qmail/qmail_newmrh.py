"""qmail-newmrh: compile control/morercpthosts into control/morercpthosts.cdb.

Synopsis: qmail-newmrh

Reads ROOT/control/morercpthosts (one host a line; lower-cased; trailing spaces, tabs
and newlines dropped; empty lines and lines beginning with # ignored) and writes each
host as a key with empty data into control/morercpthosts.tmp, fsyncs it and renames it
onto control/morercpthosts.cdb, which qmail-smtpd and qmail-qmtpd consult when
control/rcpthosts does not list a host. The new file has mode 0644 (qmail's umask 033).

Exit codes: 0 done; 111 when the list cannot be read or the cdb cannot be written
(the old morercpthosts.cdb is then left as it was).

Environment: QMAIL_ROOT (default /var/qmail).
"""

import os
import sys

from qmail import install_root
from ucspi import cdb_make, durable, exitcodes

PROG = "qmail-newmrh"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    root = install_root.root()
    try:
        os.chdir(root)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to chdir to {root}", err)
    try:
        with open("control/morercpthosts", "rb") as f:
            data = f.read()
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to read control/morercpthosts", err)
    keys = host_keys(data)

    def write(fp):
        writer = cdb_make.Writer(fp)
        for key in keys:
            writer.put(key, b"")
        writer.finalize()

    try:
        durable.replace("control/morercpthosts.cdb", "control/morercpthosts.tmp", write, 0o644)
    except OSError as err:
        if getattr(err, "filename2", None):
            exitcodes.fatal_sys(PROG, "unable to move control/morercpthosts.tmp to "
                                "control/morercpthosts.cdb", err)
        exitcodes.fatal_sys(PROG, "unable to write to control/morercpthosts.tmp", err)
    return 0


def host_keys(data: bytes) -> list[bytes]:
    """The cdb keys of a morercpthosts text, in file order, as qmail-newmrh reads it."""
    keys = []
    for line in data.split(b"\n"):
        line = line.lower().rstrip(b" \t")
        if line and not line.startswith(b"#"):
            keys.append(line)
    return keys
