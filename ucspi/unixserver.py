"""unixserver: accept connections on a UNIX-domain socket (ucspi-unix style).

Synopsis:
    unixserver [ -qQvdDU ] [ -u uid ] [ -g gid ] [ -o uid ] [ -r gid ] [ -O ]
               [ -p perm ] [ -m mask ] [ -c limit ] [ -b backlog ] [ -B banner ]
               socket program [ arg ... ]

For each connection it runs program with descriptor 0 reading from and descriptor 1
writing to the client, and the environment
    PROTO=UNIX, UNIXLOCALPATH (the socket), UNIXLOCALPID/UNIXLOCALUID/UNIXLOCALGID (this
    server), UNIXREMOTEPID, UNIXREMOTEEUID, UNIXREMOTEEGID (the client, from the kernel's
    SO_PEERCRED: a client cannot lie about them).
This is how the suite's local services (the queue-injection service of docs/architecture.md, "Privilege separation")
learn who their caller is.

Options: -q quiet, -Q (default) errors, -v status lines as tcpserver's; -d keep, -D
(default) remove the socket file on SIGTERM; -u/-g/-U switch uid/gid after creating the
socket (-U: $UID, $GID); -o/-r/-O socket owner/group (-O: $SOCKET_UID, $SOCKET_GID);
-p mode of the socket (octal), else 0666 less the -m mask (default 0); -c limit
(default 10); -b backlog; -B banner written to each client first.
An existing socket file at the path is replaced; any other kind of file is not.

Exit codes: 100 usage; 111 cannot create, bind, listen or switch ids. SIGTERM exits 0.
"""

import os
import socket
import stat
import sys

from ucspi.runtime import exitcodes, peer_credentials, privileges, server_loop, sgetopt, launch


PROG = "unixserver"
USAGE = ("unixserver [ -qQvdDUO ] [ -u uid ] [ -g gid ] [ -o uid ] [ -r gid ] [ -p perm ] "
         "[ -m mask ] [ -c limit ] [ -b backlog ] [ -B banner ] socket program")


class Options:
    verbosity = 1
    remove_on_exit = True
    uid = 0
    gid = 0
    owner = -1
    group = -1
    perm: int | None = None
    mask = 0
    limit = 10
    backlog = 20
    banner = b""


def octal(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        exitcodes.usage(PROG, USAGE)


# What each option sets (the letter's attribute and value, or the function of its argument).
FLAGS = {"q": ("verbosity", 0), "Q": ("verbosity", 1), "v": ("verbosity", 2),
         "d": ("remove_on_exit", False), "D": ("remove_on_exit", True)}
VALUES = {"u": ("uid", sgetopt.scan_ulong), "g": ("gid", sgetopt.scan_ulong),
          "o": ("owner", sgetopt.scan_ulong), "r": ("group", sgetopt.scan_ulong),
          "p": ("perm", octal), "m": ("mask", octal), "c": ("limit", sgetopt.scan_ulong),
          "b": ("backlog", sgetopt.scan_ulong), "B": ("banner", os.fsencode)}


FROM_ENV = {"U": (("uid", "UID"), ("gid", "GID")), "O": (("owner", "SOCKET_UID"), ("group", "SOCKET_GID"))}


def parse(argv: list[str]) -> tuple[Options, list[str]]:
    o = Options()
    opts, rest = sgetopt.options(argv, "qQvdDUu:g:o:r:Op:m:c:b:B:", PROG, USAGE, 2)
    sgetopt.apply(opts, o, FLAGS, VALUES, FROM_ENV)
    if o.limit < 1:
        exitcodes.usage(PROG, USAGE)
    return o, rest


def listen(o: Options, path: str) -> socket.socket:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)  # a stale socket from an earlier run
    except FileNotFoundError:
        pass
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to remove {path}", err)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(o.mask)
    try:
        s.bind(path)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to bind to {path}", err)
    finally:
        os.umask(old_mask)
    try:
        # 0666 less the mask unless -p says otherwise (bind alone would give 0777 less it)
        os.chmod(path, o.perm if o.perm is not None else 0o666 & ~o.mask)
        if o.owner != -1 or o.group != -1:
            os.chown(path, o.owner, o.group)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to set owner or mode of {path}", err)
    try:
        s.listen(o.backlog)
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to listen", err)
    return s


class Plan:
    """Every connection's child does the work (server_loop's plan): the peer's
    credentials are the child's to read."""

    def __init__(self, o: Options, path: str, program: list[str], server_pid: int):
        self.o, self.path, self.program, self.server_pid = o, path, program, server_pid

    def start(self, conn: socket.socket) -> bytes:
        return b""

    def child(self, fds: list[int], payload: bytes) -> None:
        conn = socket.socket(fileno=fds[0])
        conn.setblocking(True)
        handle(self.o, self.path, self.program, self.server_pid, conn)


def handle(o: Options, path: str, program: list[str], server_pid: int, conn: socket.socket) -> None:
    pid = os.getpid()
    try:
        peer = peer_credentials.of(conn)
    except OSError as err:
        server_loop.drop(PROG, o.verbosity, "unable to read peer credentials", err)
    if o.verbosity >= 2:
        exitcodes.say(f"{PROG}: pid {pid} from {peer.pid}")
    if o.banner:
        try:
            conn.sendall(o.banner)
        except OSError as err:
            server_loop.drop(PROG, o.verbosity, "unable to print banner", err)
    changes = {
        "PROTO": "UNIX",
        "UNIXLOCALPATH": path,
        "UNIXLOCALPID": str(server_pid),
        "UNIXLOCALUID": str(os.getuid()),
        "UNIXLOCALGID": str(os.getgid()),
        "UNIXREMOTEPID": str(peer.pid),
        "UNIXREMOTEEUID": str(peer.uid),
        "UNIXREMOTEEGID": str(peer.gid),
    }
    if o.verbosity >= 2:
        exitcodes.say(f"{PROG}: ok {pid} {path} {peer.uid}:{peer.gid}:{peer.pid}")
    server_loop.run_program(PROG, o.verbosity, program, conn.detach(), (launch.GENERAL, None, changes))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    server_loop.quiet_interrupt()
    o, rest = parse(argv)
    path, program = rest[0], rest[1:]
    if o.verbosity == 0:
        sys.stderr = open(os.devnull, "w")
    listener = listen(o, path)
    launch.preload_chain(program)  # before the switch: the new uid may not read the library
    privileges.drop(PROG, o.uid, o.gid)
    server_pid = os.getpid()  # UNIXLOCALPID: the children's parent is the fork helper

    def remove_socket() -> None:
        if o.remove_on_exit:
            try:
                os.unlink(path)
            except OSError:
                pass

    server_loop.Server(PROG, listener, o.limit, o.verbosity >= 2,
                       Plan(o, path, program, server_pid), on_term=remove_socket).run()
    return 0
