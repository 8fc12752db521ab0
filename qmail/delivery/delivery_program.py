"""The program a delivery helper runs and judges (condredirect, bouncesaying, except).

The program is started as execvp would (suite programs warm, anything else exec'd) with
the helper's descriptors; a program that cannot be started exits 111 when the reason is
temporary and 100 otherwise, as the helpers' C children do.
"""

import os

from ucspi.runtime import launch


class Crashed(Exception):
    """The program was killed by a signal."""


class WaitFailed(Exception):
    """waitpid failed."""


def run(argv: list[str]) -> int:
    """Run argv to completion; its exit code. Raises Crashed, WaitFailed or OSError (fork)."""
    pid = launch.spawn(argv, complaint=None, code=launch.ERROR_TEMP)
    try:
        _, status = os.waitpid(pid, 0)
    except OSError as err:
        raise WaitFailed() from err
    if os.WIFSIGNALED(status):
        raise Crashed()
    return os.WEXITSTATUS(status)
