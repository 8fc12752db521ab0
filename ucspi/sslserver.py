"""sslserver: accept TLS connections and run a program for each (ucspi-ssl 0.99's interface).

Synopsis:
    sslserver [ -13UXpPhHrRoOdDqQvVeEsSnNzZm ] [ -c limit ] [ -x rules.cdb ] [ -B banner ]
              [ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ]
              [ -T ssltimeout ] [ -w progtimeout ] host port program [ arg ... ]

tcpserver's server (its options, rules, limits, -v lines, privileges and warm start are
tcpserver's own code, ucspi.runtime.tcp_serve) with TLS in front of the program: for each
connection a child does the TLS handshake, starts the program with descriptors 0 and 1
a plaintext socket (one end of a socketpair) and relays between it and the TLS
connection (ucspi.runtime.tls), then exits as the program did. docs/ssl.md has the rest.

Beyond tcpserver's options:
  -T n    give up on the TLS handshake after n seconds (default 26)
  -w n    give up on a connection when nothing moves either way for n seconds (3600)
  -e / -E set (default) / do not set the TCP* variables beside the SSL* ones
  -s / -S set / do not set (default) the SSL_* variables (mod_ssl's names) after the handshake
  -n / -N delayed TLS, UCSPI-TLS (the program asks for it) / TLS at once (default)
  -z      require a valid client certificate, naming the remote host when -h found its name
  -m      require a valid client certificate, no name check;  -Z  none asked (default)
  -3      read the key's password, NUL-terminated, from descriptor 3
  -V      -v, and the protocol and cipher in the `tls` line
Defaults that differ from tcpserver's, as ucspi-ssl documents them: -R (no IDENT look-up)
and -D (TCP_NODELAY on: the relay sends each record at once; -d turns Nagle back on).

Environment read: CERTFILE (or CERTCHAINFILE), KEYFILE, CAFILE, CADIR, CCAFILE, DHFILE,
CIPHERS; UID, GID (-U); DNSCACHEIP; UCSPI_WARMSTART. The program's: PROTO=SSL, SSLLOCALIP,
SSLLOCALPORT, SSLLOCALHOST, SSLREMOTEIP, SSLREMOTEPORT, SSLREMOTEHOST, SSLREMOTEINFO, the
same TCP* (and TCP6* for an IPv6 peer) unless -E, the rules' variables, with -s the SSL_*
ones, with -n SSLCTLFD, SSLREADFD, SSLWRITEFD and UCSPITLS (empty unless already set).

Exit codes: 100 usage; 111 cannot bind, listen, load the certificate or key, drop
privileges. SIGTERM exits 0. A connection's child exits 100 when the rules deny it, 111
when it is dropped (handshake failed or timed out), else as its program did.
"""

from __future__ import annotations

import marshal
import os
import socket
import ssl
import sys

from ucspi.runtime import exitcodes, launch, server_loop, sgetopt, tcp_serve, tls, x509
from ucspi.runtime.tcp_serve import (Connection, RulesTrouble, describe, follow_rules,
                                     lookup_name, remote_info, say_verdict, set_socket_options)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

PROG = "sslserver"
USAGE = ("sslserver [ -13UXpPhHrRoOdDqQvVeEsSnNzZm ] [ -c limit ] [ -x rules.cdb ] [ -B banner ] "
         "[ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] [ -T ssltimeout ] "
         "[ -w progtimeout ] host port program")
UCSPITLS_FDS = {"SSLCTLFD": 3, "SSLREADFD": 4, "SSLWRITEFD": 5}


class Options(tcp_serve.Options):
    remote_info = False
    delay = False
    tcp_env = True
    ssl_env = False
    delayed = False
    client_certs = 0  # 1: -z, 2: -m
    password = False
    ssl_timeout = tls.SSL_TIMEOUT
    idle = tls.DEFAULT_IDLE


FLAGS = {**tcp_serve.FLAGS, "V": ("verbosity", 3), "e": ("tcp_env", True), "E": ("tcp_env", False),
         "s": ("ssl_env", True), "S": ("ssl_env", False), "n": ("delayed", True),
         "N": ("delayed", False), "z": ("client_certs", 1), "m": ("client_certs", 2),
         "Z": ("client_certs", 0), "3": ("password", True)}
VALUES = {**tcp_serve.VALUES, "T": ("ssl_timeout", sgetopt.scan_ulong), "w": ("idle", sgetopt.scan_ulong)}


def parse(argv: list[str]) -> tuple[Options, list[str]]:
    o = Options()
    opts, rest = sgetopt.options(argv, tcp_serve.OPTSTRING + "3VeEsSnNzZmT:w:", PROG, USAGE, 3)
    sgetopt.apply(opts, o, FLAGS, VALUES, tcp_serve.FROM_ENV)
    return o, rest


def describe_ssl(o: Options, c: Connection, local_host, remote_host, info) -> None:
    """The SSL* variables (and TCP* unless -E), PROTO=SSL; with -n, UCSPITLS (empty)
    unless the environment has it (the rules, applied next, may still set it)."""
    describe(c, local_host, remote_host, info, ("SSL", "TCP") if o.tcp_env else ("SSL",), "SSL")
    if o.delayed and "UCSPITLS" not in os.environ:
        c.setenv("UCSPITLS", "")


def log_verdict(o: Options, pid: int, c: Connection, local_host, remote_host, info, deny: bool) -> None:
    if o.verbosity >= 2:
        say_verdict(PROG, pid, deny, local_host, c.local_ip, c.local_port, remote_host,
                    c.remote_ip, info, c.remote_port)


class Plan:
    """How every connection is served, decided once at start-up (as tcpserver's Plan):
    with -H -R -l name the server works out each connection's environment and rules,
    else the child does its look-ups, as C's does. Either way the child then does the
    TLS handshake and starts the program (serve)."""

    def __init__(self, o: Options, program: list[str], context: ssl.SSLContext, der: bytes):
        self.o = o
        self.program = program
        self.context = context
        self.der = der
        self.here = not (o.remote_host or o.remote_info or o.local_name is None)

    def start(self, conn: socket.socket) -> bytes:
        """In the server: the child's payload (b"": the child works it all out)."""
        if not self.here:
            return b""
        o = self.o
        c = Connection(o, conn)
        describe_ssl(o, c, o.local_name, None, None)
        try:
            deny = follow_rules(o, c, None, None)
        except RulesTrouble:
            return b""  # the child reports it, as C's does
        set_socket_options(o, c)
        return marshal.dumps((c.local_ip, c.local_port, c.remote_ip, c.remote_port,
                              None if deny else c.exec_changes()))

    def child(self, fds: list[int], payload: bytes) -> NoReturn:
        """In the connection's child (fds[0] its connection)."""
        o = self.o
        fd = fds[0]
        remote_host = None
        if payload:
            local_ip, local_port, remote_ip, remote_port, changes = marshal.loads(payload)
            if o.verbosity >= 2:
                pid = os.getpid()
                exitcodes.say(f"{PROG}: pid {pid} from {remote_ip}")
                say_verdict(PROG, pid, changes is None, o.local_name, local_ip, local_port, None,
                            remote_ip, None, remote_port)
            if changes is None:
                raise SystemExit(100)
        else:
            conn = socket.socket(fileno=fd)
            conn.setblocking(True)
            changes, remote_ip, remote_host = handle(o, conn)
            fd = conn.detach()
        serve(self, fd, changes, remote_ip, remote_host)


def handle(o: Options, conn: socket.socket) -> tuple[dict, str, str | None]:
    """The child's look-ups, environment and rules, when they are done there: (the
    program's environment changes, remote IP, remote host name). Exits 100 when denied."""
    c = Connection(o, conn)
    pid = os.getpid()
    if o.verbosity >= 2:
        exitcodes.say(f"{PROG}: pid {pid} from {c.remote_ip}")
    set_socket_options(o, c)
    local_host = o.local_name if o.local_name is not None else lookup_name(c.local_ip, False)
    remote_host = lookup_name(c.remote_ip, o.paranoid) if o.remote_host else None
    info = remote_info(c) if o.remote_info else None
    describe_ssl(o, c, local_host, remote_host, info)
    try:
        deny = follow_rules(o, c, remote_host, info)
    except RulesTrouble as trouble:
        server_loop.drop(PROG, o.verbosity, f"unable to read {o.rules}", trouble.__cause__)
    log_verdict(o, pid, c, local_host, remote_host, info, deny)
    if deny:
        raise SystemExit(100)
    return c.exec_changes(), c.remote_ip, remote_host


def _drop(o: Options, msg: str) -> NoReturn:
    """`sslserver: warning: dropping connection, msg`, exit 111."""
    if o.verbosity:
        exitcodes.say(f"{PROG}: warning: dropping connection, {msg}")
    raise SystemExit(111)


def accept_tls(plan: Plan, sock: socket.socket, remote_ip: str, remote_host: str | None) -> tls.Channel:
    """The handshake (-T), the client certificate's name (-z), the `tls` line (-v)."""
    o = plan.o
    channel = tls.Channel(sock, plan.context, server_side=True)
    try:
        channel.handshake(o.ssl_timeout)
    except (OSError, ssl.SSLError) as err:
        sock.close()
        _drop(o, f"unable to accept TLS from {remote_ip}: {tls.reason(err)}")
    if o.client_certs == 1 and remote_host:
        der = channel.tls.getpeercert(binary_form=True)
        try:
            named = bool(der) and x509.matches(der, remote_host)
        except ValueError:
            named = False
        if not named:
            channel.abort()
            _drop(o, f"client hostname does not match certificate: {remote_host}")
    if o.verbosity >= 2:
        cipher = channel.tls.cipher()
        detail = f" {channel.tls.version()}:{cipher[0]}" if o.verbosity >= 3 and cipher else ""
        exitcodes.say(f"{PROG}: tls {os.getpid()} accept{detail}")
    return channel


def serve(plan: Plan, fd: int, changes: dict, remote_ip: str, remote_host: str | None) -> NoReturn:
    """The child after the rules allowed the connection (fd): TLS, the program, the relay;
    exits as the program did."""
    o = plan.o
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    if o.delayed:
        serve_delayed(plan, sock, changes, remote_ip, remote_host)
    channel = accept_tls(plan, sock, remote_ip, remote_host)
    if o.ssl_env:
        changes = {**changes, **tls.environment(channel, True, plan.der)}
    ours, theirs = socket.socketpair()
    try:
        pid = start_program(o, plan.program, changes, theirs.fileno(), (sock.fileno(), ours.fileno()))
    except OSError as err:
        channel.abort()
        _drop(o, f"unable to fork: {exitcodes.error_str(err)}")
    theirs.close()
    relay_and_exit(o, tls.Relay(channel, ours, pid, o.idle), pid, remote_ip)


def relay_and_exit(o: Options, relay: tls.Relay, pid: int, remote_ip: str, banner: bool = True) -> NoReturn:
    """Relay until the end; exit as the program did, or 111 when TLS broke off."""
    relay.run(o.banner if banner else b"")
    if relay.trouble and relay.status is None:
        tls.terminate(pid)
    status = relay.status if relay.status is not None else tls.wait_child(pid)
    if relay.trouble:
        if o.verbosity:
            exitcodes.say(f"{PROG}: warning: unable to speak TLS with {remote_ip}: {relay.trouble}")
        raise SystemExit(111)
    tls.exit_as(status)


def start_program(o: Options, program: list[str], changes: dict, fd: int, close: tuple) -> int:
    """The program with fd as descriptors 0 and 1, as tcpserver starts it: ours warm in a
    fork of this child, anything else posix_spawn'ed. Its pid; raises OSError (fork)."""
    plan = launch.plan_start(program[0], changes)
    if plan[0] == launch.EXTERNAL:
        try:
            return launch.start_external(plan, program, fd)
        except OSError:
            plan = (launch.GENERAL, None, changes)  # the child says why

    def run() -> None:
        for other in close:
            os.close(other)
        try:
            launch.run_planned(program, fd, plan)
        except OSError as err:
            server_loop.unrunnable(PROG, o.verbosity, program, err)

    return tls.fork_child(run)


def serve_delayed(plan: Plan, sock: socket.socket, changes: dict, remote_ip: str,
                  remote_host: str | None) -> NoReturn:
    """-n, UCSPI-TLS: the program starts at once with the connection (plaintext) as
    descriptors 0 and 1, its control socket as 3 (SSLCTLFD) and its end of the TLS relay
    as 4 and 5 (SSLREADFD, SSLWRITEFD). When it writes y or Y on 3, this child does the
    handshake (Y: then sends the SSL_* variables back on 3) and relays; when it closes 3
    or exits first, no TLS: this child just waits for it."""
    o = plan.o
    if o.banner:
        try:
            sock.sendall(o.banner)
        except OSError as err:
            server_loop.drop(PROG, o.verbosity, "unable to print banner", err)
    control, control_theirs = socket.socketpair()
    ours, theirs = socket.socketpair()
    changes = {**changes, **{name: str(fd) for name, fd in UCSPITLS_FDS.items()}}
    net = sock.fileno()
    program = plan.program

    def run() -> None:
        control.close()
        ours.close()
        sources = {net, control_theirs.fileno(), theirs.fileno()}
        launch.arrange({0: net, 1: net, 3: control_theirs.fileno(), 4: theirs.fileno(),
                        5: theirs.fileno()})
        for other in sources - {0, 1, 3, 4, 5}:
            os.close(other)
        try:
            launch.exec_program(program, changes=changes, keep_fds=tuple(UCSPITLS_FDS.values()))
        except OSError as err:
            server_loop.unrunnable(PROG, o.verbosity, program, err)

    try:
        pid = tls.fork_child(run)
    except OSError as err:
        _drop(o, f"unable to fork: {exitcodes.error_str(err)}")
    control_theirs.close()
    theirs.close()
    channel = tls.ucspitls_start(control, pid, lambda: accept_tls(plan, sock, remote_ip, remote_host),
                                 lambda channel: tls.environment(channel, True, plan.der),
                                 closing=(sock, ours))
    relay_and_exit(o, tls.Relay(channel, ours, pid, o.idle), pid, remote_ip, banner=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    server_loop.quiet_interrupt()
    o, rest = parse(argv)
    host, port_arg, program = rest[0], rest[1], rest[2:]
    password = tls.read_password(3) if o.password else None
    listener = tcp_serve.bind(PROG, o, host, port_arg, program)
    try:
        context, der = tls.server_context(os.environ, o.client_certs > 0, password)
    except tls.Trouble as trouble:
        exitcodes.fatal(PROG, str(trouble))
    tcp_serve.run(PROG, o, listener, Plan(o, program, context, der))
    return 0
