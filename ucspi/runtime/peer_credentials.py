"""The credentials of a UNIX-socket peer, from the kernel (SO_PEERCRED), never from the peer."""

import socket
import struct
from dataclasses import dataclass

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def of(sock: socket.socket) -> PeerCredentials:
    """The peer's pid, effective uid and gid as the kernel recorded them at connect time."""
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return PeerCredentials(pid, uid, gid)
