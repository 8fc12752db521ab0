"""tcprules: compile rules for tcpserver into a cdb.

Synopsis: tcprules cdb tmp  < rules.txt

Reads rules (man tcprules; syntax in ucspi.runtime.cdb_rules) from standard input, writes the cdb to
tmp (destroyed first if it exists), fsyncs it and renames it onto cdb, so tcpserver sees the
old rules or the new ones, never a mixture. The cdb is byte-identical to C tcprules' for the
same input. IPv6 addresses (fehcom ucspi-tcp6 syntax) are accepted as an extension.

Exit codes: 0 written; 100 usage or a line it cannot parse (cdb untouched, tmp removed);
111 cannot read input, create or write tmp, or move it onto cdb (cdb untouched).
"""

import os
import sys

from ucspi.runtime import cdb_rules, durable, exitcodes, sgetopt

PROG = "tcprules"
USAGE = "tcprules rules.cdb rules.tmp"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    sgetopt.operands(argv, 2, PROG, USAGE)
    cdb, tmp = argv[1], argv[2]
    stage = ["create"]

    def write(out):
        stage[0] = "write"
        cdb_rules.compile_rules(_input_lines(), out)
        stage[0] = "finish"

    try:
        durable.replace(cdb, tmp, write)
    except cdb_rules.ParseError as e:
        line = e.args[0].split(b"\0", 1)[0]  # C prints the line as a C string
        exitcodes.fatal(PROG, "unable to parse this line: " + os.fsdecode(line), exitcodes.PERMANENT)
    except MemoryError:
        exitcodes.fatal(PROG, "out of memory")
    except _InputError as e:
        exitcodes.fatal_sys(PROG, "unable to read input", e.args[0])
    except OSError as e:
        if stage[0] == "create":
            exitcodes.fatal_sys(PROG, f"unable to create {tmp}", e)
        if stage[0] == "finish" and (e.filename2 is not None or e.filename is not None):
            # the rename failed (filename2 set) or making it durable (fsync of the directory) did
            exitcodes.fatal_sys(PROG, f"unable to move {tmp} to {cdb}", e)
        exitcodes.fatal_sys(PROG, f"unable to write to {tmp}", e)
    return 0


def _input_lines():
    """Lines of descriptor 0, each with its newline; read errors become _InputError.

    Descriptor 0 itself, not sys.stdin: with 0 closed, Python has no sys.stdin, and (as in C)
    tmp was just opened as descriptor 0, whose reading then fails.
    """
    try:
        stdin = open(0, "rb", closefd=False)
    except OSError as e:
        raise _InputError(e) from e
    with stdin:
        while True:
            try:
                line = stdin.readline()
            except OSError as e:
                raise _InputError(e) from e
            if not line:
                return
            yield line


class _InputError(Exception):
    """Reading standard input failed (args[0]: the OSError)."""


if __name__ == "__main__":
    sys.exit(main())
