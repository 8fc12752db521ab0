"""tcpserver: accept incoming TCP connections (ucspi-tcp 0.88).

Synopsis:
    tcpserver [ -1UXpPhHrRoOdDqQv ] [ -c limit ] [ -x rules.cdb ] [ -B banner ]
              [ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ]
              host port program [ arg ... ]

For each connection it runs program with descriptor 0 reading from and descriptor 1
writing to the network, and the TCP environment of tcp-environ(5): PROTO, TCPLOCALIP,
TCPLOCALPORT, TCPLOCALHOST, TCPREMOTEIP, TCPREMOTEPORT, TCPREMOTEHOST, TCPREMOTEINFO.
host is 0 (any address), a dotted IPv4 address, an IPv6 address (`::`, `::1`; beyond
0.88, as ucspi-tcp6: PROTO=TCP6 and TCP6* variables beside the TCP* ones), or a name
(its first address). port is a number, a /etc/services name, or 0 (any free port).

Rules (-x) are read afresh for every connection, so rerunning tcprules takes effect at
once. Privileges (-g, -u, -U) are dropped after binding, before the first accept. Our own
programs are warm-started (ucspi.runtime.launch; UCSPI_WARMSTART=0 turns that off).

The machinery sslserver shares (options, rules, environment, -v lines, main's two halves)
is ucspi.runtime.tcp_serve; how a connection's program starts (Plan) is here.

Exit codes: 100 usage; 111 cannot bind/listen/drop privileges. SIGTERM exits 0.
A connection's child exits 100 when the rules deny it, 111 when it is dropped.
Environment read: UID and GID (-U), DNSCACHEIP (name look-ups), UCSPI_WARMSTART.
"""

from __future__ import annotations

import marshal
import os
import socket
import sys

from ucspi.runtime import exitcodes, launch, server_loop, sgetopt, tcp_serve
from ucspi.runtime.tcp_serve import (FLAGS, FROM_ENV, OPTSTRING, VALUES, Connection, Options,
                                     RulesTrouble, describe, follow_rules, lookup_name,
                                     remote_info, say_verdict, set_socket_options)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


PROG = "tcpserver"
USAGE = ("tcpserver [ -1UXpPhHrRoOdDqQv ] [ -c limit ] [ -x rules.cdb ] [ -B banner ] "
         "[ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] host port program")


def parse(argv: list[str]) -> tuple[Options, list[str]]:
    o = Options()
    opts, rest = sgetopt.options(argv, OPTSTRING, PROG, USAGE, 3)
    sgetopt.apply(opts, o, FLAGS, VALUES, FROM_ENV)
    return o, rest


def log_verdict(o: Options, pid: int, c: Connection, local_host, remote_host, info, deny: bool) -> None:
    if o.verbosity >= 2:
        say_verdict(PROG, pid, deny, local_host, c.local_ip, c.local_port, remote_host, c.remote_ip,
                    info, c.remote_port)


class Plan:
    """How every connection is served, decided once at start-up.

    With nothing slow or failing per connection (-H -R -l name, no banner), this server
    works out each connection's environment and rules itself, and launch.plan_start says
    how the program starts: ours warm in a child of the fork helper, anything else with
    posix_spawn (no fork of this interpreter). Otherwise the child does the look-ups, as
    C's child does. Either way a child ends in `finish`.
    """

    def __init__(self, o: Options, program: list[str]):
        self.o = o
        self.program = program
        self.verbose = o.verbosity >= 2
        self.here = not (o.remote_host or o.remote_info or o.local_name is None or o.banner)

    def start(self, conn: socket.socket) -> int | bytes:
        """In the server: a pid (started without a fork), or the child's payload."""
        if not self.here:
            return b""
        o = self.o
        c = Connection(o, conn)
        describe(c, o.local_name, None, None)
        try:
            deny = follow_rules(o, c, None, None)
        except RulesTrouble:
            return b""  # the child reports it, as C's does
        set_socket_options(o, c)
        start = None if deny else launch.plan_start(self.program[0], c.exec_changes())
        if start and start[0] == launch.EXTERNAL:
            try:
                pid = launch.start_external(start, self.program, conn.fileno())
            except OSError:
                start = (launch.GENERAL, None, c.exec_changes())  # the child says why
            else:
                if self.verbose:
                    exitcodes.say(f"{PROG}: pid {pid} from {c.remote_ip}")
                log_verdict(o, pid, c, o.local_name, None, None, False)
                return pid
        return _dumps((c.local_ip, c.local_port, c.remote_ip, c.remote_port, start))

    def child(self, fds: list[int], payload: bytes) -> NoReturn:
        """In the connection's child (fds[0] its connection): the log lines, then the
        program (or exit 100). Its calls are few and bound as globals: each function and
        module attribute a warm child touches costs it pages (see launch's docstring)."""
        fd = fds[0]
        if not payload:
            conn = socket.socket(fileno=fd)
            conn.setblocking(True)
            handle(self.o, self.program, conn)
        local_ip, local_port, remote_ip, remote_port, start = _loads(payload)
        if self.verbose:
            pid = os.getpid()
            exitcodes.say(f"{PROG}: pid {pid} from {remote_ip}")
            say_verdict(PROG, pid, start is None, self.o.local_name, local_ip, local_port, None,
                        remote_ip, None, remote_port)
        if start is None:
            raise SystemExit(100)
        try:
            _run_planned(self.program, fd, start)
        except OSError as err:
            server_loop.unrunnable(PROG, self.o.verbosity, self.program, err)


_dumps, _loads, _run_planned = marshal.dumps, marshal.loads, launch.run_planned


def handle(o: Options, program: list[str], conn: socket.socket) -> NoReturn:
    """The child's work for one connection when the look-ups are done here."""
    c = Connection(o, conn)
    pid = os.getpid()
    if o.verbosity >= 2:
        exitcodes.say(f"{PROG}: pid {pid} from {c.remote_ip}")
    set_socket_options(o, c)
    if o.banner:
        try:
            conn.sendall(o.banner)
        except OSError as err:
            server_loop.drop(PROG, o.verbosity, "unable to print banner", err)
    local_host = o.local_name if o.local_name is not None else lookup_name(c.local_ip, False)
    remote_host = lookup_name(c.remote_ip, o.paranoid) if o.remote_host else None
    info = remote_info(c) if o.remote_info else None
    describe(c, local_host, remote_host, info)
    try:
        deny = follow_rules(o, c, remote_host, info)
    except RulesTrouble as trouble:
        server_loop.drop(PROG, o.verbosity, f"unable to read {o.rules}", trouble.__cause__)
    log_verdict(o, pid, c, local_host, remote_host, info, deny)
    finish(o, program, conn.detach(), None if deny else (launch.GENERAL, None, c.exec_changes()))


def finish(o: Options, program: list[str], fd: int, start: tuple | None) -> NoReturn:
    """The end of a child: exit 100 when denied (start None), else the program with the
    connection's descriptor fd as fds 0 and 1."""
    if start is None:
        raise SystemExit(100)
    server_loop.run_program(PROG, o.verbosity, program, fd, start)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    server_loop.quiet_interrupt()
    o, rest = parse(argv)
    host, port_arg, program = rest[0], rest[1], rest[2:]
    listener = tcp_serve.bind(PROG, o, host, port_arg, program)
    tcp_serve.run(PROG, o, listener, Plan(o, program))
    return 0
