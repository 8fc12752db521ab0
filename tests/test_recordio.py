"""recordio: data passed through unchanged, every packet logged as the C recordio logs it
(compared byte for byte per direction with the program's PID masked), exit codes."""

import re

import pytest
from hypothesis import given, strategies as st

from tests import support
from ucspi import recordio

ENV = {"PATH": "/usr/bin:/bin"}
# 768 bytes = three full 256-byte packets, so packet boundaries are the same for both
# tools whatever the scheduling; short lines, long lines, no final newline.
INPUT = (b"line one\nline two\n\n" + b"x" * 300 + b"\n" + b"tab\there\r\n"
         + b"y" * 200 + b"\nend")
INPUT += b"z" * (768 - len(INPUT))
PROGRAM = ["sh", "-c", 'echo $$ > "$0"; cat; printf "out1\\nout2"; exit 3']


def record(tool: str, tmp_path, name: str, data: bytes = INPUT, program=PROGRAM):
    infile = tmp_path / f"{name}.in"
    infile.write_bytes(data)
    pidfile = tmp_path / f"{name}.pid"
    with open(infile, "rb") as stdin:
        result = support.run([tool, program[0], program[1], program[2], str(pidfile)],
                             env=ENV, stdin=stdin)
    return result, pidfile.read_text().strip() if pidfile.exists() else None


def split_log(stderr: bytes) -> tuple[list[bytes], list[bytes], set[bytes]]:
    """(input lines, output lines, pids), each line without its pid."""
    inputs, outputs, pids = [], [], set()
    assert stderr.endswith(b"\n")
    for line in [part + b"\n" for part in stderr.split(b"\n")[:-1]]:
        m = re.match(rb"(\d+) ([<>]) ", line)
        assert m, line
        pids.add(m.group(1))
        (inputs if m.group(2) == b"<" else outputs).append(line[len(m.group(1)):])
    return inputs, outputs, pids


@given(st.binary(min_size=1, max_size=256))
def test_packet_lines_restore_the_packet(packet):
    lines = recordio.record_lines(b"42", b" < ", packet)
    body = b""
    for line in lines:
        assert line.startswith(b"42 < ")
        assert line.endswith((b" \n", b"+\n"))
        assert b"\n" not in line[:-1]
        body += line[5:-2] + (b"\n" if line.endswith(b" \n") else b"")
    assert body == packet
    assert lines[-1].endswith(b"+\n") == (not packet.endswith(b"\n"))


@pytest.mark.parametrize("packet,lines", [
    (b"abc\n", [b"1 > abc \n"]),
    (b"abc", [b"1 > abc+\n"]),
    (b"a\nb", [b"1 > a \n", b"1 > b+\n"]),
    (b"\n\n", [b"1 >  \n", b"1 >  \n"]),
])
def test_packet_line_endings(packet, lines):
    assert recordio.record_lines(b"1", b" > ", packet) == lines


def test_log_is_byte_for_byte_that_of_c_recordio(tmp_path):
    c_tool = support.c_tool("recordio")
    mine, my_pid = record(support.prog("recordio"), tmp_path, "ours")
    c, c_pid = record(c_tool, tmp_path, "c")
    assert mine.returncode == c.returncode == 3
    assert mine.stdout == c.stdout == INPUT + b"out1\nout2"
    my_in, my_out, my_pids = split_log(mine.stderr)
    c_in, c_out, c_pids = split_log(c.stderr)
    assert my_in == c_in
    assert my_out == c_out
    assert my_in[-1] == b" < [EOF]\n" and my_out[-1] == b" > [EOF]\n"
    # the lines carry the program's PID: the program runs in recordio's place
    assert my_pids == {my_pid.encode()} and c_pids == {c_pid.encode()}


def test_long_packets_are_cut_at_256_bytes(tmp_path):
    data = b"a" * 600
    mine, _ = record(support.prog("recordio"), tmp_path, "long", data=data,
                     program=["sh", "-c", 'cat >/dev/null; : "$0"'])
    inputs, _, _ = split_log(mine.stderr)
    assert inputs == [b" < " + b"a" * 256 + b"+\n", b" < " + b"a" * 256 + b"+\n",
                      b" < " + b"a" * 88 + b"+\n", b" < [EOF]\n"]


def test_usage_as_c():
    mine = support.run([support.prog("recordio")], env=ENV)
    c = support.run([support.c_tool("recordio")], env=ENV)
    assert (mine.returncode, mine.stderr) == (c.returncode, c.stderr)
    assert mine.returncode == 100
    assert mine.stderr == b"recordio: usage: recordio program [ arg ... ]\n"


def test_unable_to_run_program_as_c():
    results = []
    for tool in (support.prog("recordio"), support.c_tool("recordio")):
        result = support.run([tool, "/nonexistent/program"], env=ENV, input=b"")
        fatal = [line for line in result.stderr.splitlines() if b"fatal" in line]
        results.append((result.returncode, fatal))
    assert results[0] == results[1]
    assert results[0] == (111, [b"recordio: fatal: unable to run /nonexistent/program: "
                                b"file does not exist"])


def test_program_gets_stdin_and_its_output_passes_unchanged():
    data = bytes(range(256)) * 40
    result = support.run([support.prog("recordio"), "sh", "-c", "cat; echo done"],
                         env=ENV, input=data)
    assert result.returncode == 0
    assert result.stdout == data + b"done\n"


@pytest.mark.parametrize("warm", ["1", "0"])
def test_our_program_run_warm_or_cold_is_recorded_as_c_records_it(warm, tmp_path):
    c_tool = support.c_tool("recordio")
    data = b"first\nsecond\nno newline"
    logs = []
    for tool in (support.prog("recordio"), c_tool):
        env = support.suite_env(UCSPI_WARMSTART=warm)
        result = support.run([tool, "addcr"], input=data, env=env)
        assert result.returncode == 0
        assert result.stdout == b"first\r\nsecond\r\nno newline"
        logs.append(split_log(result.stderr)[:2])
    assert logs[0] == logs[1]
