"""qmail-send's retry schedule: when a deferred delivery is tried again (qmail-send(8)).

A message born at `birth` is retried at birth + (s + skip)**2 seconds, where s is the
integer square root of its age now and skip is 10 for local deliveries and 20 for remote
ones: local retries after 100 s, 121 s ... ; remote after 400 s, 441 s ...  Each pass
over a message's recipients schedules the next pass this way.  A message older than
queuelifetime is "dying": a deferral becomes a permanent failure.
"""

SKIP = (10, 20)  # chanskip: local, remote
LIFETIME = 604800  # queuelifetime's default


def isqrt16(x: int) -> int:
    """The integer square root as qmail computes it (16 bits of result, so it tops out at
    65535 for ages past 136 years)."""
    if x <= 0:
        return 0
    y = 0
    yy = 0
    for j in range(15, -1, -1):
        y21 = (y << (j + 1)) + (1 << (j + j))
        if y21 <= x - yy:
            y += 1 << j
            yy += y21
    return y


def next_retry(birth: int, now: int, channel: int) -> int:
    """The time of the next pass for a message born at birth (channel 0 local, 1 remote)."""
    n = 0 if birth > now else isqrt16(now - birth)
    n += SKIP[channel]
    return birth + n * n


def dying(birth: int, now: int, lifetime: int = LIFETIME) -> bool:
    """Whether a deferral now is final (the message outlived queuelifetime)."""
    return now > birth + lifetime
