"""supervise/status: daemontools 0.76's 18-byte service status record, one pack/unpack pair.

Layout (as C supervise writes it and C svstat reads it; learnt from C-written files):

    offset  size  contents
    0       8     TAI64 seconds, big-endian: 2**62 + 10 + unix seconds (libtai's label)
    8       4     nanoseconds, big-endian (the TAI64N fraction)
    12      4     pid of ./run, little-endian; 0 when the service is down
    16      1     paused flag: 1 after `svc -p` while the service is up, else 0
    17      1     want: 'u' (up), 'd' (down), or 0 (started once by `svc -o`)

The time is when the pid last changed (service started or went down). Readers use only
the first 18 bytes; a shorter file is "bad format". This module only converts and
reads (svstat imports it, so it stays light); supervise writes the record durably
(status.new, fsync, rename) with ucspi.runtime.durable.
"""

import collections
import os
import struct
import time

SIZE = 18
TAI_UNIX_OFFSET = 2 ** 62 + 10  # TAI64 label of 1970-01-01 00:00:10 TAI, as libtai's tai_now
_TIME = struct.Struct(">QL")
_PID = struct.Struct("<L")


class BadFormat(ValueError):
    """bad format"""


# collections.namedtuple, not typing.NamedTuple: svstat starts in a few ms without typing.
class Status(collections.namedtuple("Status", "tai_seconds nanoseconds pid paused want")):
    """One decoded status record; fields keep the raw values so pack(unpack(x)) == x.

    tai_seconds: TAI64 label (see TAI_UNIX_OFFSET); nanoseconds; pid (0: down);
    paused: byte 16, nonzero means paused; want: "u", "d", or "" (byte 0), any other
    byte as chr(byte).
    """
    __slots__ = ()

    @property
    def up(self) -> bool:
        return self.pid != 0

    def unix_seconds(self) -> int:
        return self.tai_seconds - TAI_UNIX_OFFSET


def now_tai64n() -> tuple[int, int]:
    """The current time as (TAI64 seconds label, nanoseconds), as libtai's taia_now."""
    ns = time.time_ns()
    return TAI_UNIX_OFFSET + ns // 1_000_000_000, ns % 1_000_000_000


# libtai's tai_now is time(), which on Linux reads the clock as of the kernel's last tick
# (CLOCK_REALTIME_COARSE): just after each second it is still a few milliseconds behind
# time.time(), and svstat's "S seconds" would be one more than C's.
_COARSE_CLOCK = getattr(time, "CLOCK_REALTIME_COARSE", 5 if os.uname().sysname == "Linux" else None)


def now_tai64() -> int:
    """The current time as a TAI64 seconds label (libtai's tai_now: time())."""
    if _COARSE_CLOCK is not None:
        try:
            return TAI_UNIX_OFFSET + int(time.clock_gettime(_COARSE_CLOCK))
        except OSError:
            pass
    return TAI_UNIX_OFFSET + int(time.time())


def pack(status: Status) -> bytes:
    """The 18 bytes of status."""
    want = ord(status.want) if status.want else 0
    return (_TIME.pack(status.tai_seconds, status.nanoseconds) + _PID.pack(status.pid)
            + bytes((status.paused, want)))


def unpack(data: bytes) -> Status:
    """Decode the first 18 bytes of data; raises BadFormat when there are fewer."""
    if len(data) < SIZE:
        raise BadFormat("bad format")
    seconds, nano = _TIME.unpack_from(data, 0)
    (pid,) = _PID.unpack_from(data, 12)
    return Status(seconds, nano, pid, data[16], chr(data[17]) if data[17] else "")


def read(path: str) -> Status:
    """Read and decode a status file; raises OSError or BadFormat."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = b""
        while len(data) < SIZE:
            chunk = os.read(fd, SIZE - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return unpack(data)
