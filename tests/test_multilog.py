"""multilog: the same script on the same input gives the same files as C multilog
(timestamps masked); locking, signals, crash recovery and disk trouble."""

import hashlib
import os
import re
import resource
import shutil
import signal
import stat
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from supervise import multilog_script
from tests import support

LABEL = re.compile(rb"@[0-9a-f]{24}")


def multilog_tools():
    tools = [("ours", support.prog("multilog"))]
    if support.have_c_tool("multilog"):
        tools.append(("c", support.c_tool("multilog")))
    return tools


def run_multilog(tool: str, script: list[str], data: bytes, cwd: Path, timeout: float = 60):
    """Run a multilog with stdin a regular file (so C reads it in fixed steps)."""
    source = cwd.parent / (cwd.name + ".input")
    source.write_bytes(data)
    with open(source, "rb") as stdin:
        return support.run([tool, *script], stdin=stdin, cwd=cwd, timeout=timeout)


def snapshot(root: Path) -> dict:
    """Every file under root: old logs renamed by their order, labels masked in contents."""
    files = {}
    for dirpath, _, names in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        old = sorted(n for n in names if n.startswith("@"))
        for name in names:
            path = Path(dirpath) / name
            key = f"old{old.index(name)}{name[25:]}" if name.startswith("@") else name
            data = LABEL.sub(b"@TAI", path.read_bytes())
            files[(rel, key)] = (stat.S_IMODE(path.stat().st_mode), data)
    return files


def compare_with_c(tmp_path: Path, script: list[str], data: bytes, prepare=None) -> dict:
    """Run ours and C in twin directories; assert identical files, exit codes, stderr."""
    c_tool = support.c_tool("multilog")
    results = {}
    for name, tool in (("ours", support.prog("multilog")), ("c", c_tool)):
        work = tmp_path / name
        work.mkdir()
        if prepare:
            prepare(work)
        result = run_multilog(tool, script, data, work)
        results[name] = (result.returncode, LABEL.sub(b"@TAI", result.stderr), snapshot(work))
    ours, theirs = results["ours"], results["c"]
    assert ours[0] == theirs[0]
    assert ours[1] == theirs[1]
    assert sorted(ours[2]) == sorted(theirs[2])
    for key in ours[2]:
        assert ours[2][key] == theirs[2][key], key
    return ours[2]


def lines(count: int, seed: int = 1, lengths=(0, 5, 40, 100, 600, 999, 1000, 1001, 1500, 5000)) -> bytes:
    out = []
    for i in range(count):
        n = lengths[(i * 7 + seed) % len(lengths)]
        text = (b"line %d %s " % (i, b"error" if i % 5 == 0 else b"debug" if i % 3 == 0 else b"info"))
        out.append((text + b"x" * n)[:max(n, len(text))])
    return b"\n".join(out) + b"\n"


# -- same files as C multilog -------------------------------------------------------

def test_plain_log_matches_c(tmp_path):
    files = compare_with_c(tmp_path, ["./main"], b"one\ntwo\n\nthree\n")
    assert files[("main", "current")] == (0o744, b"one\ntwo\n\nthree\n")
    assert files[("main", "state")] == (0o644, b"")
    assert files[("main", "lock")][0] == 0o600


def test_selection_with_patterns_matches_c(tmp_path):
    script = ["-*", "+*error*", "./errors", "+*", "-*debug*", "./main", "-*", "+line 1*", "e", "./ones"]
    compare_with_c(tmp_path, script, lines(300))


def test_status_files_match_c(tmp_path):
    data = b"STAT one\nother\n" + b"STAT " + b"y" * 1200 + b"\nlast\nSTAT two\n"
    files = compare_with_c(tmp_path, ["-*", "+STAT*", "=status", "+*", "=last", "./d"], data)
    assert files[(".", "status")] == (0o600, b"STAT two" + b"\n" * (1001 - 8))
    assert files[(".", "last")][1] == b"STAT two" + b"\n" * (1001 - 8)


def test_status_file_keeps_first_1000_bytes_of_a_long_line(tmp_path):
    files = compare_with_c(tmp_path, ["=status"], b"z" * 1500 + b"\n")
    assert files[(".", "status")][1] == b"z" * 1000 + b"\n"


def test_rotation_by_size_and_number_of_files_matches_c(tmp_path):
    files = compare_with_c(tmp_path, ["s4096", "n3", "./d"], lines(400))
    old = [key for key in files if key[0] == "d" and key[1].startswith("old")]
    assert len(old) == 2  # n3 keeps num-1 old logs
    assert all(files[key][0] == 0o744 and key[1].endswith(".s") for key in old)


def test_rotation_ends_files_at_line_boundaries_like_c(tmp_path):
    data = b"".join(b"%05d %s\n" % (i, b"a" * (i % 90)) for i in range(3000))
    files = compare_with_c(tmp_path, ["s5000", "n100", "./d"], data)
    for key, (_, content) in files.items():
        if key[1].startswith("old"):
            assert content.endswith(b"\n") and len(content) <= 5000


def test_size_and_number_are_clamped_like_c(tmp_path):
    compare_with_c(tmp_path, ["s1", "n0", "./small", "s99999999999", "./big"], lines(200))


def test_multiple_dirs_with_own_settings_match_c(tmp_path):
    script = ["s4096", "n4", "./a", "-*", "+*error*", "s8000", "n2", "./b", "+*", "n30", "./c"]
    compare_with_c(tmp_path, script, lines(500, seed=3))


def test_processor_with_state_matches_c(tmp_path):
    processor = "!cat <&4 >&5; echo rotated >&5; tr a-z A-Z"
    files = compare_with_c(tmp_path, [processor, "s4096", "n50", "./d"], lines(120))
    old = sorted(key for key in files if key[0] == "d" and key[1].startswith("old"))
    assert old and all(files[key][1] == files[key][1].upper() for key in old)
    assert files[("d", "state")][1] == b"rotated\n" * len(old)


def test_timestamps_and_patterns_on_them_match_c(tmp_path):
    data = b"fatal: out of memory\nall good\nfatal: disk\n" + b"q" * 1200 + b"\n\n"
    files = compare_with_c(tmp_path, ["t", "-*", "+* fatal: *", "./main", "+*", "./all"], data)
    assert files[("main", "current")][1] == b"@TAI fatal: out of memory\n@TAI fatal: disk\n"
    assert files[("all", "current")][1].count(b"\n") == 5


def test_partial_last_line_gets_a_newline_like_c(tmp_path):
    files = compare_with_c(tmp_path, ["./d"], b"a\nno newline")
    assert files[("d", "current")][1] == b"a\nno newline\n"


def test_empty_script_reads_and_discards_like_c(tmp_path):
    assert compare_with_c(tmp_path, [], b"ignored\n") == {}


def test_empty_input_leaves_an_empty_complete_current_like_c(tmp_path):
    files = compare_with_c(tmp_path, ["./d"], b"")
    assert files[("d", "current")] == (0o744, b"")


def test_alerts_match_c(tmp_path):
    data = b"short\n" + b"L" * 300 + b"\n" + b"M" * 1200 + b"\n"
    compare_with_c(tmp_path, ["e"], data)
    result = run_multilog(support.prog("multilog"), ["e"], data, tmp_path / "ours")
    assert result.stderr == b"short\n" + b"L" * 200 + b"...\n" + b"M" * 200 + b"...\n"


def _outage(work: Path) -> None:
    d = work / "d"
    d.mkdir()
    (d / "current").write_bytes(b"was being written\n")
    (d / "current").chmod(0o644)
    (d / "previous").write_bytes(b"was rotating\n")
    (d / "state").write_bytes(b"old state\n")


def test_recovery_after_an_outage_matches_c(tmp_path):
    files = compare_with_c(tmp_path, ["./d"], b"new\n", prepare=_outage)
    assert files[("d", "old0.u")][1] == b"was rotating\n"
    assert files[("d", "old1.u")][1] == b"was being written\n"
    assert files[("d", "state")][1] == b""
    assert files[("d", "current")][1] == b"new\n"


def _processed_outage(work: Path) -> None:
    d = work / "d"
    d.mkdir()
    (d / "processed").write_bytes(b"finished output\n")
    (d / "processed").chmod(0o744)
    (d / "previous").write_bytes(b"input of processor\n")
    (d / "newstate").write_bytes(b"half\n")


def test_recovery_keeps_a_complete_processed_file_like_c(tmp_path):
    files = compare_with_c(tmp_path, ["./d"], b"new\n", prepare=_processed_outage)
    assert files[("d", "old0.s")][1] == b"finished output\n"
    assert ("d", "previous") not in files and ("d", "newstate") not in files


def _complete_current(work: Path) -> None:
    d = work / "d"
    d.mkdir()
    (d / "current").write_bytes(b"x" * 3000 + b"\n")
    (d / "current").chmod(0o744)
    (d / "state").write_bytes(b"kept\n")


def test_complete_current_is_continued_like_c(tmp_path):
    files = compare_with_c(tmp_path, ["s4096", "./d"], lines(30), prepare=_complete_current)
    assert files[("d", "state")][1] == b"kept\n"


def test_unusable_directory_is_fatal_like_c(tmp_path):
    def blocker(work):
        (work / "file").write_bytes(b"")
    compare_with_c(tmp_path, ["./file/d"], b"x\n", prepare=blocker)
    result = run_multilog(support.prog("multilog"), ["./file/d"], b"x\n", tmp_path / "ours")
    assert result.returncode == 111
    assert result.stderr == b"multilog: fatal: unable to open directory ./file/d: not a directory\n"


# -- patterns -----------------------------------------------------------------------

@pytest.mark.parametrize("pattern, line, expected", [
    (b"hello", b"hello", True),
    (b"hello", b"hello world", False),
    (b"named[*]: Cleaned cache *", b"named[135]: Cleaned cache of 3121 RRs", True),
    (b"*", b"", True),
    (b"*", b"anything", True),
    (b"a*b", b"axxbyyb", False),  # the star stops at the first b: no backtracking
    (b"a*b*", b"axxbyyb", True),
    (b"**", b"x", False),         # a star before a star looks for a literal *
    (b"**", b"x*y", True),
    (b"", b"", True),
    (b"", b"x", False),
])
def test_pattern_semantics_of_match_c(pattern, line, expected):
    assert multilog_script.matches(pattern, line) is expected


@pytest.mark.parametrize("action, size", [("s", 4096), ("s1", 4096), ("s5000", 5000), ("s16777216", 16777215),
                                          ("s18446744073709551617", 4096), ("s12x", 4096)])
def test_size_is_clamped_between_4096_and_16777215(action, size):
    assert multilog_script.parse_size(action.encode()) == size


@pytest.mark.parametrize("action, num", [("n", 2), ("n1", 2), ("n5", 5), ("n100", 100)])
def test_number_of_files_is_at_least_2(action, num):
    assert multilog_script.parse_num(action.encode()) == num


PATTERN_BYTES = st.sampled_from([b"a", b"b", b"*", b"]", b" ", b"\xff"])
LINE_BYTES = st.sampled_from([b"a", b"b", b"*", b"]", b" ", b"\xff", b"c"])


@pytest.fixture(scope="module")
def c_multilog():
    return support.c_tool("multilog")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pattern=st.lists(PATTERN_BYTES, max_size=6).map(b"".join),
       sample=st.lists(st.lists(LINE_BYTES, max_size=8).map(b"".join), min_size=1, max_size=25))
def test_generated_patterns_select_the_same_lines_as_c(tmp_path_factory, c_multilog, pattern, sample):
    c_tool = c_multilog
    work = tmp_path_factory.mktemp("pattern")
    result = run_multilog(c_tool, ["-*", os.fsdecode(b"+" + pattern), "./d"], b"\n".join(sample) + b"\n", work)
    assert result.returncode == 0
    selected = (work / "d" / "current").read_bytes()
    expected = b"".join(line + b"\n" for line in sample if multilog_script.matches(pattern, line))
    assert selected == expected
    ours = run_multilog(support.prog("multilog"), ["-*", os.fsdecode(b"+" + pattern), "./o"],
                        b"\n".join(sample) + b"\n", work)
    assert ours.returncode == 0 and (work / "o" / "current").read_bytes() == expected
    shutil.rmtree(work)


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_pattern_without_stars_matches_only_itself(literal, line):
    literal = literal.replace(b"*", b"")
    assert multilog_script.matches(literal, line) == (literal == line)


@given(st.binary(max_size=40).map(lambda b: b.replace(b"*", b"")), st.binary(max_size=40))
def test_pattern_ending_in_star_matches_lines_starting_with_its_prefix(prefix, rest):
    assert multilog_script.matches(prefix + b"*", prefix + rest)


# -- running processes: locks, signals, trouble --------------------------------------

def started(tool: str, script: list[str], cwd: Path, env=None):
    """A multilog reading from a pipe we hold; returns (proc, write end, read end)."""
    r, w = os.pipe()
    proc = support.Proc([tool, *script], stdin=r, cwd=cwd, env=env)
    return proc, w, r


def wait_content(path: Path, expected: bytes, timeout: float = 10):
    support.wait_for(lambda: path.exists() and path.read_bytes() == expected, timeout,
                     what=f"{path} to hold {expected!r}")


@pytest.mark.parametrize("first, second", [("c", "ours"), ("ours", "c"), ("ours", "ours")])
def test_second_multilog_on_a_log_is_refused(tmp_path, first, second):
    tools = {"ours": support.prog("multilog")}
    tools["c"] = support.c_tool("multilog") if "c" in (first, second) else None
    proc, w, r = started(tools[first], ["./d"], tmp_path)
    try:
        os.write(w, b"held\n")
        wait_content(tmp_path / "d" / "current", b"held\n")
        result = support.run([tools[second], "./d"], input=b"lost\n", cwd=tmp_path)
        assert result.returncode == 111
        assert result.stderr == b"multilog: fatal: unable to lock directory ./d: temporary failure\n"
        assert (tmp_path / "d" / "current").read_bytes() == b"held\n"
    finally:
        os.close(w)
        os.close(r)
    assert proc.wait() == 0


@pytest.mark.parametrize("name, tool", multilog_tools())
def test_sigterm_finishes_the_current_line_then_exits(tmp_path, name, tool):
    proc, w, r = started(tool, ["./d"], tmp_path)
    try:
        os.write(w, b"one\ntwo-par")
        wait_content(tmp_path / "d" / "current", b"one\n")
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(0.3)
        assert proc.alive()  # still waiting for the end of the line
        os.write(w, b"tial\nthree\n")
        assert proc.wait(10) == 0
        current = tmp_path / "d" / "current"
        assert current.read_bytes() == b"one\ntwo-partial\n"
        assert stat.S_IMODE(current.stat().st_mode) == 0o744
        assert os.read(r, 100) == b"three\n"  # stdin left at the first byte not processed
    finally:
        os.close(w)
        os.close(r)


@pytest.mark.parametrize("name, tool", multilog_tools())
def test_sigterm_at_a_line_boundary_exits_at_once(tmp_path, name, tool):
    proc, w, r = started(tool, ["./d"], tmp_path)
    try:
        os.write(w, b"done\n")
        wait_content(tmp_path / "d" / "current", b"done\n")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        os.close(w)
        os.close(r)


@pytest.mark.parametrize("name, tool", multilog_tools())
def test_sigalrm_rotates_a_nonempty_current_now(tmp_path, name, tool):
    proc, w, r = started(tool, ["./d"], tmp_path)
    d = tmp_path / "d"
    try:
        os.write(w, b"before alarm\n")
        wait_content(d / "current", b"before alarm\n")
        os.kill(proc.pid, signal.SIGALRM)
        support.wait_for(lambda: list(d.glob("@*.s")), what="rotated file")
        old = list(d.glob("@*.s"))
        assert len(old) == 1 and old[0].read_bytes() == b"before alarm\n"
        assert stat.S_IMODE(old[0].stat().st_mode) == 0o744
        os.kill(proc.pid, signal.SIGALRM)  # empty current: nothing to rotate
        time.sleep(0.5)  # C acts on a signal only while blocked in read: let it get there
        os.write(w, b"after\n")
        wait_content(d / "current", b"after\n")
        assert len(list(d.glob("@*"))) == 1
    finally:
        os.close(w)
        os.close(r)
    assert proc.wait(10) == 0


def test_failing_processor_is_retried_until_it_succeeds(tmp_path):
    processor = "!if test -f ../failed; then cat; else touch ../failed; exit 1; fi"
    proc, w, r = started(support.prog("multilog"), [processor, "./d"], tmp_path)
    try:
        os.write(w, b"to process\n")
        wait_content(tmp_path / "d" / "current", b"to process\n")
        os.kill(proc.pid, signal.SIGALRM)
        proc.err.wait_line("multilog: warning: processor failed in ./d, pausing", timeout=10)
        support.wait_for(lambda: list((tmp_path / "d").glob("@*.s")), what="processed file")
        assert list((tmp_path / "d").glob("@*.s"))[0].read_bytes() == b"to process\n"
    finally:
        os.close(w)
        os.close(r)
    assert proc.wait(10) == 0


def test_crashing_processor_is_reported_and_retried(tmp_path):
    processor = "!if test -f ../crashed; then cat; else touch ../crashed; kill -9 $$; fi"
    proc, w, r = started(support.prog("multilog"), [processor, "./d"], tmp_path)
    try:
        os.write(w, b"to process\n")
        wait_content(tmp_path / "d" / "current", b"to process\n")
        os.kill(proc.pid, signal.SIGALRM)
        proc.err.wait_line("multilog: warning: processor crashed in ./d, pausing: interrupted system call",
                           timeout=10)
        proc.err.wait_line("multilog: warning: processor failed in ./d, pausing", timeout=10)
        support.wait_for(lambda: list((tmp_path / "d").glob("@*.s")), what="processed file")
    finally:
        os.close(w)
        os.close(r)
    assert proc.wait(10) == 0


def test_write_trouble_pauses_and_loses_nothing(tmp_path):
    limit = 3000

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    r, w = os.pipe()
    proc = support.Proc([support.prog("multilog"), "./d"], stdin=r, cwd=tmp_path, preexec_fn=small_files)
    try:
        data = b"".join(b"%04d %s\n" % (i, b"w" * 50) for i in range(100))  # beyond the limit
        os.write(w, data)
        proc.err.wait_line("multilog: warning: unable to write to ./d/current, pausing: file too big",
                           timeout=10)
        assert len((tmp_path / "d" / "current").read_bytes()) <= limit
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        wait_content(tmp_path / "d" / "current", data)
    finally:
        os.close(w)
        os.close(r)
    assert proc.wait(10) == 0


@pytest.fixture
def user_dir():
    """A directory an ordinary user owns (tmp_path may be closed to it when we are root)."""
    user = support.unprivileged_user()
    path = Path(tempfile.mkdtemp(prefix="multilog-test-"))
    path.chmod(0o755)
    os.chown(path, user.pw_uid, user.pw_gid)
    yield path, user
    shutil.rmtree(path, ignore_errors=True)


def test_permission_trouble_pauses_then_recovers_without_losing_a_line(user_dir):
    work, user = user_dir
    d = work / "d"
    argv = support.as_user([support.prog("multilog"), "s4096", "n100", "./d"], user)
    proc, w, r = started(argv[0], argv[1:], work)
    sent = []
    try:
        first = b"".join(b"first %04d %s\n" % (i, b"f" * 40) for i in range(20))
        os.write(w, first)
        sent.append(first)
        wait_content(d / "current", first)
        d.chmod(0o500)  # no renames: the rotation cannot happen
        more = b"".join(b"more %04d %s\n" % (i, b"m" * 40) for i in range(200))
        os.write(w, more)
        sent.append(more)
        proc.err.wait_line("multilog: warning: unable to rename current to previous in directory ./d, "
                           "pausing: access denied", timeout=10)
        d.chmod(0o700)
        last = b"last line\n"
        os.write(w, last)
        sent.append(last)
    finally:
        if d.exists():
            d.chmod(0o700)
        os.close(w)
        os.close(r)
    assert proc.wait(20) == 0
    logged = b"".join(p.read_bytes() for p in sorted(d.glob("@*"))) + (d / "current").read_bytes()
    assert logged == b"".join(sent)


def test_exits_111_without_reading_when_a_status_file_cannot_be_created(tmp_path):
    result = support.run([support.prog("multilog"), "=missing/status", "./d"], input=b"x\n", cwd=tmp_path)
    assert result.returncode == 111
    assert result.stderr == b"multilog: fatal: unable to create missing/status: file does not exist\n"
    assert not (tmp_path / "d").exists()


def test_large_input_is_logged_completely(tmp_path):
    data = b"".join(b"%07d %s\n" % (i, hashlib.md5(b"%d" % i).hexdigest().encode()) for i in range(20000))
    result = run_multilog(support.prog("multilog"), ["s100000", "n1000", "./d"], data, tmp_path)
    assert result.returncode == 0
    d = tmp_path / "d"
    assert b"".join(p.read_bytes() for p in sorted(d.glob("@*"))) + (d / "current").read_bytes() == data
