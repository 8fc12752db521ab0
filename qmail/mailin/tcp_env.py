"""tcp-env: set up TCP environment variables for a program run under inetd (tcp-env(1)).

    tcp-env [ -rR ] [ -t timeout ] program [ arg ... ]

Unless $PROTO is already TCP, sets PROTO=TCP and, from the connection on descriptor 0,
TCPLOCALIP, TCPLOCALPORT, TCPLOCALHOST, TCPREMOTEIP, TCPREMOTEPORT, TCPREMOTEHOST (the
names from DNS, lower case; "softdnserror" when DNS fails temporarily; unset when there
is none) and TCPREMOTEINFO (an RFC 1413 look-up within timeout seconds, default 30; -R
skips it, -r does it), then runs program (see tcp-environ(5)).

Exit codes: the program's; 111, silently, when the descriptor is not a socket, the
program is missing or cannot be run. Environment: PROTO, DNSCACHEIP (for the resolver).
"""

import os
import socket
import sys

from ucspi.runtime import dns_lookup, launch, remote_info, sgetopt, tcp_environ

SOFT_DNS_ERROR = "softdnserror"


def name_of(ip: str) -> str | None:
    try:
        return dns_lookup.name_of(ip)
    except dns_lookup.DNSTrouble:
        return SOFT_DNS_ERROR


class Options:
    remoteinfo = True
    timeout = 30


def options(argv: list[str]) -> tuple[bool, int, list[str]]:
    """subgetopt, which ignores what it does not know (tcp-env prints nothing)."""
    o = Options()
    opts, rest = sgetopt.getopt(argv, "rRt:", quiet=True)
    sgetopt.apply(opts, o, {"r": ("remoteinfo", True), "R": ("remoteinfo", False)},
                  {"t": ("timeout", sgetopt.scan_ulong)})
    return o.remoteinfo, o.timeout, rest


def describe(env: dict, remoteinfo: bool, timeout: int) -> None:
    """Fill env from the socket on descriptor 0 (OSError when it is not one)."""
    sock = socket.socket(fileno=os.dup(0))
    try:
        local = sock.getsockname()
        remote = sock.getpeername()
    finally:
        sock.close()
    local_ip, local_port = tcp_environ.unmapped(local[0]), local[1]
    remote_ip, remote_port = tcp_environ.unmapped(remote[0]), remote[1]
    env["PROTO"] = "TCP"
    env["TCPLOCALPORT"] = str(local_port)
    env["TCPLOCALIP"] = local_ip
    for variable, ip in (("TCPLOCALHOST", local_ip), ("TCPREMOTEHOST", remote_ip)):
        if variable == "TCPREMOTEHOST":
            env["TCPREMOTEPORT"] = str(remote_port)
            env["TCPREMOTEIP"] = remote_ip
        name = name_of(ip)
        if name is None:
            env.pop(variable, None)
        else:
            env[variable] = name
    env.pop("TCPREMOTEINFO", None)
    if remoteinfo:
        info = remote_info.ident(local_ip, local_port, remote_ip, remote_port, timeout)
        if info is not None:
            env["TCPREMOTEINFO"] = info


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    remoteinfo, timeout, args = options(argv)
    if not args:
        return 111
    env = dict(os.environ)
    if env.get("PROTO") != "TCP":
        try:
            describe(env, remoteinfo, timeout)
        except OSError:
            return 111
    try:
        launch.exec_program(args, env)
    except OSError:
        pass
    return 111
