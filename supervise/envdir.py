"""envdir: run a program with environment variables taken from a directory (0.76).

Synopsis:
    envdir d child ...

For each file s in d (readdir order; names beginning with a dot skipped): when s is
empty, $s is removed; otherwise $s is set to the first line of s, trailing spaces and
tabs removed, NUL bytes turned into newlines. Then child runs (warm when it is one of
ours, exec'd otherwise). The child is found with the PATH envdir was started with.

As in 0.76: a name containing = sets the variable named by the part before the first =
to the rest of the text; a name that vanishes between listing and reading (a dangling
symbolic link) gets the previous file's value; a subdirectory is an error.

Exit codes: 111 usage (as 0.76), cannot read d or a file in it, cannot run child;
otherwise child's.
Environment: PATH finds child.
"""

import os
import sys

from supervise import pathexec
from ucspi.runtime import exitcodes

PROG = "envdir"


def first_line(data: bytes, previous: bytes) -> tuple[bytes | None, bytes]:
    """(value or None to remove, buffer left for the next file) from a file's bytes.

    data is None when the file vanished: 0.76 then reuses its buffer as it was left by
    the previous file (the value with its terminating NUL), hence previous.
    """
    buf = previous if data is None else data
    if not buf:
        return None, buf
    end = buf.find(b"\n")
    value = buf if end < 0 else buf[:end]
    value = value.rstrip(b" \t").replace(b"\0", b"\n")
    return value, value + b"\0"


def read_changes(directory: str) -> list[tuple[str, str | None]]:
    """The variable changes d asks for, in readdir order; OSError names what failed."""
    changes = []
    buf = b""
    for name in os.listdir("."):
        if name.startswith("."):
            continue
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            data = None
        except OSError as err:
            raise _ReadError(f"unable to read {directory}/{name}", err)
        else:
            try:
                data = _read_all(fd)
            except OSError as err:
                raise _ReadError(f"unable to read {directory}/{name}", err)
            finally:
                os.close(fd)
        value, buf = first_line(data, buf)
        changes.append((name, None if value is None else os.fsdecode(value)))
    return changes


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


class _ReadError(Exception):
    def __init__(self, what: str, err: OSError):
        super().__init__(what)
        self.what, self.err = what, err


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) < 3:
        # 0.76 exits 111 here, unlike the other tools' usage errors
        exitcodes.say(f"{PROG}: usage: envdir dir child")
        raise SystemExit(exitcodes.TEMPORARY)
    directory, child = argv[1], argv[2:]
    try:
        origin = os.open(".", os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to switch to current directory", err)
    try:
        os.chdir(directory)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to switch to directory {directory}", err)
    try:
        changes = read_changes(directory)
    except _ReadError as trouble:
        exitcodes.fatal_sys(PROG, trouble.what, trouble.err)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to read directory {directory}", err)
    try:
        os.fchdir(origin)
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to switch to starting directory", err)
    os.close(origin)
    try:
        pathexec.run(child, pathexec.env_with(changes))
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {child[0]}", err)
