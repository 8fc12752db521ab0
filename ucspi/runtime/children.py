"""Waiting for children: one the way djb's filters do (predate, preline, fghack, ...), and
every ended one without blocking, as the supervisors and servers reap theirs."""

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


def wait_status(pid: int) -> int | None:
    """pid's wait status, waiting as long as it takes (EINTR is retried by Python itself);
    None when pid is not a child of ours (already reaped)."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None


def ended():
    """(pid, wait status) of each child that has ended, without waiting for any; stops
    when none has (or none is left)."""
    while True:
        try:
            pid, wstat = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == 0:
            return
        yield pid, wstat
