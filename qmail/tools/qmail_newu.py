"""qmail-newu: prepare the users/assign assignments for qmail-lspawn (qmail-newu(8)).

Synopsis:
    qmail-newu

Reads ROOT/users/assign (qmail-users(5)), writes ROOT/users/cdb.tmp, fsyncs it and moves
it to ROOT/users/cdb, so qmail-lspawn sees either the old table or the new one.

Exit codes: 0 done; 111 on any trouble (the old users/cdb stays in place), with
`qmail-newu: fatal: ...` as qmail's qmail-newu says it.

Environment: $QMAIL_ROOT (default /var/qmail).
"""

import io
import os
import sys

from qmail.config import install_root, users
from ucspi.runtime import durable, exitcodes

PROG = "qmail-newu"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    os.umask(0o033)
    try:
        os.chdir(install_root.root())
    except OSError:
        exitcodes.fatal(PROG, "unable to chdir")
    try:
        with open("users/assign", "rb") as f:
            try:
                text = f.read()
            except OSError:
                exitcodes.fatal(PROG, "unable to read users/assign")
    except OSError:
        exitcodes.fatal(PROG, "unable to open users/assign")
    table = io.BytesIO()
    try:
        users.build_cdb(text, table)
    except users.FormatError:
        exitcodes.fatal(PROG, "bad format in users/assign")
    try:
        # users/cdb is replaced whole: qmail-lspawn never reads a half-written table.
        durable.write_bytes("users/cdb", table.getvalue(), tmp="users/cdb.tmp", mode=0o644)
    except OSError:
        exitcodes.fatal(PROG, "unable to write users/cdb.tmp")
    return 0
