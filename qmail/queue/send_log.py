"""qmail-send's log lines (qmail-log(5)), byte for byte.

Every line is one bytes object ending in a newline, written to the log descriptor at once.
Text that came from outside (addresses, delivery reports) goes through `safe`: a newline
becomes /, and %, space, controls and bytes above 126 become _, as qmail's logsafe does.
"""

from ucspi.runtime import durable

CHANNEL_WORDS = ("local", "remote")


def safe(text: bytes) -> bytes:
    """logsafe: newline -> '/', anything not printable (or %) -> '_'."""
    return text.translate(_SAFE)


_SAFE = bytes(
    ord("/") if ch == 10 else (ch if 33 <= ch <= 126 and ch != ord("%") else ord("_"))
    for ch in range(256))


def new_msg(msg_id: int) -> bytes:
    return b"new msg %d\n" % msg_id


def info_msg(msg_id: int, size: int, sender: bytes, qp: int, uid: int) -> bytes:
    return b"info msg %d: bytes %d from <%s> qp %d uid %d\n" % (
        msg_id, size, safe(sender), qp, uid)


def starting_delivery(delivery: int, msg_id: int, channel: int, recip: bytes) -> bytes:
    return b"starting delivery %d: msg %d to %s %s\n" % (
        delivery, msg_id, CHANNEL_WORDS[channel].encode(), safe(recip))


def status(used: tuple[int, int], limits: tuple[int, int], exitasap: bool) -> bytes:
    line = b"status: local %d/%d remote %d/%d" % (used[0], limits[0], used[1], limits[1])
    return line + (b" exitasap\n" if exitasap else b"\n")


def delivery_result(delivery: int, kind: str, text: bytes) -> bytes:
    """kind: success, failure or deferral."""
    return b"delivery %d: %s: %s\n" % (delivery, kind.encode(), safe(text))


def report_mangled(delivery: int) -> bytes:
    return b"delivery %d: report mangled, will defer\n" % delivery


def bounce_msg(msg_id: int, qp: int) -> bytes:
    return b"bounce msg %d qp %d\n" % (msg_id, qp)


def end_msg(msg_id: int) -> bytes:
    return b"end msg %d\n" % msg_id


def triple_bounce(path: str) -> bytes:
    return b"triple bounce: discarding " + path.encode("latin-1") + b"\n"


def warning(text: str) -> bytes:
    return b"warning: " + text.encode("latin-1") + b"\n"


def alert(text: str) -> bytes:
    return b"alert: " + text.encode("latin-1") + b"\n"


def write(fd: int, line: bytes) -> None:
    """Write one line whole; a log that went away is not a reason to stop delivering."""
    try:
        durable.write_all(fd, line)
    except OSError:
        pass
