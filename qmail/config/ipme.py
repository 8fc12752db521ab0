"""ipme: this host's IPv4 addresses, as qmail's ipme.c lists them.

The list is 0.0.0.0 ("this host, this network", RFC 1122 3.2.1.3) plus the address of every
interface entry the kernel reports with SIOCGIFCONF whose interface is up. That is the
answer, not "can bind() take it": with net.ipv4.ip_nonlocal_bind=1 every address binds, and
127.0.0.2 binds on any Linux although only 127.0.0.1 is configured on lo.

qmail-smtpd asks it for the localiphost rewrite of user@[a.b.c.d]; qmail-remote asks it to
skip MX hosts that are this host. Read once per process, as ipme_init() does.
"""

import array
import fcntl
import socket
import struct

SIOCGIFCONF = 0x8912
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
IFNAMSIZ = 16
# struct ifreq: the name, then a union whose largest member is struct ifmap
# (two unsigned longs, a short, three chars: 24 bytes on LP64, 16 on ILP32).
_IFMAP = struct.calcsize("@LLHBBB")
_LONG = struct.calcsize("@L")
IFREQ_SIZE = IFNAMSIZ + max(16, -(-_IFMAP // _LONG) * _LONG)
BUFFER_LIMIT = 1 << 20

_cached: frozenset[str] | None = None


class Trouble(Exception):
    """The interface list could not be read (qmail-smtpd: 421, qmail-remote: temporary)."""


def _interface_entries(sock: socket.socket) -> bytes:
    """The raw ifreq array of SIOCGIFCONF, with a buffer grown until the answer fits."""
    size = 64 * IFREQ_SIZE
    while size <= BUFFER_LIMIT:
        buf = array.array("B", bytes(size))
        address, _ = buf.buffer_info()
        request = struct.pack("@iP", size, address)
        answer = fcntl.ioctl(sock.fileno(), SIOCGIFCONF, request)
        used = struct.unpack("@i", answer[:struct.calcsize("@i")])[0]
        if used + IFREQ_SIZE < size:  # room to spare: nothing was cut off
            return buf.tobytes()[:used]
        size *= 2
    raise Trouble("interface list larger than %d bytes" % BUFFER_LIMIT)


def _is_up(sock: socket.socket, name: bytes) -> bool:
    answer = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack("@16sH", name, 0))
    return bool(struct.unpack_from("@H", answer, IFNAMSIZ)[0] & IFF_UP)


def read() -> frozenset[str]:
    """This host's IPv4 addresses now, dotted quads, 0.0.0.0 included. Trouble if unreadable."""
    found = {"0.0.0.0"}
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            entries = _interface_entries(sock)
            for offset in range(0, len(entries) - IFREQ_SIZE + 1, IFREQ_SIZE):
                entry = entries[offset:offset + IFREQ_SIZE]
                name = entry[:IFNAMSIZ].split(b"\0", 1)[0]
                family = struct.unpack_from("@H", entry, IFNAMSIZ)[0]
                if family != socket.AF_INET:
                    continue
                try:
                    if not _is_up(sock, name):
                        continue
                except OSError:
                    continue  # gone since SIOCGIFCONF: not ours any more
                found.add(socket.inet_ntoa(entry[IFNAMSIZ + 4:IFNAMSIZ + 8]))
    except OSError as err:
        raise Trouble(str(err)) from err
    return frozenset(found)


def addresses() -> frozenset[str]:
    """read(), once per process."""
    global _cached
    if _cached is None:
        _cached = read()
    return _cached


def is_me(ip: str) -> bool:
    """Whether the dotted quad ip is one of this host's (ipme_is). Trouble if unreadable."""
    return ip in addresses()
