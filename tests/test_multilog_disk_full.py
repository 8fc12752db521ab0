"""multilog on a full disk (a 64 KiB tmpfs, root only): it warns and pauses as C multilog
does in the same situation (same messages; ours retries every second, C every five),
then, once space is freed, every line arrives exactly once and in order, and the log
directory holds the same files as C's."""

import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests import support

LABEL = re.compile(rb"@[0-9a-f]{24}")
PAGE = 4096
SIZE_PAGES = 16  # the file system: 64 KiB


def mount_tmpfs(path: Path) -> None:
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_PAGES * PAGE}", "tmpfs", str(path)],
                            capture_output=True, timeout=10)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")


def unmount(path: Path) -> None:
    for _ in range(20):  # bounded: a process we stopped may take a moment to let go of it
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=10).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


@pytest.fixture
def small_disk(tmp_path):
    """A factory of 64 KiB tmpfs mounts under tmp_path, each unmounted at the end."""
    if os.getuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounts = []

    def make(name: str) -> Path:
        path = tmp_path / name
        mount_tmpfs(path)
        mounts.append(path)
        return path
    yield make
    support.stop_all()  # nothing may keep a mount busy
    for path in mounts:
        unmount(path)


def log_lines(count: int = 400) -> bytes:
    return b"".join(b"%05d %s\n" % (i, b"z" * 60) for i in range(count))


def listing(d: Path) -> list:
    """The log directory: old logs by order (labels masked), sizes and modes."""
    out = []
    for name in sorted(os.listdir(d)):
        st = os.stat(d / name)
        key = "@TAI" + name[25:] if name.startswith("@") else name
        out.append((key, st.st_size, stat.S_IMODE(st.st_mode)))
    return out


def contents(root: Path) -> dict:
    """Every file under root but the filler, labels masked in names and contents."""
    files = {}
    for dirpath, _, names in os.walk(root):
        old = sorted(n for n in names if n.startswith("@"))
        for name in names:
            path = Path(dirpath) / name
            key = f"old{old.index(name)}{name[25:]}" if name.startswith("@") else name
            files[(os.path.relpath(dirpath, root), key)] = (
                stat.S_IMODE(path.stat().st_mode), LABEL.sub(b"@TAI", path.read_bytes()))
    return files


def logged(d: Path) -> bytes:
    """Everything in the log, oldest first."""
    return b"".join((d / n).read_bytes() for n in sorted(os.listdir(d)) if n.startswith("@")) \
        + (d / "current").read_bytes()


def masked(line: str) -> str:
    return re.sub(r"\d+", "N", LABEL.sub(b"@TAI", line.encode()).decode())


def first_occurrences(lines: list[str]) -> list[str]:
    seen = []
    for line in map(masked, lines):
        if line not in seen:
            seen.append(line)
    return seen


def fill_then_free(root: Path, tool: str, script: list[str], free_pages: int, data: bytes, warning: str):
    """Run tool on a disk with free_pages left; wait for warning; check that it pauses; free
    the disk; end the input. Returns (exit code, stderr lines, listing while paused)."""
    filler = root / "filler"
    filler.write_bytes(b"\0" * (SIZE_PAGES - free_pages) * PAGE)
    r, w = os.pipe()
    proc = support.Proc([tool, *script], stdin=r, cwd=root)
    os.close(r)
    try:
        os.write(w, data)  # less than a pipe holds: never blocks
        first = proc.err.wait_line(warning, timeout=15)
        paused = listing(root / "d")
        time.sleep(1.5)  # long enough for ours to retry at least once
        assert listing(root / "d") == paused  # nothing written, nothing rotated meanwhile
        assert proc.alive()
        filler.unlink()
    finally:
        os.close(w)
    code = proc.wait(20)
    lines = proc.err.history
    assert first in lines
    return code, lines, paused


@pytest.mark.parametrize("script, free_pages, warning", [
    (["s4096", "n100", "./d"], 4,
     "multilog: warning: unable to write to ./d/current, pausing: out of disk space"),
    (["s4096", "n100", "!cat", "./d"], 4,
     "multilog: warning: processor failed in ./d, pausing"),
    (["s4096", "n100", "./d", "=st"], 0,
     "multilog: warning: unable to write st, pausing: out of disk space"),
], ids=["current", "processor", "status-file"])
def test_full_disk_pauses_with_c_messages_and_loses_nothing(small_disk, script, free_pages, warning):
    data = log_lines()
    results = {}
    for which, tool in (("c", support.c_tool("multilog")), ("ours", support.prog("multilog"))):
        root = small_disk(which)
        code, lines, paused = fill_then_free(root, tool, script, free_pages, data, warning)
        assert code == 0
        assert logged(root / "d") == data  # every line once, in order
        results[which] = (first_occurrences(lines), paused, contents(root))
    c, ours = results["c"], results["ours"]
    assert ours[0] == c[0]  # the same warnings, in the same order (repeated more often by ours)
    assert ours[1] == c[1]  # the same files while paused
    assert sorted(ours[2]) == sorted(c[2])
    for key in c[2]:
        assert ours[2][key] == c[2][key], key


def test_every_retry_repeats_the_warning_about_once_a_second(small_disk):
    root = small_disk("ours")
    (root / "filler").write_bytes(b"\0" * (SIZE_PAGES - 1) * PAGE)
    r, w = os.pipe()
    proc = support.Proc([support.prog("multilog"), "s4096", "./d"], stdin=r, cwd=root)
    os.close(r)
    warning = "multilog: warning: unable to write to ./d/current, pausing: out of disk space"
    try:
        os.write(w, log_lines(100))
        proc.err.wait_line(warning, timeout=15)
        started = time.monotonic()
        for _ in range(3):
            proc.err.wait_line(warning, timeout=5)
        assert 2.0 <= time.monotonic() - started < 6.0
        (root / "filler").unlink()
    finally:
        os.close(w)
    assert proc.wait(20) == 0
    assert logged(root / "d") == log_lines(100)


def test_sigalrm_rotation_with_no_room_for_the_processed_file_is_retried(small_disk):
    """A rotation asked for by SIGALRM whose processor cannot write: retried until it can."""
    for which, tool in (("c", support.c_tool("multilog")), ("ours", support.prog("multilog"))):
        root = small_disk(which)
        r, w = os.pipe()
        proc = support.Proc([tool, "!cat", "./d"], stdin=r, cwd=root)
        os.close(r)
        try:
            os.write(w, b"first line\n")
            support.wait_for(lambda: (root / "d" / "current").exists()
                             and (root / "d" / "current").read_bytes() == b"first line\n", what="current")
            free = os.statvfs(root).f_bavail
            (root / "filler").write_bytes(b"\0" * free * os.statvfs(root).f_frsize)
            time.sleep(0.3)  # C acts on a signal only while blocked in read
            proc.send_signal(14)
            proc.err.wait_line("multilog: warning: processor failed in ./d, pausing", timeout=15)
            assert not list((root / "d").glob("@*"))
            (root / "filler").unlink()
            support.wait_for(lambda: list((root / "d").glob("@*.s")), timeout=15, what="processed log")
            os.write(w, b"second line\n")
        finally:
            os.close(w)
        assert proc.wait(20) == 0
        assert logged(root / "d") == b"first line\nsecond line\n"
        assert [n for n, _, _ in listing(root / "d")] == ["@TAI.s", "current", "lock", "state"]
