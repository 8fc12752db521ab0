"""ucspi/runtime/durable.py: write_all, fsync_dir, replace."""

import os
import threading

import pytest

from ucspi.runtime import durable


def test_write_all_continues_short_writes():
    r, w = os.pipe()
    data = bytes(range(256)) * 4096  # 1 MiB: far more than a pipe takes at once
    got = []
    reader = threading.Thread(target=lambda: got.append(b"".join(iter(lambda: os.read(r, 65536), b""))))
    reader.start()
    durable.write_all(w, data)
    os.close(w)
    reader.join()
    os.close(r)
    assert got == [data]


def test_write_all_raises_oserror():
    r, w = os.pipe()
    os.close(r)
    with pytest.raises(BrokenPipeError):
        durable.write_all(w, b"x")
    os.close(w)


@pytest.mark.parametrize("name", ["file", "sub/file", "sub/", "sub/../file"])
def test_fsync_dir_opens_the_directory_holding_name(tmp_path, monkeypatch, name):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    durable.fsync_dir(name)


def test_fsync_dir_of_a_missing_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        durable.fsync_dir(str(tmp_path / "none" / "file"))


def test_replace_writes_new_contents_and_leaves_no_tmp(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"old")
    durable.write_bytes(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_replace_failure_keeps_old_file_and_removes_tmp(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def fail(f):
        f.write(b"partial")
        raise OSError("disk trouble")

    with pytest.raises(OSError, match="disk trouble"):
        durable.replace(str(target), str(tmp_path / "f.tmp"), fail)
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["f"]
