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

Exit codes: 100 usage; 111 cannot bind/listen/drop privileges. SIGTERM exits 0.
A connection's child exits 100 when the rules deny it, 111 when it is dropped.
Environment read: UID and GID (-U), DNSCACHEIP (name look-ups), UCSPI_WARMSTART.
"""

from __future__ import annotations

import marshal
import os
import socket
import sys

from ucspi.runtime import exitcodes, launch, privileges, server_loop, sgetopt, tcp_environ

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


PROG = "tcpserver"
USAGE = ("tcpserver [ -1UXpPhHrRoOdDqQv ] [ -c limit ] [ -x rules.cdb ] [ -B banner ] "
         "[ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] host port program")


class Options:
    verbosity = 1
    limit = 40
    rules: str | None = None
    allow_no_rules = False
    banner = b""
    uid = 0
    gid = 0
    print_port = False
    backlog = 20
    kill_options = True
    delay = True
    remote_host = True
    paranoid = False
    local_name: str | None = None
    remote_info = True
    info_timeout = 26


# What each option sets (the letter's attribute and value, or the function of its argument).
FLAGS = {"X": ("allow_no_rules", True), "d": ("delay", True), "D": ("delay", False),
         "v": ("verbosity", 2), "q": ("verbosity", 0), "Q": ("verbosity", 1),
         "P": ("paranoid", False), "p": ("paranoid", True), "O": ("kill_options", True),
         "o": ("kill_options", False), "H": ("remote_host", False), "h": ("remote_host", True),
         "R": ("remote_info", False), "r": ("remote_info", True), "1": ("print_port", True)}
VALUES = {"b": ("backlog", sgetopt.scan_ulong), "c": ("limit", sgetopt.scan_ulong),
          "x": ("rules", str), "B": ("banner", os.fsencode), "t": ("info_timeout", sgetopt.scan_ulong),
          "u": ("uid", sgetopt.scan_ulong), "g": ("gid", sgetopt.scan_ulong), "l": ("local_name", str)}


FROM_ENV = {"U": (("gid", "GID"), ("uid", "UID"))}


def parse(argv: list[str]) -> tuple[Options, list[str]]:
    o = Options()
    opts, rest = sgetopt.options(argv, "dDvqQhHrR1UXx:t:u:g:l:b:B:c:pPoO", PROG, USAGE, 3)
    sgetopt.apply(opts, o, FLAGS, VALUES, FROM_ENV)
    return o, rest


def safe(text: str | None) -> str:
    """A field of the -v lines as C prints it: unprintables, ':' and '%' become '?',
    at most 100 characters then '...'."""
    if not text:
        return ""
    out = []
    for i, ch in enumerate(text):
        if i >= 100:
            out.append("...")
            break
        out.append("?" if ord(ch) < 33 or ord(ch) > 126 or ch in ":%" else ch)
    return "".join(out)


def resolve_host(host: str) -> tuple[int, str]:
    """(family, address) to bind for the host argument."""
    if host in ("", "0"):
        return socket.AF_INET, "0.0.0.0"
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return family, host
        except OSError:
            pass
    from ucspi.runtime import dns_lookup
    try:
        found = dns_lookup.ips_of(host)
    except dns_lookup.DNSTrouble as err:
        exitcodes.fatal(PROG, f"temporarily unable to figure out IP address for {host}: {err}")
    if not found:
        exitcodes.fatal(PROG, f"no IP address for {host}")
    return socket.AF_INET, found[0]


def resolve_port(port: str) -> int:
    if port and port.isdigit():
        return int(port)
    try:
        return socket.getservbyname(port, "tcp")
    except OSError:
        exitcodes.fatal(PROG, f"unable to figure out port number for {port}")


def listen(family: int, address: str, port: int, backlog: int) -> socket.socket:
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to create socket", err)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # `::` takes IPv4 clients too (as v4-mapped addresses), as ucspi-tcp6 does.
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind((address, port))
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to bind", err)
    try:
        s.listen(backlog)
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to listen", err)
    return s


class Connection:
    """What the child learns about its connection, and the environment it builds."""

    def __init__(self, o: Options, conn: socket.socket):
        self.o = o
        self.conn = conn
        self.remote_ip, self.remote_port, self.ipv6 = tcp_environ.address_of(conn.getpeername())
        self.local_ip, self.local_port, _ = tcp_environ.address_of(conn.getsockname())
        self.changes: dict[str, str | None] = {}

    def setenv(self, name: str, value: str | None) -> None:
        self.changes[name] = value

    def exec_changes(self) -> dict[str, str | None]:
        """The changes to our environment the program gets (launch.exec_program)."""
        # a rule such as `:allow,=x` names no variable an exec can pass
        return {name: value for name, value in self.changes.items() if name and "=" not in name}


def lookup_name(ip: str, paranoid: bool) -> str | None:
    from ucspi.runtime import dns_lookup
    try:
        name = dns_lookup.name_of(ip)
        if name and paranoid and ip not in dns_lookup.ips_of(name, ipv6=":" in ip):
            return None
        return name
    except dns_lookup.DNSTrouble:
        return None


def remote_info(c: Connection) -> str | None:
    from ucspi.runtime import remote_info as ident
    return ident.ident(c.local_ip, c.local_port, c.remote_ip, c.remote_port, c.o.info_timeout)


def describe(c: Connection, local_host, remote_host, info) -> None:
    """The tcp-environ(5) variables (and ucspi-tcp6's TCP6* ones for IPv6 peers)."""
    values = (c.local_ip, str(c.local_port), local_host, c.remote_ip, str(c.remote_port),
              remote_host, info)
    for p in ("TCP", "TCP6") if c.ipv6 else ("TCP",):
        for field, value in zip(tcp_environ.FIELDS, values):
            c.setenv(p + field, value)
    c.setenv("PROTO", "TCP6" if c.ipv6 else "TCP")


class RulesTrouble(Exception):
    """The rules cdb could not be read: the connection is dropped."""


def follow_rules(o: Options, c: Connection, remote_host, info) -> bool:
    """Apply the first matching rule's variables; True when it denies. Raises RulesTrouble."""
    if not o.rules:
        return False
    from ucspi.runtime import cdb_rules  # already loaded by main, before the first fork
    try:
        rule = cdb_rules.lookup(o.rules, c.remote_ip, remote_host, info)
    except FileNotFoundError as err:
        if not o.allow_no_rules:
            raise RulesTrouble(err) from err
        return False
    except (OSError, cdb_rules.CorruptRules) as err:
        raise RulesTrouble(err) from err
    if rule is None:
        return False
    for name, value in rule.env:
        c.setenv(name, value)
    return rule.deny


def set_socket_options(o: Options, c: Connection) -> None:
    try:
        if o.kill_options and not c.ipv6:
            c.conn.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b"")
        if not o.delay:
            c.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def log_verdict(o: Options, pid: int, c: Connection, local_host, remote_host, info, deny: bool) -> None:
    if o.verbosity >= 2:
        say_verdict(pid, deny, local_host, c.local_ip, c.local_port, remote_host, c.remote_ip,
                    info, c.remote_port)


def say_verdict(pid: int, deny: bool, local_host, local_ip: str, local_port: int,
                remote_host, remote_ip: str, info, remote_port: int) -> None:
    """The -v line `ok PID localhost:localip:localport remotehost:remoteip:info:port`."""
    exitcodes.say(f"{PROG}: {'deny' if deny else 'ok'} {pid} "
                  f"{safe(local_host)}:{safe(local_ip)}:{local_port} "
                  f"{safe(remote_host)}:{safe(remote_ip)}:{safe(info)}:{remote_port}")


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
            say_verdict(pid, start is None, self.o.local_name, local_ip, local_port, None,
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
    if o.verbosity == 0:
        # -q: tcpserver itself says nothing; its children still get descriptor 2.
        sys.stderr = open(os.devnull, "w")
    port = resolve_port(port_arg)
    family, address = resolve_host(host)
    if o.remote_host or o.local_name is None:
        from ucspi.runtime import dns_lookup  # noqa: F401  (loaded once, before the children)
    listener = listen(family, address, port, o.backlog)
    launch.preload(program[0])
    if o.remote_info:
        from ucspi.runtime import remote_info as _ident  # noqa: F401
    if o.rules:
        from ucspi.runtime import cdb_rules  # noqa: F401
    # Everything the children run is imported before the switch: the new uid may not be
    # able to read the interpreter's library (exec'd programs read theirs afresh anyway).
    privileges.drop(PROG, o.uid, o.gid)
    if o.print_port:
        os.write(1, f"{listener.getsockname()[1]}\n".encode())
    # C closes 0 and 1: whoever reads our stdout (tcpserver -1 | ...) sees the end.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    server_loop.Server(PROG, listener, o.limit, o.verbosity >= 2, Plan(o, program)).run()
    return 0

