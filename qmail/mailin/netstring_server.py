"""What the QMTP and QMQP servers (qmail-qmtpd, qmail-qmqpd) share.

  identity(env)        the peer as tcp-environ(5) describes it, for the Received line
  answer(result, qp)   the K/Z/D answer text for a qmail-queue result ("Kok TIME qp PID")
  write_all(data)      answer the client; a vanished client ends the session with exit 0
  limit_session(secs)  exit 111 when the session lasts longer (qmail's alarm(3600))
"""

import os
import signal
import time

from qmail.queue import queue_client
from ucspi.runtime import durable, exitcodes


def identity(env) -> tuple[bytes, bytes, bytes, bytes | None]:
    """(local, remoteip, remotehost, remoteinfo) with qmail's "unknown" defaults."""
    def get(name, default=None):
        value = env.get(name)
        return default if value is None else os.fsencode(value)
    local = get("TCPLOCALHOST") or get("TCPLOCALIP") or b"unknown"
    return (local, get("TCPREMOTEIP", b"unknown"), get("TCPREMOTEHOST", b"unknown"),
            get("TCPREMOTEINFO"))


def answer(result: queue_client.Result, qp: int) -> bytes:
    """ "Kok TIME qp PID" when queued, else qmail-queue's text after its D or Z."""
    if result.code == 0 and not result.text:
        return b"Kok %d qp %d" % (int(time.time()), qp)
    return (b"D" if result.permanent else b"Z") + result.text.encode("utf-8", "surrogateescape")


def write_all(data: bytes) -> None:
    try:
        durable.write_all(1, data)
    except OSError:
        raise SystemExit(0)


def _expired(signum, frame):
    raise SystemExit(exitcodes.TEMPORARY)


def limit_session(seconds: int) -> None:
    signal.signal(signal.SIGALRM, _expired)
    signal.alarm(seconds)
