"""The tcp-environ(5) variables (tcpserver, tcpclient, tcp-env): their names, and a
connection's addresses as the programs put them there.

An IPv4 client of a socket bound to `::` arrives as an IPv4-mapped IPv6 address
(::ffff:a.b.c.d); it is an IPv4 connection and is shown as a.b.c.d, with PROTO=TCP, as
ucspi-tcp6 does. A real IPv6 peer gets PROTO=TCP6 and the TCP6* variables beside TCP*.
"""

FIELDS = ("LOCALIP", "LOCALPORT", "LOCALHOST", "REMOTEIP", "REMOTEPORT", "REMOTEHOST", "REMOTEINFO")
IPV6_NAMES = tuple(f"TCP6{field}" for field in FIELDS)


def unmapped(ip: str) -> str:
    """ip, an IPv4-mapped IPv6 address shown as the IPv4 address it is."""
    return ip[7:] if ip.startswith("::ffff:") and "." in ip else ip


def address_of(sockaddr) -> tuple[str, int, bool]:
    """(ip text, port, is IPv6) of a socket address, v4-mapped addresses as IPv4."""
    ip = unmapped(sockaddr[0])
    return ip, sockaddr[1], ":" in ip
