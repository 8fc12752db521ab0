"""ucspi/runtime/sgetopt.py: djb's getopt, its messages, and the subgetopt/sendmail variants."""

import pytest
from hypothesis import given, strategies as st

from ucspi.runtime import sgetopt


@pytest.mark.parametrize("argv,opts,rest", [
    (["p", "-vRHl0", "h", "p"], [("v", ""), ("R", ""), ("H", ""), ("l", "0")], ["h", "p"]),
    (["p", "-l", "x", "-c5", "a"], [("l", "x"), ("c", "5")], ["a"]),
    (["p", "--", "-v"], [], ["-v"]),
    (["p", "-", "-v"], [], ["-", "-v"]),
    (["p", "a", "-v"], [], ["a", "-v"]),
])
def test_bundles_attached_and_separate_arguments(argv, opts, rest):
    assert sgetopt.getopt(argv, "vRHl:c:", "p") == (opts, rest)


def test_illegal_option_and_missing_argument_say_what_djb_says(capsys):
    with pytest.raises(sgetopt.UsageError):
        sgetopt.getopt(["p", "-Z"], "v", "prog")
    assert capsys.readouterr().err == "prog: illegal option -- Z\n"
    with pytest.raises(sgetopt.UsageError):
        sgetopt.getopt(["p", "-x"], "x:", "prog")
    assert capsys.readouterr().err == "prog: option requires an argument -- x\n"


def test_quiet_mode_reports_nothing_and_marks_unknown(capsys):
    assert sgetopt.getopt(["p", "-Zr", "-t"], "rRt:", quiet=True) == ([("?", "Z"), ("r", ""), ("t", "")], [])
    assert capsys.readouterr().err == ""


def test_rest_of_word_letters_take_an_optional_attached_argument():
    assert sgetopt.getopt(["p", "-Efoo", "-J", "-t"], "tEJ", rest_of_word="EJ") == \
        ([("E", "foo"), ("J", ""), ("t", "")], [])


@given(st.lists(st.text(alphabet="-abcx:Z-", max_size=6), max_size=6))
def test_any_command_line_parses_or_is_a_usage_error(words):
    try:
        opts, rest = sgetopt.getopt(["p", *words], "abx:", "p")
    except sgetopt.UsageError:
        return
    assert all(letter in "abx" for letter, _ in opts)
    assert rest == words[len(words) - len(rest):]


@pytest.mark.parametrize("text,value", [("", 0), ("12", 12), ("12x3", 12), ("x", 0), ("007", 7)])
def test_scan_ulong_takes_leading_digits(text, value):
    assert sgetopt.scan_ulong(text) == value
