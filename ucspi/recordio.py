"""recordio: record the input and output of a program (ucspi-tcp 0.88).

Synopsis:
    recordio program [ arg ... ]

recordio runs program with its standard input and output passed through unchanged and
prints every packet on descriptor 2 as it goes by, one line per piece:

    PID < text     input (to program)        PID > text     output (from program)

PID is the program's process ID. A line ends with a space when the packet had a newline
there, with `+` when the packet ended without one; `PID < [EOF]` / `PID > [EOF]` mark the
end of input and of output. Packets are at most 256 bytes and are not combined; each line
is written with one write, so lines from several recordios do not mix.

As in the C tool, program keeps recordio's process ID (it is run in place of recordio)
and the recording is done by a child process, which exits when it sees the end of the
program's output, or when the program stops reading its input, or when the output cannot
be written.

Exit codes: 100 usage (`recordio: usage: recordio program [ arg ... ]`); 111 when
recordio cannot set up (`recordio: fatal: unable to create pipe: ...`, `unable to fork`)
or cannot run program (`recordio: fatal: unable to run program: reason`); otherwise the
program's own exit status.
"""

import os
import select
import signal
import sys

from ucspi.runtime import exitcodes, launch, sgetopt

PROG = "recordio"
USAGE = "recordio program [ arg ... ]"
PACKET = 256  # bytes per read, as the C tool's buffers


def record_lines(pid: bytes, direction: bytes, packet: bytes) -> list[bytes]:
    """The log lines for one packet: each newline ends a line with " ", a last piece
    without newline ends with "+"."""
    lines = []
    while packet:
        piece, newline, packet = packet.partition(b"\n")
        lines.append(pid + direction + piece + (b" \n" if newline else b"+\n"))
    return lines


def _log(lines: list[bytes]) -> None:
    """Each line in one write: recordio promises lines are printed atomically."""
    for line in lines:
        try:
            os.write(2, line)
        except OSError:
            pass


def _write(fd: int, data: bytes) -> int:
    try:
        return os.write(fd, data)
    except OSError:
        return -1


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, PACKET)
    except OSError:
        return b""


def copy(pid: bytes, to_program: int, from_program: int) -> None:
    """The recorder: stdin -> to_program and from_program -> stdout, logging each packet.

    Ends at the program's end of output, or when either copy cannot be written.
    """
    in_state, in_buf = 0, b""   # 0: reading stdin, 1: writing to program, -1: at EOF
    out_state, out_buf = 0, b""  # 0: reading program's output, 1: writing stdout
    while True:
        poller = select.poll()
        watched = {}
        if in_state == 0:
            watched[0] = "in"
            poller.register(0, select.POLLIN)
        elif in_state == 1:
            watched[to_program] = "to"
            poller.register(to_program, select.POLLOUT)
        if out_state == 0:
            watched[from_program] = "from"
            poller.register(from_program, select.POLLIN)
        else:
            watched[1] = "out"
            poller.register(1, select.POLLOUT)
        ready = {watched[fd] for fd, _ in poller.poll(3600 * 1000) if fd in watched}

        if "in" in ready:
            data = _read(0)
            if not data:
                in_state = -1
                os.close(to_program)
                _log([pid + b" < [EOF]\n"])
            else:
                in_state, in_buf = 1, data
                _log(record_lines(pid, b" < ", data))
        if "to" in ready:
            written = _write(to_program, in_buf)
            if written < 0:
                return
            in_buf = in_buf[written:]
            if not in_buf:
                in_state = 0
        if "from" in ready:
            data = _read(from_program)
            if not data:
                _log([pid + b" > [EOF]\n"])
                return
            out_state, out_buf = 1, data
            _log(record_lines(pid, b" > ", data))
        if "out" in ready:
            written = _write(1, out_buf)
            if written < 0:
                return
            out_buf = out_buf[written:]
            if not out_buf:
                out_state = 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    sgetopt.operands(argv, 1, PROG, USAGE)
    pid = str(os.getpid()).encode()
    try:
        to_read, to_write = os.pipe()
        from_read, from_write = os.pipe()
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to create pipe", err)
    try:
        child = launch.fork()
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to fork", err)
    if child == 0:
        # The recorder; the original process goes on to become the program.
        try:
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            os.close(to_read)
            os.close(from_write)
            copy(pid, to_write, from_read)
        finally:
            os._exit(0)
    os.close(to_write)
    os.close(from_read)
    try:
        os.dup2(to_read, 0)
        os.dup2(from_write, 1)
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to move descriptors", err)
    os.close(to_read)
    os.close(from_write)
    try:
        launch.exec_program(argv[1:])
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {argv[1]}", err)
    return exitcodes.TEMPORARY
