"""qmail/config/control.py: control files read as qmail's control.c reads them."""

import os

import cdblib
import pytest
from hypothesis import given, strategies as st

from qmail.config import control


def tree(tmp_path, files: dict[str, bytes]) -> str:
    (tmp_path / "control").mkdir(exist_ok=True)
    for name, data in files.items():
        (tmp_path / "control" / name).write_bytes(data)
    return str(tmp_path)


def test_missing_file_is_none_and_falls_back_to_me(tmp_path):
    root = tree(tmp_path, {"me": b"mail.example.org\n"})
    assert control.read_line(root, "defaultdomain") is None
    assert control.line_or_default(root, "defaultdomain") == "mail.example.org"
    assert control.lines_or_default(root, "locals") == ["mail.example.org"]
    assert control.lines_or_default(root, "rcpthosts") == []


def test_first_line_loses_trailing_spaces_and_tabs_only(tmp_path):
    root = tree(tmp_path, {"me": b"  host.example \t \nsecond\n"})
    assert control.read_line(root, "me") == "  host.example"


def test_list_file_drops_comments_and_blank_lines(tmp_path):
    root = tree(tmp_path, {"locals": b"# comment\nexample.org  \n\n\t\nlocalhost\n#x\nlast"})
    assert control.read_lines(root, "locals") == ["example.org", "localhost", "last"]


@pytest.mark.parametrize("data,value", [(b"42\n", 42), (b"0", 0), (b"604800  \n", 604800)])
def test_numbers(tmp_path, data, value):
    assert control.read_int(tree(tmp_path, {"databytes": data}), "databytes") == value


@pytest.mark.parametrize("data", [b"", b"12x\n", b"-5\n", b" 7\n"])
def test_unparsable_number_is_trouble_not_default(tmp_path, data):
    with pytest.raises(control.ControlTrouble):
        control.read_int(tree(tmp_path, {"databytes": data}), "databytes")


def test_number_defaults_from_qmail_control(tmp_path):
    root = tree(tmp_path, {"me": b"x\n"})
    assert control.int_or_default(root, "concurrencylocal") == 10
    assert control.int_or_default(root, "concurrencyremote") == 20
    assert control.int_or_default(root, "queuelifetime") == 604800
    assert control.int_or_default(root, "timeoutsmtpd") == 1200


def test_directory_in_place_of_file_is_trouble(tmp_path):
    root = tree(tmp_path, {})
    os.mkdir(os.path.join(root, "control", "me"))
    with pytest.raises(control.ControlTrouble):
        control.me(root)


def test_missing_me_is_trouble(tmp_path):
    with pytest.raises(control.ControlTrouble):
        control.me(tree(tmp_path, {}))


def test_cdb_lookup(tmp_path):
    root = tree(tmp_path, {})
    with open(os.path.join(root, "control", "morercpthosts.cdb"), "wb") as f:
        w = cdblib.Writer(f)
        w.put(b"example.net", b"")
        w.finalize()
    assert control.cdb_get(root, "morercpthosts.cdb", b"example.net") == b""
    assert control.cdb_get(root, "morercpthosts.cdb", b"other") is None
    assert control.cdb_get(root, "absent.cdb", b"x") is None
    (tmp_path / "control" / "bad.cdb").write_bytes(b"\x01\x02")
    with pytest.raises(control.ControlTrouble):
        control.cdb_get(root, "bad.cdb", b"x")


@given(st.binary(max_size=300))
def test_any_bytes_give_a_value_or_trouble(tmp_path_factory, data):
    root = tree(tmp_path_factory.mktemp("c"), {"f": data})
    lines = control.read_lines(root, "f")
    assert all(line and not line.startswith("#") and not line.endswith((" ", "\t")) for line in lines)
    try:
        n = control.read_int(root, "f")
        assert n >= 0
    except control.ControlTrouble:
        pass
