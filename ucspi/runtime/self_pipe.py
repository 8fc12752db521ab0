"""The self-pipe: signals wake a select()/poll() loop (djb's selfpipe, via set_wakeup_fd).

The interpreter writes a byte to the pipe when a signal with a Python handler arrives,
so a loop waiting on the read end wakes up and then acts on what the handlers noted.
"""

import os
import signal


def open_wakeup() -> tuple[int, int]:
    """A non-blocking, close-on-exec pipe whose write end receives a byte per signal
    (a program may write to it too, to wake itself); (read end, write end). OSError."""
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    return read_end, write_end


def drain(read_end: int) -> None:
    """Empty the pipe (the bytes carry no information)."""
    try:
        while os.read(read_end, 512):
            pass
    except OSError:  # BlockingIOError: empty; InterruptedError: next wake-up drains it
        pass
