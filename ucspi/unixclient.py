"""unixclient: connect to a UNIX-domain socket and run a program (ucspi-unix style).

Synopsis:
    unixclient [ -qQv ] socket program [ arg ... ]

Connects to socket and runs program with descriptor 6 reading from and descriptor 7
writing to the server (UCSPI's client convention, as tcpclient), and the environment
PROTO=UNIX, UNIXREMOTEPATH (the socket), UNIXREMOTEPID, UNIXREMOTEEUID, UNIXREMOTEEGID
(the server's credentials, from the kernel).

Exit codes: 100 usage; 111 cannot connect or run program; else program's.
"""

import os
import socket
import sys

from ucspi.runtime import exitcodes, peer_credentials, sgetopt, launch

PROG = "unixclient"
USAGE = "unixclient [ -qQv ] socket program"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    verbosity = 1
    opts, rest = sgetopt.options(argv, "qQv", PROG, USAGE)
    for opt, _ in opts:
        verbosity = {"q": 0, "Q": 1, "v": 2}[opt]
    if len(rest) < 2:
        exitcodes.usage(PROG, USAGE)
    path, program = rest[0], rest[1:]
    if verbosity == 0:
        sys.stderr = open(os.devnull, "w")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to connect to {path}", err)
    peer = peer_credentials.of(s)
    if verbosity >= 2:
        exitcodes.say(f"{PROG}: connected to {path} pid {peer.pid}")
    env = launch.environ()
    env.update({"PROTO": "UNIX", "UNIXREMOTEPATH": path, "UNIXREMOTEPID": str(peer.pid),
                "UNIXREMOTEEUID": str(peer.uid), "UNIXREMOTEEGID": str(peer.gid)})
    fd = s.detach()
    try:
        os.dup2(fd, 6)
        os.dup2(fd, 7)
        if fd not in (6, 7):
            os.close(fd)
        launch.exec_program(program, env, keep_fds=(6, 7))
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {program[0]}", err)
