"""readproctitle: the last bytes of input in the process title, the three fixed dots,
silent exit codes; compared with the C readproctitle."""

import os
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from supervise import readproctitle
from tests import support

PROGRAMS = {"ours": lambda: support.prog("readproctitle"),
            "C": lambda: support.c_tool("readproctitle")}


def byte_by_byte(dots: bytes, data: bytes) -> bytes:
    """The C program's loop: for each byte but NUL, D[3:] moves left, the byte goes last."""
    for ch in data:
        if ch:
            dots = dots[:3] + dots[4:] + bytes([ch])
    return dots


def shown(pid) -> str:
    """The command line as ps shows it: arguments separated by spaces."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        raw = f.read()
    return " ".join(part.decode("ascii", "replace") for part in raw.split(b"\0") if part)


def run_and_show(which, args, data: bytes) -> str:
    """Feed data to readproctitle args and return its title after argv[0] once consumed."""
    path = PROGRAMS[which]()
    proc = support.Proc([path, *args], stdin=subprocess.PIPE)
    proc.popen.stdin.write(data)
    proc.popen.stdin.flush()
    want = byte_by_byte(b"." * len(args[-1]), data).decode("ascii", "replace")
    got = support.wait_for(
        lambda: (lambda t: t if t.startswith(path) and t.endswith(want) else None)(shown(proc.pid)),
        what="title")
    proc.popen.stdin.close()
    assert proc.wait() == 0
    return got[len(path):]


@pytest.mark.parametrize("which", ["ours", "C"])
def test_man_page_example(which):
    title = run_and_show(which, ["io", "errors:", "." * 20], b"fatal error xyz\nwarning abc\n")
    assert title == " io errors: ... xyz\nwarning abc\n"


def test_same_title_as_c_for_long_and_short_inputs():
    for args, data in ((["service", "errors:", "." * 400], b"svscan: warning: x\n" * 50),
                       (["a", "b", "....."], b"xy"),
                       (["abcdefg"], b"12"),
                       (["only", "....."], b"")):
        assert run_and_show("ours", args, data) == run_and_show("C", args, data), args


def test_d_becomes_dots_and_the_first_three_never_move():
    assert run_and_show("ours", ["abcdefg"], b"") == " ......."
    assert run_and_show("ours", ["abcdefg"], b"12") == " .....12"
    assert run_and_show("ours", ["abcdefg"], b"0123456789") == " ...6789"


def test_nul_bytes_are_skipped_as_by_c():
    for which in ("ours", "C"):
        assert run_and_show(which, ["q", "......."], b"x\0\0y") == " q .....xy", which


@pytest.mark.parametrize("args", [[], ["...."], ["a", "...."], ["a", ""]])
def test_missing_or_short_last_argument_exits_100_silently(args):
    for which in ("ours", "C"):
        done = support.run([PROGRAMS[which](), *args], input=b"data\n", timeout=10)
        assert (done.returncode, done.stdout, done.stderr) == (100, b"", b""), which


def test_end_of_input_exits_0_and_read_error_exits_111(tmp_path):
    target = tmp_path / "out"
    target.write_text("")
    for which in ("ours", "C"):
        assert support.run([PROGRAMS[which](), "....."], input=b"", timeout=10).returncode == 0
        # Standard input open for writing only: read fails.
        with open(target, "wb") as wo:
            done = subprocess.run([PROGRAMS[which](), "....."], stdin=wo, capture_output=True,
                                  timeout=10)
        assert (done.returncode, done.stdout, done.stderr) == (111, b"", b""), which


@given(st.binary(min_size=5, max_size=60).filter(lambda b: b"\0" not in b),
       st.lists(st.binary(max_size=200), max_size=8))
def test_shifting_by_chunks_equals_the_byte_by_byte_loop(dots, chunks):
    got = dots
    for chunk in chunks:
        got = readproctitle.shifted(got, chunk)
    assert got == byte_by_byte(dots, b"".join(chunks))
    assert len(got) == len(dots) and got[:3] == dots[:3]


@given(st.binary(max_size=100).filter(lambda b: b"\0" not in b))
def test_visible_text_keeps_length_and_ascii(data):
    text = readproctitle.visible(data)
    assert len(text) == len(data)
    for byte, char in zip(data, text):
        if byte < 128:
            assert char == chr(byte)
        else:
            assert char == "?"


@settings(max_examples=8, deadline=None)
@given(st.binary(max_size=300).map(lambda b: bytes(c % 128 for c in b)),
       st.integers(min_value=5, max_value=80))
def test_random_input_gives_the_c_title(data, ndots):
    args = ["errors:", "." * ndots]
    assert run_and_show("ours", args, data) == run_and_show("C", args, data)
