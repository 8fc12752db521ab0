"""svscanboot: start svscan in /service, its messages kept by readproctitle (daemontools 0.76).

Synopsis: svscanboot [ directory ]

Does what 0.76's svscanboot script does, for directory (default /service; the argument
is our addition, so that a service tree elsewhere can be booted and tested):

  1. standard input, output and error become /dev/null;
  2. `svc -dx directory/* directory/*/log` asks any supervise left over from an earlier
     svscan to stop its service and exit (names starting with a dot are skipped, as by
     the shell's *; nothing is run when nothing matches);
  3. runs the pipeline
         svscan directory 2>&1 | readproctitle service errors: ....(400 dots)
     both with an environment holding only PATH, and waits for it. The last 400 bytes
     of svscan's messages are then visible to ps through readproctitle's title.

PATH is 0.76's (/command:/usr/local/bin:/usr/local/sbin:/bin:/sbin:/usr/bin:/usr/sbin:
/usr/X11R6/bin) with the directory of this suite's programs in front, so that svscan,
supervise, svc and readproctitle are ours and start warm (ucspi.runtime.launch).

Exit codes: readproctitle's (the pipeline's status, as sh reports it); 111 when the
pipe cannot be made or a child cannot be forked.
"""

import glob
import os
import sys


from ucspi.runtime import exitcodes, launch

PROG = "svscanboot"
SERVICE_DIR = "/service"
C_PATH = "/command:/usr/local/bin:/usr/local/sbin:/bin:/sbin:/usr/bin:/usr/sbin:/usr/X11R6/bin"
DOTS = "." * 400


def suite_path() -> str:
    """0.76's PATH with the directory holding our console scripts first."""
    return f"{os.path.dirname(os.path.abspath(sys.executable))}:{C_PATH}"


def leftovers(directory: str) -> list[str]:
    """What the shell's directory/* directory/*/log expands to (sorted, no dot names)."""
    services = sorted(glob.glob(os.path.join(glob.escape(directory), "*")))
    logs = sorted(glob.glob(os.path.join(glob.escape(directory), "*", "log")))
    return services + logs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    directory = argv[1] if len(argv) > 1 else SERVICE_DIR
    env = {"PATH": suite_path()}
    launch.set_title(" ".join(argv))
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            null = os.open("/dev/null", mode)
        except OSError as err:
            exitcodes.fatal_sys(PROG, "unable to open /dev/null", err)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    launch.preload("svscan", env)
    launch.preload("readproctitle", env)
    names = leftovers(directory)
    if names:
        try:
            os.waitpid(launch.spawn(["svc", "-dx", *names], {**os.environ, **env}), 0)
        except OSError:
            pass  # as in the script: a failed svc is no reason not to boot
    try:
        read_end, write_end = os.pipe()
        scanner = launch.spawn(["svscan", directory], env, {1: write_end, 2: write_end})
        keeper = launch.spawn(["readproctitle", "service", "errors:", DOTS], env,
                                 {0: read_end})
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to start the pipeline", err)
    os.close(read_end)
    os.close(write_end)
    status = {}
    while len(status) < 2:
        try:
            pid, wstat = os.wait()
        except ChildProcessError:
            break
        if pid in (scanner, keeper):
            status[pid] = wstat
    wstat = status.get(keeper, 0)
    if os.WIFSIGNALED(wstat):
        return 128 + os.WTERMSIG(wstat)
    return os.waitstatus_to_exitcode(wstat)
