"""qmail/formats/netstring.py: netstrings as QMTP and QMQP carry them."""

import os

import pytest
from hypothesis import given, settings, strategies as st

from qmail.formats import netstring


@pytest.mark.parametrize("data, encoded", [
    (b"", b"0:,"), (b"hello", b"5:hello,"), (b"a,b:c", b"5:a,b:c,"),
])
def test_encode(data, encoded):
    assert netstring.encode(data) == encoded


def test_encode_list_nests_netstrings():
    assert netstring.encode_list([b"a@b", b"c"]) == b"10:3:a@b,1:c,,"


@pytest.mark.parametrize("buf, error", [
    (b"5:abc", netstring.Incomplete), (b"12", netstring.Incomplete), (b"", netstring.Incomplete),
    (b"3:abc;", netstring.Malformed), (b"x:", netstring.Malformed), (b":abc,", netstring.Malformed),
    (b"-1:", netstring.Malformed), (b"9999999999999:", netstring.TooLong),
])
def test_decode_errors(buf, error):
    with pytest.raises(error):
        netstring.decode(buf)


def test_decode_respects_the_callers_limit():
    with pytest.raises(netstring.TooLong):
        netstring.decode(b"11:hello world,", limit=10)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=50), max_size=8), st.binary(max_size=20))
def test_decode_all_round_trips(items, tail):
    buf = b"".join(netstring.encode(i) for i in items)
    assert netstring.decode_all(buf) == items
    data, rest = netstring.decode(netstring.encode(b"x") + tail)
    assert (data, rest) == (b"x", tail)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_decode_never_crashes(buf):
    try:
        netstring.decode(buf)
    except netstring.NetstringError:
        pass


def reader_over(data: bytes) -> netstring.Reader:
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return netstring.Reader(r, read_size=3)  # tiny reads: pieces cross every boundary


def test_reader_reads_netstrings_across_small_reads():
    reader = reader_over(b"5:hello,0:,3:a,b,")
    assert [reader.netstring() for _ in range(3)] == [b"hello", b"", b"a,b"]
    assert reader.consumed == len(b"5:hello,0:,3:a,b,")
    with pytest.raises(netstring.Incomplete):
        reader.netstring()


def test_reader_chunks_stream_exactly_n_bytes():
    reader = reader_over(b"abcdefgh")
    assert b"".join(reader.chunks(5)) == b"abcde"
    assert reader.take(3) == b"fgh"


@pytest.mark.parametrize("data, error", [
    (b"5:hello;", netstring.Malformed), (b"a:", netstring.Malformed),
    (b":", netstring.Malformed), (b"300000000:", netstring.TooLong), (b"5:he", netstring.Incomplete),
])
def test_reader_errors(data, error):
    with pytest.raises(error):
        reader_over(data).netstring()
