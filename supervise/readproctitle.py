"""readproctitle: keep the last bytes of its input visible to ps (daemontools 0.76).

Synopsis: readproctitle L D

L is any number of arguments; D is one argument of at least five characters. As the C
program does, readproctitle first turns every character of D into a dot, then feeds
every byte of its standard input but NUL into the end of D, shifting D left to make room;
the three leading dots never move. The process title (what ps shows) is the whole
command line with D so modified: the most recent input is always visible, e.g.
`readproctitle io errors: ... xyz\\nwarning abc\\n`.

The title is set with setproctitle, which takes text: a byte above 127 becomes `?`
(the C program writes the raw byte into argv; ps prints `?` for it anyway).

Exit codes (no message, as the C program): 0 at end of input; 100 when there is no
argument or D is shorter than five characters; 111 when standard input cannot be read.
"""

import os
import sys


from ucspi.runtime import exitcodes, launch

KEEP = 3  # leading characters of D that never move
MIN_DOTS = 5
READ_SIZE = 4096


def shifted(dots: bytes, data: bytes) -> bytes:
    """D after reading data: its first three bytes, then the tail of D and data (NUL
    bytes are skipped: they would end the argument)."""
    room = len(dots) - KEEP
    return dots[:KEEP] + (dots[KEEP:] + data.replace(b"\0", b""))[-room:]


def visible(dots: bytes) -> str:
    """D as process-title text (setproctitle takes text, not arbitrary bytes)."""
    return dots.decode("ascii", "replace").replace("\ufffd", "?")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) < 2:
        raise SystemExit(exitcodes.PERMANENT)
    dots = os.fsencode(argv[-1])
    if len(dots) < MIN_DOTS:
        raise SystemExit(exitcodes.PERMANENT)
    head = " ".join(argv[:-1])
    dots = b"." * len(dots)
    launch.set_title(f"{head} {visible(dots)}")
    while True:
        try:
            data = os.read(0, READ_SIZE)
        except InterruptedError:
            continue
        except OSError:
            raise SystemExit(exitcodes.TEMPORARY)
        if not data:
            return 0
        dots = shifted(dots, data)
        launch.set_title(f"{head} {visible(dots)}")
