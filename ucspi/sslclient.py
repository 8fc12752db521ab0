"""sslclient: make a TLS connection and run a program on it (ucspi-ssl 0.99's interface).

Synopsis:
    sslclient [ -3hHrRdDqQveEsSnNxXyY ] [ -i localip ] [ -p localport ] [ -T timeoutconn ]
              [ -l localname ] [ -t timeoutinfo ] [ -a cafile ] [ -A cadir ] [ -c certfile ]
              [ -z ciphers ] [ -k keyfile ] [ -V verifydepth ] [ -w progtimeout ]
              host port program [ arg ... ]

tcpclient's connection (its host and port syntax, -T x+y, -i, -p, -l, look-ups: the same
code, ucspi.runtime.tcp_connect), then the TLS handshake within the same -T time; then
program runs with descriptors 6 (read) and 7 (write) a plaintext socket (one end of a
socketpair), and this process relays between it and the TLS connection
(ucspi.runtime.tls) and exits as the program did. docs/ssl.md has the rest.

TLS options:
  -a cafile / -A cadir  the CAs that verify the server's certificate (neither: the
                        system's); -x (default) verify it / -X do not
  -n / -N               check (default) / do not check that the certificate names host
  -c certfile -k keyfile  a client certificate (-k: its key, else in certfile);
                        -3: the key's password, NUL-terminated, read from descriptor 3
  -z ciphers            OpenSSL cipher list (TLS 1.2 and below)
  -V verifydepth        accepted, not applied (Python's ssl module cannot set it)
  -w n                  give up when nothing moves either way for n seconds (3600)
  -s / -S               set / do not set (default) the SSL_* variables (mod_ssl's names)
  -e / -E               set / do not set (default) the TCP* variables beside SSL*
  -y / -Y               delayed TLS, UCSPI-TLS (the program asks for it) / at once (default)
Defaults that differ from tcpclient's, as ucspi-ssl documents them: -R (no IDENT) and
-D (TCP_NODELAY on; -d turns Nagle back on).

The program's environment: PROTO=SSL, SSLLOCALIP, SSLLOCALPORT, SSLLOCALHOST,
SSLREMOTEIP, SSLREMOTEPORT, SSLREMOTEHOST, SSLREMOTEINFO (TCP* too with -e), SSL_* with -s,
and with -y: descriptors 6 and 7 the connection itself (plaintext), SSLCTLFD=3,
SSLREADFD=4, SSLWRITEFD=5 (UCSPI-TLS: write y or Y on 3, then use 4 and 5).

Exit codes: 100 usage; 111 no connection, no handshake (`unable to SSL connect`, `unable to
verify server certificate`, `server hostname does not match certificate`), bad
certificate or key; otherwise the program's.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import sys

from ucspi.runtime import exitcodes, launch, server_loop, sgetopt, tcp_connect, tls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

PROG = "sslclient"
USAGE = ("sslclient [ -3hHrRdDqQveEsSnNxXyY ] [ -i localip ] [ -p localport ] [ -T timeoutconn ] "
         "[ -l localname ] [ -t timeoutinfo ] [ -a cafile ] [ -A cadir ] [ -c certfile ] "
         "[ -z ciphers ] [ -k keyfile ] [ -V verifydepth ] [ -w progtimeout ] host port program")
NETWORK_FDS = (6, 7)
UCSPITLS_FDS = {"SSLCTLFD": 3, "SSLREADFD": 4, "SSLWRITEFD": 5}
NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


class Options:
    verbosity = 1
    delay = False
    remote_host = True
    remote_info = False
    info_timeout = 26
    timeouts = (2, 58)
    local_ip: str | None = None
    local_port = 0
    local_name: str | None = None
    cafile: str | None = None
    cadir: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    ciphers: str | None = None
    password = False
    verify = True
    verify_depth = 1
    check_name = True
    ssl_env = False
    tcp_env = False
    delayed = False
    idle = tls.DEFAULT_IDLE


FLAGS = {"d": ("delay", True), "D": ("delay", False), "v": ("verbosity", 2),
         "q": ("verbosity", 0), "Q": ("verbosity", 1), "h": ("remote_host", True),
         "H": ("remote_host", False), "r": ("remote_info", True), "R": ("remote_info", False),
         "3": ("password", True), "e": ("tcp_env", True), "E": ("tcp_env", False),
         "s": ("ssl_env", True), "S": ("ssl_env", False), "n": ("check_name", True),
         "N": ("check_name", False), "x": ("verify", True), "X": ("verify", False),
         "y": ("delayed", True), "Y": ("delayed", False)}


def _text_or_none(text: str) -> str | None:
    return text or None  # ucspi-ssl: an empty name means none


VALUES = {"t": ("info_timeout", sgetopt.scan_ulong), "T": ("timeouts", tcp_connect.parse_timeouts),
          "p": ("local_port", lambda text: sgetopt.scan_ulong(text) % 65536),
          "l": ("local_name", str), "a": ("cafile", _text_or_none), "A": ("cadir", _text_or_none),
          "c": ("certfile", _text_or_none), "k": ("keyfile", _text_or_none),
          "z": ("ciphers", _text_or_none), "V": ("verify_depth", sgetopt.scan_ulong),
          "w": ("idle", sgetopt.scan_ulong)}


def parse(argv: list[str]) -> tuple[Options, list[str]]:
    o = Options()
    opts, rest = sgetopt.options(argv, "dDvqQhHrRi:p:t:T:l:a:A:c:z:k:V:3eEsSnNxXw:yY", PROG, USAGE)
    for opt, arg in sgetopt.apply(opts, o, FLAGS, VALUES):
        if opt == "i":
            o.local_ip = tcp_connect.scan_local_ip(PROG, USAGE, arg)
    return o, rest


def _handshake(o: Options, sock: socket.socket, context: ssl.SSLContext, host: str) -> tls.Channel:
    literal = True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        literal = False
    channel = tls.Channel(sock, context, server_side=False,
                          server_hostname=host if (o.verify and o.check_name) or not literal else None)
    try:
        channel.handshake(max(sum(o.timeouts), 1))
    except ssl.SSLCertVerificationError as err:
        if err.verify_code in NAME_MISMATCH:
            exitcodes.fatal(PROG, f"server hostname does not match certificate: {host}")
        exitcodes.fatal(PROG, f"unable to verify server certificate: {tls.reason(err)}")
    except (OSError, ssl.SSLError) as err:
        exitcodes.fatal(PROG, f"unable to SSL connect: {tls.reason(err)}")
    if o.verbosity >= 2:
        exitcodes.say(f"{PROG}: ssl connect")
    return channel


def _start(program: list[str], env: dict, fds: dict[int, int], keep: tuple[int, ...],
           close: tuple[int, ...]) -> int:
    """program in a child, with fds arranged (target: source) and env; its pid."""

    def run() -> None:
        for other in close:
            os.close(other)
        sources = set(fds.values())
        launch.arrange(fds)
        for other in sources - set(fds):
            os.close(other)
        try:
            launch.exec_program(program, env, keep_fds=keep)
        except OSError as err:
            exitcodes.fatal_sys(PROG, f"unable to run {program[0]}", err)

    try:
        return tls.fork_child(run)
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to fork", err)


def _relay(o: Options, relay: tls.Relay, pid: int) -> NoReturn:
    """Relay until the end; exit as the program did, or 111 when TLS broke off."""
    server_loop.quiet_interrupt()  # Ctrl-C ends the relay as it ends the program, quietly
    relay.run()
    if relay.trouble and relay.status is None:
        tls.terminate(pid)
    status = relay.status if relay.status is not None else tls.wait_child(pid)
    if relay.trouble:
        exitcodes.fatal(PROG, f"unable to speak TLS: {relay.trouble}")
    tls.exit_as(status)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    for fd in NETWORK_FDS:  # as tcpclient: stray 6 and 7 are not the network
        try:
            os.close(fd)
        except OSError:
            pass
    o, args = parse(argv)
    if o.verbosity == 0:
        sys.stderr = tcp_connect.Silent()
    if len(args) < 3:
        exitcodes.usage(PROG, USAGE)
    host = args[0] if args[0] not in ("", "0") else "127.0.0.1"
    port = tcp_connect.parse_port(args[1])
    if port is None:
        exitcodes.fatal(PROG, f"unable to figure out port number for {args[1]}")
    program = args[2:]
    password = tls.read_password(3) if o.password else None
    try:
        context, own = tls.client_context(o.cafile, o.cadir, o.certfile, o.keyfile, password,
                                          o.ciphers, o.verify, o.check_name)
    except tls.Trouble as trouble:
        exitcodes.fatal(PROG, str(trouble))

    addresses = tcp_connect.resolve(PROG, host)
    if not addresses:
        exitcodes.fatal(PROG, f"no IP address for {host}")
    sock = tcp_connect.connect_any(PROG, addresses, port, o.local_ip, o.local_port, o.timeouts)
    if not o.delay:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    prefixes = ("SSL", "TCP") if o.tcp_env else ("SSL",)
    env = tcp_connect.environment(PROG, sock, o.local_name, o.remote_host, o.remote_info,
                                  o.info_timeout, o.verbosity, prefixes, "SSL")
    net = sock.fileno()
    os.set_inheritable(net, False)
    ours, theirs = socket.socketpair()
    if not o.delayed:
        channel = _handshake(o, sock, context, host)
        if o.ssl_env:
            env.update(tls.environment(channel, False, own))
        pid = _start(program, env, {6: theirs.fileno(), 7: theirs.fileno()}, NETWORK_FDS,
                     (net, ours.fileno()))
        theirs.close()
        _relay(o, tls.Relay(channel, ours, pid, o.idle), pid)

    control, control_theirs = socket.socketpair()
    env.update({name: str(fd) for name, fd in UCSPITLS_FDS.items()})
    pid = _start(program, env, {6: net, 7: net, 3: control_theirs.fileno(), 4: theirs.fileno(),
                                5: theirs.fileno()},
                 (*UCSPITLS_FDS.values(), *NETWORK_FDS), (ours.fileno(), control.fileno()))
    control_theirs.close()
    theirs.close()
    server_loop.quiet_interrupt()
    channel = tls.ucspitls_start(control, pid, lambda: _handshake(o, sock, context, host),
                                 lambda channel: tls.environment(channel, False, own),
                                 closing=(sock, ours))
    _relay(o, tls.Relay(channel, ours, pid, o.idle), pid)
    return 0
