"""predate: a Date: line in local time before the child's input."""

import calendar
import re
import time

import pytest

from tests import support


def predate(*args, input=b"", **env):
    return support.run([support.prog("predate"), *args], input=input, env=support.suite_env(**env))


DATE = re.compile(rb"Date: (\d{1,2}) (\w{3}) (\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\n")
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@pytest.mark.parametrize("tz, zone, offset_minutes", [
    ("UTC0", b"+0000", 0), ("XYZ-5:30", b"+0530", 330), ("ABC3:30", b"-0330", -210),
    ("EST5", b"-0500", -300),
])
def test_date_line_in_local_time_with_its_zone(tz, zone, offset_minutes):
    before = int(time.time())
    done = predate("cat", input=b"Subject: x\n\nbody\n", TZ=tz)
    after = int(time.time())
    assert done.returncode == 0
    m = DATE.match(done.stdout)
    assert m and done.stdout[m.end():] == b"Subject: x\n\nbody\n"
    assert m.group(7) + m.group(8) + m.group(9) == zone
    day, mon, year, hh, mm, ss = (int(m.group(1)), MONTHS.index(m.group(2).decode()) + 1,
                                  int(m.group(3)), int(m.group(4)), int(m.group(5)), int(m.group(6)))
    stamp = calendar.timegm((year, mon, day, hh, mm, ss)) - offset_minutes * 60
    assert before <= stamp <= after


def test_input_is_copied_byte_for_byte():
    data = bytes(range(256)) * 300
    done = predate("cat", input=data, TZ="UTC0")
    assert done.stdout.split(b"\n", 1)[1] == data


def test_exit_code_is_the_childs():
    assert predate("sh", "-c", "cat >/dev/null; exit 7").returncode == 7


def test_crashed_child():
    done = predate("sh", "-c", "kill -9 $$")
    assert (done.returncode, done.stderr) == (111, b"predate: fatal: child crashed\n")


def test_usage():
    done = predate()
    assert (done.returncode, done.stderr) == (100, b"predate: usage: predate child\n")


def test_missing_child():
    done = predate("/nonexistent/prog")
    assert done.returncode == 111
    assert done.stderr == b"predate: fatal: unable to run /nonexistent/prog: file does not exist\n"
