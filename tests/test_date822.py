"""qmail/formats/date822.py: dates as qmail's date822fmt writes them."""

import pytest

from qmail.formats import date822

DATES = [
    (0, "1 Jan 1970 00:00:00 -0000"),
    (812090814, "26 Sep 1995 04:46:54 -0000"),
    (1772694489, "5 Mar 2026 07:08:09 -0000"),  # day without a leading zero
    (1798761599, "31 Dec 2026 23:59:59 -0000"),
]


@pytest.mark.parametrize("when, text", DATES)
def test_fmt_writes_utc_with_minus_zero_zone(when, text):
    assert date822.fmt(when) == text


def test_fmt_without_a_time_is_now(monkeypatch):
    monkeypatch.setattr(date822.time, "time", lambda: 812090814.9)
    assert date822.fmt() == "26 Sep 1995 04:46:54 -0000"


def test_months_are_english_abbreviations_in_order():
    assert date822.MONTHS == ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
