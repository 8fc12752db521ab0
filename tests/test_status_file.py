"""supervise/status record: layout, round trips, and agreement with C-written files."""

import os
import struct
import time

import pytest
from hypothesis import given, strategies as st

from supervise import status_file
from tests import support

statuses = st.builds(
    status_file.Status,
    tai_seconds=st.integers(0, 2 ** 64 - 1),
    nanoseconds=st.integers(0, 2 ** 32 - 1),
    pid=st.integers(0, 2 ** 32 - 1),
    paused=st.integers(0, 255),
    want=st.sampled_from(["", "u", "d"]) | st.characters(min_codepoint=1, max_codepoint=255),
)


@given(statuses)
def test_pack_then_unpack_gives_the_same_record(status):
    data = status_file.pack(status)
    assert len(data) == status_file.SIZE
    assert status_file.unpack(data) == status


@given(st.binary(min_size=18, max_size=18))
def test_unpack_then_pack_gives_the_same_bytes(data):
    assert status_file.pack(status_file.unpack(data)) == data


@given(st.binary(min_size=18, max_size=64))
def test_bytes_after_the_eighteenth_are_ignored(data):
    assert status_file.unpack(data) == status_file.unpack(data[:18])


@given(st.binary(max_size=17))
def test_fewer_than_18_bytes_is_bad_format(data):
    try:
        status_file.unpack(data)
    except status_file.BadFormat as err:
        assert str(err) == "bad format"
    else:
        raise AssertionError("short record accepted")


def test_layout_is_tai64n_then_little_endian_pid_then_paused_then_want():
    record = status_file.Status(2 ** 62 + 10 + 1000, 999, 0x01020304, 1, "d")
    data = status_file.pack(record)
    assert data[:8] == struct.pack(">Q", 2 ** 62 + 10 + 1000)
    assert data[8:12] == struct.pack(">L", 999)
    assert data[12:16] == bytes([4, 3, 2, 1])
    assert data[16:] == b"\x01d"
    assert record.unix_seconds() == 1000 and record.up


def test_want_byte_zero_means_once():
    data = bytes(17) + b"\0"
    assert status_file.unpack(data).want == ""
    assert not status_file.unpack(data).up


def test_now_is_the_libtai_label_of_the_current_second():
    before = int(time.time())
    seconds, nano = status_file.now_tai64n()
    after = int(time.time())
    assert before <= seconds - (2 ** 62 + 10) <= after
    assert 0 <= nano < 10 ** 9


def test_read_decodes_a_file_and_rejects_a_short_one(tmp_path):
    path = tmp_path / "status"
    record = status_file.Status(*status_file.now_tai64n(), 42, 0, "u")
    path.write_bytes(status_file.pack(record))
    assert status_file.read(str(path)) == record
    path.write_bytes(status_file.pack(record)[:10])
    with pytest.raises(status_file.BadFormat):
        status_file.read(str(path))
    with pytest.raises(FileNotFoundError):
        status_file.read(str(tmp_path / "absent"))


def test_c_supervise_writes_the_layout_we_decode(tmp_path):
    supervise = support.c_tool("supervise")
    service = tmp_path / "svc"
    service.mkdir()
    (service / "run").write_text("#!/bin/sh\nexec sleep 30\n")
    (service / "run").chmod(0o755)
    (service / "down").write_text("")
    proc = support.Proc([supervise, service])
    status_path = service / "supervise" / "status"
    support.wait_for(lambda: (service / "supervise" / "ok").exists() and status_path.exists(),
                     what="C supervise to write its status")
    data = status_path.read_bytes()
    record = status_file.unpack(data)
    assert len(data) == 18
    assert abs(record.unix_seconds() - time.time()) < 5
    assert record.pid == 0 and record.paused == 0 and record.want == "d"
    support.run([support.c_tool("svc"), "-u", service])
    record = support.wait_for(lambda: (lambda r: r if r.pid else None)(status_file.read(str(status_path))),
                              what="service up")
    assert os.path.exists(f"/proc/{record.pid}")
    assert record.want == "u"
    assert status_file.pack(record) == status_path.read_bytes()
    proc.stop()


def test_now_is_the_seconds_c_time_gives_across_second_boundaries():
    """svstat's "S seconds" is now minus the record's second; C takes now from time(),
    which on Linux lags time.time() by up to a tick just after each second (a C svstat
    said "down 0 seconds" between two of ours saying 1). Ours must fall between two
    time() calls, over two second boundaries."""
    import ctypes
    libc = ctypes.CDLL(None)
    libc.time.restype = ctypes.c_long
    offset = status_file.TAI_UNIX_OFFSET
    samples = 0
    deadline = time.monotonic() + 2.1
    while time.monotonic() < deadline and samples < 2_000_000:
        before = libc.time(None)
        ours = status_file.now_tai64() - offset
        after = libc.time(None)
        assert before <= ours <= after, (before, ours, after)
        samples += 1
    assert samples > 1000
