"""tai64n: every line gets `@` + 24 hex digits + space; compared with the C tool."""

import os
import re
import time

import pytest
from hypothesis import given, settings, strategies as st

from supervise import tai64
from tests import support

LABEL = rb"@[0-9a-f]{24} "


def stamp_with(tool: str, data: bytes) -> bytes:
    result = support.run([tool], input=data, timeout=20)
    assert result.returncode == 0, result.stderr
    return result.stdout


def masked(output: bytes) -> bytes:
    return re.sub(rb"(?m)^@[0-9a-f]{24} ", b"@TAI ", output)


def test_each_line_gets_a_label_and_a_space():
    out = stamp_with(support.prog("tai64n"), b"one\ntwo\n")
    assert re.fullmatch(LABEL + rb"one\n" + LABEL + rb"two\n", out)


def test_label_is_the_time_the_line_was_read():
    before = time.time()
    out = stamp_with(support.prog("tai64n"), b"x\n")
    after = time.time()
    seconds, nano = tai64.decode(out[:25])
    assert before - 1 <= seconds + nano / 1e9 <= after + 1
    assert nano % 1000 == 500


def test_partial_last_line_is_stamped_without_adding_a_newline():
    out = stamp_with(support.prog("tai64n"), b"a\nb")
    assert re.fullmatch(LABEL + rb"a\n" + LABEL + rb"b", out)


def test_empty_input_gives_empty_output_and_exit_0():
    result = support.run([support.prog("tai64n")], input=b"")
    assert (result.returncode, result.stdout) == (0, b"")


def test_empty_lines_get_a_label_and_the_trailing_space():
    assert masked(stamp_with(support.prog("tai64n"), b"\n\n")) == b"@TAI \n@TAI \n"


def test_output_matches_the_c_tool_once_labels_are_masked():
    c_tool = support.c_tool("tai64n")
    data = b"".join(b"line %d %s\n" % (i, b"x" * (i * 37 % 3000)) for i in range(400)) + b"\n\x00\xff\rtail"
    assert masked(stamp_with(support.prog("tai64n"), data)) == masked(stamp_with(c_tool, data))


@pytest.fixture(scope="module")
def c_tai64n():
    return support.c_tool("tai64n")


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=3000))
def test_any_input_is_stamped_as_the_c_tool_stamps_it(c_tai64n, data):
    c_tool = c_tai64n
    assert masked(stamp_with(support.prog("tai64n"), data)) == masked(stamp_with(c_tool, data))


def test_c_tai64nlocal_reads_our_labels():
    c_local = support.c_tool("tai64nlocal")
    out = stamp_with(support.prog("tai64n"), b"hello\n")
    env = support.suite_env(TZ="UTC")
    local = support.run([c_local], input=out, env=env).stdout
    expected = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(tai64.decode(out[:25])[0]))
    assert local.startswith(expected.encode() + b".")
    assert local.endswith(b" hello\n")


def test_each_line_is_written_before_the_next_is_read():
    r, w = os.pipe()
    proc = support.Proc([support.prog("tai64n")], stdin=r)
    os.close(r)
    try:
        os.write(w, b"first\n")
        line = proc.out.wait_line(lambda text: text.endswith("first"), timeout=10)
        assert re.fullmatch(r"@[0-9a-f]{24} first", line)
    finally:
        os.close(w)
    assert proc.wait(10) == 0
