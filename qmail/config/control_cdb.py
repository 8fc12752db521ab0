"""A control list compiled into its cdb (control/NAME -> control/NAME.cdb), as qmail-newmrh
and qmail-newrcpt do it: read the list, write NAME.tmp, fsync, rename onto NAME.cdb.

Failures end the program with 111 and qmail's messages; the old cdb then stays as it was.
"""

import os

from qmail.config import install_root
from ucspi.runtime import cdb_make, durable, exitcodes


def read_source(prog: str, name: str) -> bytes:
    """chdir to the installation root and read control/NAME (fatal 111 if impossible)."""
    root = install_root.root()
    try:
        os.chdir(root)
    except OSError as err:
        exitcodes.fatal_sys(prog, f"unable to chdir to {root}", err)
    try:
        with open(f"control/{name}", "rb") as f:
            return f.read()
    except OSError as err:
        exitcodes.fatal_sys(prog, f"unable to read control/{name}", err)


def write(prog: str, name: str, keys: list[bytes]) -> None:
    """control/NAME.cdb holding each key with empty data, mode 0644, replaced atomically."""
    def fill(fp):
        writer = cdb_make.Writer(fp)
        for key in keys:
            writer.put(key, b"")
        writer.finalize()

    try:
        durable.replace(f"control/{name}.cdb", f"control/{name}.tmp", fill, 0o644)
    except OSError as err:
        if getattr(err, "filename2", None):
            exitcodes.fatal_sys(prog, f"unable to move control/{name}.tmp to control/{name}.cdb", err)
        exitcodes.fatal_sys(prog, f"unable to write to control/{name}.tmp", err)
