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
"""

import errno
import ipaddress
import os
import random
import select
import socket
import sys

from ucspi.runtime import dns_lookup, exitcodes, launch, remote_info, sgetopt, tcp_environ

PROG = "tcpclient"
USAGE = ("tcpclient [ -hHrRdDqQv ] [ -i localip ] [ -p localport ] [ -T timeoutconn ] "
         "[ -l localname ] [ -t timeoutinfo ] host port program")
NETWORK_FDS = (6, 7)
POLL_MAX_MS = 2**31 - 1  # poll's limit (24 days): longer -T values wait that long
IPV6_NAMES = (*tcp_environ.IPV6_NAMES, "TCP6INTERFACE")


def ip4_scan(text: str) -> tuple[str, int] | None:
    """djb's ip4_scan: a dotted quad at the start of text and how many characters it
    used (trailing text is allowed; each part is taken modulo 256), or None."""
    parts, pos = [], 0
    for i in range(4):
        start = pos
        while pos < len(text) and "0" <= text[pos] <= "9":
            pos += 1
        if pos == start:
            return None
        parts.append(int(text[start:pos]) % 256)
        if i < 3:
            if pos >= len(text) or text[pos] != ".":
                return None
            pos += 1
    return ".".join(map(str, parts)), pos


def literal_ips(host: str) -> list[str] | None:
    """The addresses a host made of digits, dots and brackets stands for, as djbdns's
    dns_ip4 reads it without asking DNS (every 4 parts an address, the rest dropped);
    an IPv6 literal; or None when host is a name."""
    if ":" in host:
        try:
            address = ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            return None
        # An IPv4-mapped address is an IPv4 connection, as ucspi-tcp6 treats it.
        return [str(address.ipv4_mapped or address)]
    if any(ch not in "0123456789.[]" for ch in host):
        return None
    codes, code = [], 0
    for ch in host + ".":
        if ch in "[]":
            continue
        if ch == ".":
            codes.append(code)
            code = 0
        else:
            code = (code * 10 + ord(ch) - 48) % 256
    return [".".join(map(str, codes[i:i + 4])) for i in range(0, len(codes) - 3, 4)]


def parse_port(text: str) -> int | None:
    """A port number (all digits, taken modulo 65536 as C's uint16) or a service name."""
    if all("0" <= ch <= "9" for ch in text):
        return sgetopt.scan_ulong(text) % 65536
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        return None


def parse_timeouts(text: str) -> tuple[int, int]:
    """-T x+y; a missing +y is 0 (no second try)."""
    digits = len(text) - len(text.lstrip("0123456789"))
    first, rest = sgetopt.scan_ulong(text), text[digits:]
    if rest.startswith("+"):
        rest = rest[1:]
    return first, sgetopt.scan_ulong(rest)


def timeoutconn(sock: socket.socket, ip: str, port: int, timeout: float) -> int:
    """Connect within timeout seconds; 0 on success, else the errno (ETIMEDOUT)."""
    sock.setblocking(False)
    err = sock.connect_ex((ip, port))
    if err in (errno.EINPROGRESS, errno.EAGAIN):
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        if not poller.poll(min(timeout * 1000, POLL_MAX_MS)):
            return errno.ETIMEDOUT
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err == 0:
        sock.setblocking(True)
    return err


def host_name(ip: str) -> str | None:
    """The PTR name as tcpclient sets it: "" when there is none, None on DNS trouble."""
    try:
        return dns_lookup.name_of(ip) or ""
    except (dns_lookup.DNSTrouble, ValueError):
        return None


def set_env(env: dict, name: str, value: str | None) -> None:
    """pathexec_env: set name, or remove it when value is None."""
    if value is None:
        env.pop(name, None)
    else:
        env[name] = value


class _Silent:
    """stderr under -q: the C tool points its error buffer at descriptor -1."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass


def _split_address(sockaddr) -> tuple[str, int, str | None]:
    """(compactified address, port, interface name of a link-local scope or None)."""
    ip, port = sockaddr[0], sockaddr[1]
    interface = None
    if "%" in ip:
        ip = ip.split("%", 1)[0]
    if len(sockaddr) >= 4 and sockaddr[3]:
        try:
            interface = socket.if_indextoname(sockaddr[3])
        except OSError:
            interface = None
    return tcp_environ.unmapped(ip), port, interface


def _connect_any(addresses: list[str], port: int, local_ip: str | None, local_port: int,
                 timeouts: tuple[int, int]) -> socket.socket:
    """Try each address (two rounds, as -T x+y says); exit 111 when none accepts."""
    if len(addresses) == 1:
        timeouts = (timeouts[0] + timeouts[1], 0)
    for round_ in (0, 1):
        retry = []
        for ip in addresses:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as err:
                exitcodes.fatal_sys(PROG, "unable to create socket", err)
            try:
                bind_ip = local_ip or ("::" if family == socket.AF_INET6 else "0.0.0.0")
                sock.bind((bind_ip, local_port))
            except OSError as err:
                exitcodes.fatal_sys(PROG, "unable to bind socket", err)
            err = timeoutconn(sock, ip, port, timeouts[round_])
            if err == 0:
                return sock
            sock.close()
            if round_ == 0 and timeouts[1] and err == errno.ETIMEDOUT:
                retry.append(ip)
            else:
                exitcodes.say(f"{PROG}: unable to connect to {ip} port {port}: "
                              f"{exitcodes.error_str(err)}")
        addresses = retry
    raise SystemExit(exitcodes.TEMPORARY)


def _resolve(host: str) -> list[str]:
    ips = literal_ips(host)
    if ips is not None:
        return ips
    try:
        found = dns_lookup.ips_of(host)
        # djbdns's dns_ip4 puts several A records in random order: load is spread.
        random.shuffle(found)
        try:
            # Beyond 0.88: AAAA records too; their trouble only matters without an A.
            found += [ip for ip in dns_lookup.ips_of(host, ipv6=True) if ":" in ip]
        except dns_lookup.DNSTrouble:
            if not found:
                raise
        return found
    except dns_lookup.DNSTrouble as err:
        reason = "timed out" if "timed out" in str(err).lower() else "temporary failure"
        exitcodes.fatal(PROG, f"temporarily unable to figure out IP address for {host}: {reason}")


def _environment(sock: socket.socket, forcelocal, flag_host, flag_info, info_timeout,
                 verbosity) -> dict:
    """The tcp-environ(5) variables for the connected socket, on top of ours."""
    env = launch.environ()
    local_ip, local_port, interface = _split_address(sock.getsockname())
    try:
        remote_ip, remote_port, _ = _split_address(sock.getpeername())
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to get remote address", err)
    ipv6 = ":" in local_ip
    env["PROTO"] = "TCP6" if ipv6 else "TCP"
    env["TCPLOCALPORT"] = str(local_port)
    env["TCPLOCALIP"] = local_ip
    local_host = forcelocal if forcelocal is not None else host_name(local_ip)
    set_env(env, "TCPLOCALHOST", local_host)
    env["TCPREMOTEPORT"] = str(remote_port)
    env["TCPREMOTEIP"] = remote_ip
    if verbosity >= 2:
        exitcodes.say(f"{PROG}: connected to {remote_ip} port {remote_port}")
    remote_host = host_name(remote_ip) if flag_host else None
    set_env(env, "TCPREMOTEHOST", remote_host)
    info = None
    if flag_info:
        info = remote_info.ident(local_ip, local_port, remote_ip, remote_port, info_timeout)
    set_env(env, "TCPREMOTEINFO", info)
    if ipv6:
        for name in IPV6_NAMES:
            env.pop(name, None)
        env.update(TCP6LOCALIP=local_ip, TCP6LOCALPORT=str(local_port),
                   TCP6REMOTEIP=remote_ip, TCP6REMOTEPORT=str(remote_port))
        set_env(env, "TCP6LOCALHOST", local_host)
        set_env(env, "TCP6REMOTEHOST", remote_host)
        set_env(env, "TCP6REMOTEINFO", info)
        set_env(env, "TCP6INTERFACE", interface)
    return env


def _to_network_fds(sock: socket.socket) -> None:
    """The connection on descriptors 6 (read) and 7 (write), open across exec."""
    fd = sock.detach()
    if fd != 6:
        os.dup2(fd, 6)
    os.set_inheritable(6, True)
    os.dup2(6, 7)
    if fd not in NETWORK_FDS:
        os.close(fd)


def _scan_local_ip(text: str) -> str:
    """-i: a dotted quad as ip4_scan reads it, or (beyond 0.88) an IPv6 address."""
    if ":" in text:
        try:
            return str(ipaddress.IPv6Address(text.split("%", 1)[0])) + (
                "%" + text.split("%", 1)[1] if "%" in text else "")
        except ValueError:
            exitcodes.usage(PROG, USAGE)
    scanned = ip4_scan(text)
    if scanned is None:
        exitcodes.usage(PROG, USAGE)
    return scanned[0]


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
            local_ip = _scan_local_ip(arg)
    if verbosity == 0:
        sys.stderr = _Silent()

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

    addresses = _resolve(host)
    if not addresses:
        exitcodes.fatal(PROG, f"no IP address for {host}")
    sock = _connect_any(addresses, port, local_ip, local_port, timeouts)
    if not delay:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # as the C tool: if it fails, bummer
    env = _environment(sock, forcelocal, flag_host, flag_info, info_timeout, verbosity)
    try:
        _to_network_fds(sock)
    except OSError as err:
        exitcodes.fatal_sys(PROG, "unable to set up descriptor 6", err)
    try:
        launch.exec_program(program, env, keep_fds=NETWORK_FDS)
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to run {program[0]}", err)
    return exitcodes.TEMPORARY

