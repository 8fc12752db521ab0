"""tai64nlocal: labels at line starts become local time, exactly as the C tool prints."""

import os
import time

import pytest
from hypothesis import given, settings, strategies as st

from supervise import tai64
from tests import support


def convert(tool: str, data: bytes, tz: str = "UTC") -> tuple[int, bytes]:
    result = support.run([tool], input=data, env=support.suite_env(TZ=tz), timeout=20)
    return result.returncode, result.stdout


def ours(data: bytes, tz: str = "UTC") -> bytes:
    code, out = convert(support.prog("tai64nlocal"), data, tz)
    assert code == 0
    return out


@pytest.fixture(scope="module")
def c_local():
    return support.c_tool("tai64nlocal")


def test_label_from_the_manual_becomes_utc_time():
    assert ours(b"@400000003b4a39c23294b13c fatal: out of memory\n") == \
        b"2001-07-09 23:09:44.848605500 fatal: out of memory\n"


def test_local_time_follows_tz():
    assert ours(b"@400000003b4a39c23294b13c x\n", tz="Europe/Paris") == \
        b"2001-07-10 01:09:44.848605500 x\n"


@pytest.mark.parametrize("line", [
    b"no label here\n",
    b" @400000003b4a39c23294b13c label not at the start\n",
    b"\n",
    b"x@400000003b4a39c23294b13c\n",
])
def test_lines_without_a_label_at_the_start_are_unchanged(line):
    assert ours(line) == line


@pytest.mark.parametrize("data", [
    b"@400000003b4a39c23294b13c\n",             # label alone
    b"@400000003b4a39c23294b13cX rest\n",      # any non-hex byte ends the label
    b"@400000003b4a39c23294b13cABC rest\n",    # uppercase is not a hex digit here
    b"@40000000000000000000000a zz\n",         # short label: the last 8 digits are nanoseconds
    b"@4000000000000000ffffffff x\n",          # nanoseconds printed in full
    b"@3fffffffffffffffffffffff x\n",          # seconds below 2^62: before the epoch
    b"@10400000003b4a39c23294b13c x\n",        # long label: leading digits shift out
    b"@400000003b4a39c23294b13c",              # label cut by the end of input: dropped
    b"a\n@400000003b4a39c23294b13c no newline", # partial last line copied
    b"@400000003b4a39c23294b13c\x00\xff\r\n",
])
def test_same_output_as_the_c_tool(c_local, data):
    assert convert(support.prog("tai64nlocal"), data, "Europe/Paris") == \
        convert(c_local, data, "Europe/Paris")


def test_label_cut_by_end_of_input_is_dropped():
    assert ours(b"x\n@400000003b4a39c2") == b"x\n"


def test_label_the_c_library_cannot_convert_is_left_as_it_is():
    # C tai64nlocal crashes (localtime returns NULL) here; we keep the line.
    assert ours(b"@4000000 x\n") == b"@4000000 x\n"
    assert ours(b"@400000003b4a39c23294b13C x\n") == b"@400000003b4a39c23294b13C x\n"


LABEL_TIMES = st.integers(min_value=-(1 << 33), max_value=(1 << 35))
NANOS = st.integers(min_value=0, max_value=0xFFFFFFFF)
TEXT = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" "))


@settings(max_examples=25, deadline=None)
@given(lines=st.lists(st.one_of(
    st.tuples(LABEL_TIMES, NANOS, TEXT).map(lambda t: b"@%016x%08x %s" % (t[0] + tai64.OFFSET, t[1], t[2])),
    TEXT.filter(lambda b: not b.startswith(b"@"))), min_size=1, max_size=20))
def test_generated_labels_convert_as_with_the_c_tool(c_local, lines):
    data = b"\n".join(lines) + b"\n"
    assert convert(support.prog("tai64nlocal"), data, "America/New_York") == \
        convert(c_local, data, "America/New_York")


def test_reads_labels_written_by_c_tai64n():
    c_stamp = support.c_tool("tai64n")
    stamped = support.run([c_stamp], input=b"one\ntwo\n").stdout
    assert ours(stamped) == convert(support.c_tool("tai64nlocal"), stamped)[1]
    seconds, nano = tai64.decode(stamped[:25])
    assert ours(stamped).startswith(
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)).encode() + b".%09d one\n" % nano)


def test_label_split_across_two_reads_is_converted_whole():
    r, w = os.pipe()
    proc = support.Proc([support.prog("tai64nlocal")], stdin=r, env=support.suite_env(TZ="UTC"))
    os.close(r)
    try:
        os.write(w, b"@400000003b4a")
        time.sleep(0.2)
        os.write(w, b"39c23294b13c split\n")
        assert proc.out.wait_line("split", timeout=10) == "2001-07-09 23:09:44.848605500 split"
    finally:
        os.close(w)
    assert proc.wait(10) == 0
