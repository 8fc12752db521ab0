"""tcpclient: make an outgoing TCP connection and run a program on it (ucspi-tcp 0.88).

Synopsis:
    tcpclient [ -hHrRdDqQv ] [ -i localip ] [ -p localport ] [ -T timeoutconn ]
              [ -l localname ] [ -t timeoutinfo ] host port program [ arg ... ]

host is 0 (this machine, 127.0.0.1), a dotted-decimal address, an IPv6 address (beyond
0.88, as ucspi-tcp6 does) or a name looked up in DNS (A, then AAAA records); port is a
number or a name from /etc/services. Each address is tried in turn: -T x+y waits x
seconds per address, then y seconds more for each address that timed out (default 2+58;
a single address gets x+y at once; without +y there is no second try).

On success program runs with descriptor 6 reading from the network and descriptor 7
writing to it, and the environment of tcp-environ(5): PROTO=TCP, TCPLOCALIP,
TCPLOCALPORT, TCPLOCALHOST (-l name, else the PTR name of the local address),
TCPREMOTEIP, TCPREMOTEPORT, TCPREMOTEHOST (PTR name; removed with -H), TCPREMOTEINFO
(RFC 1413 answer within -t seconds, default 26; removed with -R). As in the C tool, an
address without a PTR name gives an empty TCPLOCALHOST/TCPREMOTEHOST and a DNS failure
removes the variable. An IPv6 connection has PROTO=TCP6, the compactified addresses, and
also TCP6LOCALIP, TCP6LOCALPORT, TCP6LOCALHOST, TCP6REMOTEIP, TCP6REMOTEPORT,
TCP6REMOTEHOST, TCP6REMOTEINFO and, for a link-local address, TCP6INTERFACE
(ucspi-tcp6's names, as our tcpserver sets them).

Options: -q quiet (no diagnostics), -Q normal, -v verbose (`tcpclient: connected to IP
port N`); -d delay (default) / -D TCP_NODELAY; -h / -H remote name look-up on / off;
-r / -R remote info look-up on / off; -i and -p the local address and port to bind.

Diagnostics and exit codes, as the C tool's:
    tcpclient: usage: ...                                   100
    tcpclient: unable to connect to IP port N: reason       (each failed address)
    then exit 111 when no address accepted;
    tcpclient: fatal: unable to figure out port number for X / no IP address for X /
    temporarily unable to figure out IP address for X: ... / unable to bind socket: ... /
    unable to run program: ...                              111
Otherwise the exit status is the program's.

Files: /etc/services. Environment: $DNSCACHEIP or /etc/resolv.conf for DNS look-ups.
The connection machinery, shared with sslclient, is ucspi.runtime.tcp_connect.
"""

import os
import socket
import sys

from ucspi.runtime import exitcodes, launch, sgetopt, tcp_connect
from ucspi.runtime.tcp_connect import (ip4_scan, literal_ips, parse_port,  # noqa: F401
                                       parse_timeouts)

PROG = "tcpclient"
USAGE = ("tcpclient [ -hHrRdDqQv ] [ -i localip ] [ -p localport ] [ -T timeoutconn ] "
         "[ -l localname ] [ -t timeoutinfo ] host port program")
NETWORK_FDS = (6, 7)


def _to_network_fds(sock: socket.socket) -> None:
    """The connection on descriptors 6 (read) and 7 (write), open across exec."""
    fd = sock.detach()
    if fd != 6:
        os.dup2(fd, 6)
    os.set_inheritable(6, True)
    os.dup2(6, 7)
    if fd not in NETWORK_FDS:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    # Like the C tool: stray descriptors 6 and 7 must not be mistaken for the network.
    for fd in NETWORK_FDS:
        try:
            os.close(fd)
        except OSError:
            pass
    opts, args = sgetopt.options(argv, "dDvqQhHrRi:p:t:T:l:", PROG, USAGE)
    verbosity, delay, flag_host, flag_info = 1, True, True, True
    info_timeout, timeouts = 26, (2, 58)
    local_ip, local_port, forcelocal = None, 0, None
    for opt, arg in opts:
        if opt in "dD":
            delay = opt == "d"
        elif opt in "vqQ":
            verbosity = {"v": 2, "q": 0, "Q": 1}[opt]
        elif opt in "hH":
            flag_host = opt == "h"
        elif opt in "rR":
            flag_info = opt == "r"
        elif opt == "l":
            forcelocal = arg
        elif opt == "t":
            info_timeout = sgetopt.scan_ulong(arg)
        elif opt == "T":
            timeouts = parse_timeouts(arg)
        elif opt == "p":
            local_port = sgetopt.scan_ulong(arg) % 65536
        elif opt == "i":
            local_ip = tcp_connect.scan_local_ip(PROG, USAGE, arg)
    if verbosity == 0:
        sys.stderr = tcp_connect.Silent()

    if not args:
        exitcodes.usage(PROG, USAGE)
    host = args[0]
    if host in ("", "0"):
        host = "127.0.0.1"
    if len(args) < 2:
        exitcodes.usage(PROG, USAGE)
    port = parse_port(args[1])
    if port is None:
        exitcodes.fatal(PROG, f"unable to figure out port number for {args[1]}")
    program = args[2:]
    if not program:
        exitcodes.usage(PROG, USAGE)

    addresses = tcp_connect.resolve(PROG, host)
    if not addresses:
        exitcodes.fatal(PROG, f"no IP address for {host}")
    sock = tcp_connect.connect_any(PROG, addresses, port, local_ip, local_port, timeouts)
    if not delay:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # as the C tool: if it fails, bummer
    env = tcp_connect.environment(PROG, sock, forcelocal, flag_host, flag_info, info_timeout, verbosity)
    try:
        _to_network_fds(sock)
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to set up descriptor 6", err)
    try:
        launch.exec_program(program, env, keep_fds=NETWORK_FDS)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {program[0]}", err)
    return exitcodes.TEMPORARY

