"""qmail-newrcpt: compile control/validrcptto into control/validrcptto.cdb.

Synopsis: qmail-newrcpt

Reads ROOT/control/validrcptto, the list of local addresses that exist (format in
qmail/smtp_validrcpt.py: `user@domain`, `user-default@domain` for any extension,
`@domain` for a catch-all), and writes control/validrcptto.tmp, fsyncs it and renames it
onto control/validrcptto.cdb, mode 0644. qmail-smtpd then refuses, at RCPT, addresses at
the listed domains that the list does not name. Removing the cdb turns the check off.

Exit codes: 0 done; 111 when the list cannot be read or parsed (a line without a domain)
or the cdb cannot be written (the old cdb is then left as it was).

Environment: QMAIL_ROOT (default /var/qmail).
"""

import os
import sys

from qmail import install_root, smtp_validrcpt
from ucspi import cdb_make, durable, exitcodes

PROG = "qmail-newrcpt"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    root = install_root.root()
    try:
        os.chdir(root)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to chdir to {root}", err)
    try:
        with open("control/validrcptto", "rb") as f:
            data = f.read()
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to read control/validrcptto", err)
    try:
        keys = smtp_validrcpt.compile_keys(data)
    except smtp_validrcpt.ParseError as err:
        exitcodes.fatal(PROG, f"unable to parse control/validrcptto line {err.args[0]}: {err.args[1]}")

    def write(fp):
        writer = cdb_make.Writer(fp)
        for key in keys:
            writer.put(key, b"")
        writer.finalize()

    try:
        durable.replace("control/validrcptto.cdb", "control/validrcptto.tmp", write, 0o644)
    except OSError as err:
        if getattr(err, "filename2", None):
            exitcodes.fatal_sys(PROG, "unable to move control/validrcptto.tmp to "
                                "control/validrcptto.cdb", err)
        exitcodes.fatal_sys(PROG, "unable to write to control/validrcptto.tmp", err)
    return 0
