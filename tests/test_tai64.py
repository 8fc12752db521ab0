"""supervise.tai64: the TAI64N label encode/decode pair and tai64nlocal's reading."""

import time

import pytest
from hypothesis import given, settings, strategies as st

from supervise import tai64

SECONDS = st.integers(min_value=-(1 << 40), max_value=1 << 40)
NANOS = st.integers(min_value=0, max_value=999_999_999)


def test_epoch_is_two_to_the_62_plus_ten_seconds():
    assert tai64.encode(0, 0) == b"@400000000000000a00000000"


def test_label_from_the_multilog_manual_decodes_to_its_date():
    seconds, nano = tai64.decode(b"@400000003b4a39c23294b13c")
    assert time.gmtime(seconds)[:6] == (2001, 7, 9, 23, 9, 44)
    assert nano == 848605500


@given(SECONDS, NANOS)
def test_encode_then_decode_gives_the_same_time(seconds, nano):
    label = tai64.encode(seconds, nano)
    assert len(label) == 25 and label.startswith(b"@")
    assert label[1:] == label[1:].lower()
    assert tai64.decode(label) == (seconds, nano)


@given(SECONDS, NANOS)
def test_scan_reads_what_encode_writes(seconds, nano):
    assert tai64.scan(tai64.encode(seconds, nano)[1:]) == (seconds, nano)


@given(st.binary(max_size=30))
def test_decode_accepts_only_at_and_24_lowercase_hex_digits(data):
    strict = (len(data) == 25 and data[:1] == b"@"
              and all(c in b"0123456789abcdef" for c in data[1:]))
    try:
        tai64.decode(data)
        accepted = True
    except tai64.BadLabel:
        accepted = False
    assert accepted == strict


@pytest.mark.parametrize("bad", [b"", b"@", b"400000003b4a39c23294b13c0", b"@400000003B4A39C23294B13C",
                                 b"@400000003b4a39c23294b13", b"@400000003b4a39c23294b13cc",
                                 b"@400000003b4a39c23294b13g"])
def test_decode_rejects_malformed_labels(bad):
    with pytest.raises(tai64.BadLabel):
        tai64.decode(bad)


@pytest.mark.parametrize("digits, expected", [
    (b"", (-(1 << 62) - 10, 0)),                      # "@" alone: time 0 minus the offset
    (b"a", (-(1 << 62) - 10, 10)),                    # up to 8 digits are all nanoseconds
    (b"4000000000000000ffffffff", (-10, 0xFFFFFFFF)),  # nanoseconds beyond 10^9 kept
    (b"ffffffffffffffffffffffff", (-(1 << 62) - 11, 0xFFFFFFFF)),  # wraps as signed 64 bits
    (b"10400000003b4a39c23294b13c", (994720184, 848605500)),  # extra digits shift out
])
def test_scan_reads_any_number_of_digits_as_the_c_tool_does(digits, expected):
    assert tai64.scan(digits) == expected


def test_now_has_microsecond_resolution_plus_500_nanoseconds():
    before = time.time()
    seconds, nano = tai64.decode(tai64.now())
    after = time.time()
    assert nano % 1000 == 500
    assert before - 1 <= seconds + nano / 1e9 <= after + 1


def test_format_local_pads_every_field(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert tai64.format_local(994720184, 848605500) == b"2001-07-09 23:09:44.848605500"
        assert tai64.format_local(0, 5) == b"1970-01-01 00:00:00.000000005"
        assert tai64.format_local(0, 0xFFFFFFFF) == b"1970-01-01 00:00:00.4294967295"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_format_local_raises_when_localtime_cannot_represent_the_time():
    with pytest.raises((OverflowError, OSError)):
        tai64.format_local(-(1 << 62) - 10, 0)


@settings(max_examples=50)
@given(st.integers(min_value=-(1 << 34), max_value=1 << 35), NANOS)
def test_format_local_agrees_with_time_localtime(seconds, nano):
    tm = time.localtime(seconds)
    text = tai64.format_local(seconds, nano).decode()
    assert text.startswith(f"{tm.tm_year}-{tm.tm_mon:02d}-{tm.tm_mday:02d} ")
    assert text.endswith(f".{nano:09d}")

