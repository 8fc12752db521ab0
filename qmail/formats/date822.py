"""RFC 822 dates as qmail writes them (date822fmt.c): `26 Sep 1995 04:46:54 -0000`.

Always UTC with the zone written -0000, the day of the month without a leading zero. The
Received lines (qmail-queue, qmail-smtpd and the other network entrances), qmail-inject's
Date: field and a bounce's Date: field use it; qmail-qread shows it without the zone.
MONTHS is also the table of mbox's From_ line date and predate's local date.
"""

import time

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def fmt(when: float | None = None) -> str:
    """The date of when (seconds since the epoch; now if None), as date822fmt writes it."""
    t = time.gmtime(time.time() if when is None else when)
    return (f"{t.tm_mday} {MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} -0000")
