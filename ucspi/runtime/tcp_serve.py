"""tcpserver's machinery, shared by tcpserver and sslserver (ucspi-ssl's sslserver takes
tcpserver's options and behaves as it does up to the point where the program starts).

What lives here, each piece used by both servers:
  Options, FLAGS, VALUES, FROM_ENV, OPTSTRING
                 tcpserver's options (sslserver adds its own letters on top)
  resolve_host, resolve_port, listen
                 the address to bind and the listening socket
  Connection, describe, follow_rules, lookup_name, remote_info, set_socket_options
                 one connection's environment: the tcp-environ(5) variables (or
                 another prefix's, sslserver's SSL*), the rules (-x), the look-ups
  safe, say_verdict
                 the -v lines `PROG: ok PID local remote` (`deny` when refused)
  bind, run      main's two halves: before the privilege drop (the socket, every import a
                 child needs) and after it (-1, descriptors 0 and 1 closed, the accept loop)
prog, where a function takes it, is the name in the diagnostics (tcpserver, sslserver).
How a connection's program starts stays each server's own (its Plan).
"""

from __future__ import annotations

import os
import socket
import sys

from ucspi.runtime import exitcodes, launch, privileges, server_loop, sgetopt, tcp_environ

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


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


OPTSTRING = "dDvqQhHrR1UXx:t:u:g:l:b:B:c:pPoO"
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


def resolve_host(prog: str, host: str) -> tuple[int, str]:
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
        exitcodes.fatal(prog, f"temporarily unable to figure out IP address for {host}: {err}")
    if not found:
        exitcodes.fatal(prog, f"no IP address for {host}")
    return socket.AF_INET, found[0]


def resolve_port(prog: str, port: str) -> int:
    if port and port.isdigit():
        return int(port)
    try:
        return socket.getservbyname(port, "tcp")
    except OSError:
        exitcodes.fatal(prog, f"unable to figure out port number for {port}")


def listen(prog: str, family: int, address: str, port: int, backlog: int) -> socket.socket:
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
    except OSError as err:
        exitcodes.fatal_sys(prog, "unable to create socket", err)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # `::` takes IPv4 clients too (as v4-mapped addresses), as ucspi-tcp6 does.
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind((address, port))
    except OSError as err:
        exitcodes.fatal_sys(prog, "unable to bind", err)
    try:
        s.listen(backlog)
    except OSError as err:
        exitcodes.fatal_sys(prog, "unable to listen", err)
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


def describe(c: Connection, local_host, remote_host, info, prefixes: tuple[str, ...] = ("TCP",),
             proto: str | None = None) -> None:
    """The tcp-environ(5) variables (and ucspi-tcp6's TCP6* ones for IPv6 peers), under
    each of prefixes (sslserver: SSL, and TCP with -e); PROTO is proto, else TCP or TCP6."""
    values = (c.local_ip, str(c.local_port), local_host, c.remote_ip, str(c.remote_port),
              remote_host, info)
    for p in prefixes + (("TCP6",) if c.ipv6 and "TCP" in prefixes else ()):
        for field, value in zip(tcp_environ.FIELDS, values):
            c.setenv(p + field, value)
    c.setenv("PROTO", proto or ("TCP6" if c.ipv6 else "TCP"))


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


def say_verdict(prog: str, pid: int, deny: bool, local_host, local_ip: str, local_port: int,
                remote_host, remote_ip: str, info, remote_port: int) -> None:
    """The -v line `ok PID localhost:localip:localport remotehost:remoteip:info:port`."""
    exitcodes.say(f"{prog}: {'deny' if deny else 'ok'} {pid} "
                  f"{safe(local_host)}:{safe(local_ip)}:{local_port} "
                  f"{safe(remote_host)}:{safe(remote_ip)}:{safe(info)}:{remote_port}")


def bind(prog: str, o: Options, host: str, port_arg: str, program: list[str]) -> socket.socket:
    """main's first half, before privileges drop: -q, the listening socket, and every module
    the children need imported (the new uid may not be able to read the interpreter's
    library; exec'd programs read theirs afresh anyway)."""
    if o.verbosity == 0:
        # -q: the server itself says nothing; its children still get descriptor 2.
        sys.stderr = open(os.devnull, "w")
    port = resolve_port(prog, port_arg)
    family, address = resolve_host(prog, host)
    if o.remote_host or o.local_name is None:
        from ucspi.runtime import dns_lookup  # noqa: F401  (loaded once, before the children)
    listener = listen(prog, family, address, port, o.backlog)
    launch.preload_chain(program)
    if o.remote_info:
        from ucspi.runtime import remote_info as _ident  # noqa: F401
    if o.rules:
        from ucspi.runtime import cdb_rules  # noqa: F401
    return listener


def run(prog: str, o: Options, listener: socket.socket, plan) -> NoReturn:
    """main's second half: privileges dropped (-u, -g, -U), the port printed (-1),
    descriptors 0 and 1 closed, then the accept loop with plan (server_loop)."""
    privileges.drop(prog, o.uid, o.gid)
    if o.print_port:
        os.write(1, f"{listener.getsockname()[1]}\n".encode())
    # C closes 0 and 1: whoever reads our stdout (tcpserver -1 | ...) sees the end.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    server_loop.Server(prog, listener, o.limit, o.verbosity >= 2, plan).run()
