"""tcpclient's machinery, shared by tcpclient and sslclient: the host and port as the C
tool reads them, the connection attempts (-T x+y), and the tcp-environ(5) variables of the
connected socket (or another prefix's: sslclient's SSL*). prog, where a function takes it,
is the name in the diagnostics. tcpclient's docstring says what each does.
"""

from __future__ import annotations

import errno
import ipaddress
import random
import select
import socket

from ucspi.runtime import dns_lookup, exitcodes, launch, remote_info, sgetopt, tcp_environ

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


class Silent:
    """stderr under -q: the C tool points its error buffer at descriptor -1."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass


def split_address(sockaddr) -> tuple[str, int, str | None]:
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


def connect_any(prog: str, addresses: list[str], port: int, local_ip: str | None, local_port: int,
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
                exitcodes.fatal_sys(prog, "unable to create socket", err)
            try:
                bind_ip = local_ip or ("::" if family == socket.AF_INET6 else "0.0.0.0")
                sock.bind((bind_ip, local_port))
            except OSError as err:
                exitcodes.fatal_sys(prog, "unable to bind socket", err)
            err = timeoutconn(sock, ip, port, timeouts[round_])
            if err == 0:
                return sock
            sock.close()
            if round_ == 0 and timeouts[1] and err == errno.ETIMEDOUT:
                retry.append(ip)
            else:
                exitcodes.say(f"{prog}: unable to connect to {ip} port {port}: "
                              f"{exitcodes.error_str(err)}")
        addresses = retry
    raise SystemExit(exitcodes.TEMPORARY)


def resolve(prog: str, host: str) -> list[str]:
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
        exitcodes.fatal(prog, f"temporarily unable to figure out IP address for {host}: {reason}")


def environment(prog: str, sock: socket.socket, forcelocal, flag_host, flag_info, info_timeout,
                verbosity, prefixes: tuple[str, ...] = ("TCP",), proto: str | None = None) -> dict:
    """The tcp-environ(5) variables for the connected socket, on top of ours, under each of
    prefixes (sslclient: SSL, and TCP with -e; the TCP6* ones come with TCP for an IPv6
    connection); PROTO is proto, else TCP or TCP6."""
    env = launch.environ()
    local_ip, local_port, interface = split_address(sock.getsockname())
    try:
        remote_ip, remote_port, _ = split_address(sock.getpeername())
    except OSError as err:
        exitcodes.fatal_sys(prog, "unable to get remote address", err)
    ipv6 = ":" in local_ip
    env["PROTO"] = proto or ("TCP6" if ipv6 else "TCP")
    for p in prefixes:
        env[p + "LOCALPORT"] = str(local_port)
        env[p + "LOCALIP"] = local_ip
    local_host = forcelocal if forcelocal is not None else host_name(local_ip)
    for p in prefixes:
        set_env(env, p + "LOCALHOST", local_host)
    for p in prefixes:
        env[p + "REMOTEPORT"] = str(remote_port)
        env[p + "REMOTEIP"] = remote_ip
    if verbosity >= 2:
        exitcodes.say(f"{prog}: connected to {remote_ip} port {remote_port}")
    remote_host = host_name(remote_ip) if flag_host else None
    for p in prefixes:
        set_env(env, p + "REMOTEHOST", remote_host)
    info = None
    if flag_info:
        info = remote_info.ident(local_ip, local_port, remote_ip, remote_port, info_timeout)
    for p in prefixes:
        set_env(env, p + "REMOTEINFO", info)
    if ipv6 and "TCP" in prefixes:
        for name in IPV6_NAMES:
            env.pop(name, None)
        env.update(TCP6LOCALIP=local_ip, TCP6LOCALPORT=str(local_port),
                   TCP6REMOTEIP=remote_ip, TCP6REMOTEPORT=str(remote_port))
        set_env(env, "TCP6LOCALHOST", local_host)
        set_env(env, "TCP6REMOTEHOST", remote_host)
        set_env(env, "TCP6REMOTEINFO", info)
        set_env(env, "TCP6INTERFACE", interface)
    return env


def scan_local_ip(prog: str, usage: str, text: str) -> str:
    """-i: a dotted quad as ip4_scan reads it, or (beyond 0.88) an IPv6 address."""
    if ":" in text:
        try:
            return str(ipaddress.IPv6Address(text.split("%", 1)[0])) + (
                "%" + text.split("%", 1)[1] if "%" in text else "")
        except ValueError:
            exitcodes.usage(prog, usage)
    scanned = ip4_scan(text)
    if scanned is None:
        exitcodes.usage(prog, usage)
    return scanned[0]
