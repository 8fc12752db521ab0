"""qmail-newrcpt: compile control/validrcptto into control/validrcptto.cdb.

Synopsis: qmail-newrcpt

Reads ROOT/control/validrcptto, the list of local addresses that exist (format in
qmail/mailin/smtp_validrcpt.py: `user@domain`, `user-default@domain` for any extension,
`@domain` for a catch-all), and writes control/validrcptto.tmp, fsyncs it and renames it
onto control/validrcptto.cdb, mode 0644. qmail-smtpd then refuses, at RCPT, addresses at
the listed domains that the list does not name. Removing the cdb turns the check off.

Exit codes: 0 done; 111 when the list cannot be read or parsed (a line without a domain)
or the cdb cannot be written (the old cdb is then left as it was).

Environment: QMAIL_ROOT (default /var/qmail).
"""

import sys

from qmail.config import control_cdb
from qmail.mailin import smtp_validrcpt
from ucspi.runtime import exitcodes

PROG = "qmail-newrcpt"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    data = control_cdb.read_source(PROG, "validrcptto")
    try:
        keys = smtp_validrcpt.compile_keys(data)
    except smtp_validrcpt.ParseError as err:
        exitcodes.fatal(PROG, f"unable to parse control/validrcptto line {err.args[0]}: {err.args[1]}")
    control_cdb.write(PROG, "validrcptto", keys)
    return 0
