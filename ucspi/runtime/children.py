"""Waiting for a child the way djb's filters do (predate, preline, fghack, ...)."""

import os

from ucspi.runtime import exitcodes


def exit_code(prog: str, pid: int) -> int:
    """Wait for pid and return its exit code.

    Fatal (111) with `prog: fatal: child crashed` when it was killed by a signal, and
    `prog: fatal: wait failed: reason` when it cannot be waited for.
    """
    try:
        _, status = os.waitpid(pid, 0)
    except OSError as err:
        exitcodes.fatal_sys(prog, "wait failed", err)
    if os.WIFSIGNALED(status):
        exitcodes.fatal(prog, "child crashed")
    return os.WEXITSTATUS(status)
