"""tcprulescheck: say what tcpserver would do with a connection, following a rules cdb.

Synopsis: tcprulescheck cdb

Looks up the connection described by $TCPREMOTEIP (0.0.0.0 if unset), $TCPREMOTEHOST and
$TCPREMOTEINFO (each used only if set) in the cdb written by tcprules, trying the keys in
tcpserver's order, and prints, exactly as C tcprulescheck does:

    rule KEY:                              the first key found, then per instruction
    set environment variable VAR=value
    deny connection | allow connection

or `default:` and `allow connection` when no key is present.

Exit codes: 0 answered (even if standard output cannot be written, as C); 100 usage; 111 the cdb is missing or unreadable
("tcprulescheck: fatal: unable to read CDB: reason", "protocol error" for a damaged cdb).
"""

import os
import sys

from ucspi.runtime import cdb_rules, durable, exitcodes, sgetopt

PROG = "tcprulescheck"
USAGE = "tcprulescheck rules.cdb"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    sgetopt.operands(argv, 1, PROG, USAGE)
    path = argv[1]
    ip = os.environ.get("TCPREMOTEIP", "0.0.0.0")
    keys = cdb_rules.tcp_keys(ip, os.environ.get("TCPREMOTEHOST"), os.environ.get("TCPREMOTEINFO"))
    try:
        found = cdb_rules.find_data(path, keys)
    except (OSError, cdb_rules.CorruptRules) as e:
        exitcodes.fatal_sys(PROG, f"unable to read {path}", e)
    _write(_report(found))
    return 0


def _report(found: tuple[str, bytes] | None) -> bytes:
    """The text C prints for a lookup result: instructions up to the first deny."""
    if found is None:
        return b"default:\nallow connection\n"
    key, data = found
    out = [b"rule " + os.fsencode(key) + b":\n"]
    for record in cdb_rules.decode_data(data):
        if record[:1] == b"D":
            out.append(b"deny connection\n")
            return b"".join(out)
        if record[:1] == b"+":
            out.append(b"set environment variable " + record[1:] + b"\n")
    out.append(b"allow connection\n")
    return b"".join(out)


def _write(data: bytes) -> None:
    """Write the report to descriptor 1; like C, a failed write still exits 0."""
    try:
        durable.write_all(1, data)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
