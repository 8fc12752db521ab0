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

import sys

from qmail.config import control_cdb

PROG = "qmail-newmrh"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    data = control_cdb.read_source(PROG, "morercpthosts")
    control_cdb.write(PROG, "morercpthosts", host_keys(data))
    return 0


def host_keys(data: bytes) -> list[bytes]:
    """The cdb keys of a morercpthosts text, in file order, as qmail-newmrh reads it."""
    keys = []
    for line in data.split(b"\n"):
        line = line.lower().rstrip(b" \t")
        if line and not line.startswith(b"#"):
            keys.append(line)
    return keys
