"""ucspi/runtime/filters.py: reading input to its end (chunks) and feeding a child (feed)."""

import os

from ucspi.runtime import filters


def test_chunks_yields_everything_to_end_of_input():
    r, w = os.pipe()
    os.write(w, b"one\0two\0")
    os.close(w)
    try:
        assert b"".join(filters.chunks(r, 3)) == b"one\0two\0"
    finally:
        os.close(r)


def test_chunks_ends_quietly_at_a_read_error():
    r, w = os.pipe()
    os.close(r)
    try:
        assert list(filters.chunks(w)) == []  # EBADF: the write end cannot be read
    finally:
        os.close(w)


def test_feed_writes_head_then_stdin_and_stops_quietly_when_the_reader_is_gone(tmp_path):
    (tmp_path / "in").write_bytes(b"body\n")
    saved = os.dup(0)
    fd = os.open(tmp_path / "in", os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    try:
        r, w = os.pipe()
        filters.feed(w, b"head\n")
        os.close(w)
        assert os.read(r, 100) == b"head\nbody\n"
        os.close(r)
        r, w = os.pipe()
        os.close(r)
        filters.feed(w, b"head\n")  # EPIPE (SIGPIPE is ignored under Python): no exception
        os.close(w)
    finally:
        os.dup2(saved, 0)
        os.close(saved)
