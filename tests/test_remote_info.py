"""ucspi.runtime.remote_info: the RFC 1413 look-up, against a fake identd on 127.0.0.1/::1:113."""

import socket
import threading
import time

import pytest
from hypothesis import given, strategies as st

from tests import identd
from ucspi.runtime import remote_info


# ---- the answer parser, as remoteinfo.c reads an answer

ANSWERS = [
    (b"6193, 23 : USERID : UNIX : stjohns\r\n", b"stjohns"),
    (b"6193,23:USERID:UNIX:stjohns\n", b"stjohns"),
    (b"6193 , 23 : USERID : OTHER,US-ASCII : a b\tc\r\n", b"abc"),  # blanks dropped
    (b"1,2:USERID:UNIX:user:with:colons\r\n", b"user:with:colons"),
    (b"6193, 23 : ERROR : NO-USER\r\n", b""),  # fewer than three colons: empty answer
    (b"\n", b""),
    (b"garbage without newline", None),
    (b"1,2:USERID:UNIX:half", None),
    (b"1,2:a:b:" + b"x" * 300 + b"\n", b"x" * 257),  # cut after 257 bytes
    (b"1,2:a:b:" + b"x" * 300, b"x" * 257),  # even without the newline
]


@pytest.mark.parametrize("data,expected", ANSWERS)
def test_answer_is_read_as_remoteinfo_c_reads_it(data, expected):
    assert remote_info.parse_answer(data) == expected


@given(st.binary(max_size=600))
def test_answer_never_holds_blanks_and_is_bounded(data):
    answer = remote_info.parse_answer(data)
    if answer is not None:
        assert not set(answer) & set(b" \t\r\n")
        assert len(answer) <= 257


@given(st.text(alphabet=st.characters(blacklist_characters=" \t\r\n:", min_codepoint=33,
                                     max_codepoint=126), max_size=200))
def test_user_of_a_good_answer_round_trips(user):
    data = b"1 , 2 : USERID : UNIX : " + user.encode() + b"\r\n"
    assert remote_info.parse_answer(data) == user.encode()


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_answer_does_not_depend_on_packet_boundaries(data, cut):
    state = [bytearray(), 0]
    whole = remote_info.parse_answer(data)
    first = remote_info._feed(state, data[:cut])
    assert (first if first is not None else remote_info._feed(state, data[cut:])) == whole


# ---- real exchanges

def _ident(host="127.0.0.1", timeout=5.0, local_port=4321, remote_port=1234):
    return remote_info.ident(host, local_port, host, remote_port, timeout)


def test_request_line_names_remote_port_then_local_port():
    identd.need_root()
    with identd.FakeIdentd(identd.good("alice")) as server:
        assert _ident(local_port=25, remote_port=6193) == "alice"
    assert server.requests == [b"6193 , 25\r\n"]


@pytest.mark.parametrize("reply,expected", [
    (b"1234 , 4321 : USERID : UNIX : bob\r\n", "bob"),
    (b"1234 , 4321 : ERROR : NO-USER\r\n", ""),
    (b"\x00\x01garbage\r\n", ""),
    (b"no newline at all", None),
    (b"1:2:3:caf\xe9\r\n", "caf\udce9"),  # bytes kept exactly (os.fsdecode)
    (b"1:2:3:be\x00fore\r\n", "be"),  # a C string ends at NUL
])
def test_answers_of_the_server(reply, expected):
    identd.need_root()
    with identd.FakeIdentd(lambda request: reply):
        assert _ident() == expected


def test_server_closing_without_answer_gives_none():
    identd.need_root()
    with identd.FakeIdentd(lambda request: identd.CLOSE):
        assert _ident() is None


def test_slow_server_gives_none_after_timeout():
    identd.need_root()
    with identd.FakeIdentd(lambda request: identd.SLOW):
        start = time.monotonic()
        assert _ident(timeout=1) is None
        took = time.monotonic() - start
    assert 0.9 < took < 3


def test_answer_trickling_in_is_bounded_by_one_deadline():
    identd.need_root()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 113))
    listener.listen(1)

    def trickle():
        conn, _ = listener.accept()
        try:
            for _ in range(40):  # one blank every 0.1 s, never a newline
                conn.send(b" ")
                time.sleep(0.1)
        except OSError:
            pass
        conn.close()
    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    start = time.monotonic()
    assert _ident(timeout=1) is None
    assert time.monotonic() - start < 2
    thread.join(6)
    listener.close()


def test_nothing_listening_gives_none_quickly():
    identd.need_root()  # port 113 must be free of a real identd for this to mean anything
    start = time.monotonic()
    assert _ident(timeout=5) is None
    assert time.monotonic() - start < 2


def test_ipv6_exchange():
    identd.need_root()
    with identd.FakeIdentd(identd.good("carol"), host="::1") as server:
        assert _ident(host="::1", local_port=79, remote_port=5000) == "carol"
    assert server.requests == [b"5000 , 79\r\n"]
