"""qmail/formats/envelope.py: the qmail-queue envelope and todo-file formats."""

import pytest
from hypothesis import given, strategies as st

from qmail.formats import envelope

address = st.binary(max_size=40).filter(lambda b: b"\0" not in b)


@given(address, st.lists(address, max_size=8))
def test_encode_decode_round_trip(sender, recipients):
    assert envelope.decode(envelope.encode(sender, recipients)) == (sender, recipients)


@given(address, st.lists(address, max_size=8), st.integers(1, 7))
def test_parser_gives_the_same_answer_whatever_the_chunking(sender, recipients, size):
    data = envelope.encode(sender, recipients) + b"trailing junk"
    parser = envelope.Parser()
    done = False
    for i in range(0, len(data), size):
        done = parser.feed(data[i:i + size])
        if done:
            break
    assert done
    assert (parser.sender, parser.recipients) == (sender, recipients)


@given(st.binary(max_size=60))
def test_arbitrary_bytes_parse_or_raise_an_envelope_error(data):
    try:
        envelope.decode(data)
    except envelope.EnvelopeError:
        pass


@pytest.mark.parametrize("data, error", [
    (b"", envelope.EnvelopeTruncated),
    (b"Fa@b\0", envelope.EnvelopeTruncated),
    (b"Fa@b\0Tc@d\0", envelope.EnvelopeTruncated),
    (b"Fa@b", envelope.EnvelopeTruncated),
    (b"Xa@b\0\0", envelope.EnvelopeError),
    (b"Fa@b\0Xc@d\0\0", envelope.EnvelopeError),
    (b"F" + b"a" * 1003 + b"\0\0", envelope.AddressTooLong),
    (b"Fa\0T" + b"a" * 1003, envelope.AddressTooLong),
])
def test_malformed_envelopes_are_refused(data, error):
    with pytest.raises(error):
        envelope.decode(data)


def test_longest_address_qmail_accepts_is_1002_bytes():
    longest = b"a" * 1002
    assert envelope.decode(b"F" + longest + b"\0T" + longest + b"\0\0") == (longest, [longest])


def test_empty_sender_and_no_recipients_is_a_valid_envelope():
    assert envelope.decode(b"F\0\0") == (b"", [])


def test_str_addresses_are_utf8_with_surrogateescape():
    assert envelope.encode("\udce9@x", ["b@\u00e9"]) == b"F\xe9@x\0Tb@\xc3\xa9\0\0"
    assert envelope.to_str(b"\xe9") == "\udce9"


@given(st.integers(0, 2**32), st.integers(0, 2**22), address, st.lists(address, max_size=5))
def test_todo_file_round_trip(uid, pid, sender, recipients):
    todo = envelope.decode_todo(envelope.encode_todo(uid, pid, sender, recipients))
    assert (todo.uid, todo.pid, todo.sender, todo.recipients) == (uid, pid, sender, recipients)


def test_todo_file_ignores_an_unterminated_last_record():
    todo = envelope.decode_todo(b"u1\0p2\0Fs\0Tr\0Tpart")
    assert todo.recipients == [b"r"]
