"""qmail/mailin/rcpthosts.py: which recipient domains are accepted without relaying rights."""

import cdblib
import pytest
from hypothesis import given, strategies as st

from qmail.config import control
from qmail.mailin import rcpthosts


def make(root, hosts=None, more=None):
    (root / "control").mkdir(parents=True, exist_ok=True)
    if hosts is not None:
        (root / "control" / "rcpthosts").write_text(hosts)
    if more is not None:
        with open(root / "control" / "morercpthosts.cdb", "wb") as f:
            with cdblib.Writer(f) as w:
                for key in more:
                    w.put(key, b"")
    return rcpthosts.Rcpthosts(str(root))


def test_without_rcpthosts_everything_is_allowed(tmp_path):
    table = make(tmp_path, more=[b"x.example"])
    assert table.allows("u@anything.example") and table.allows("u@")


@pytest.mark.parametrize("address, allowed", [
    ("u@example.com", True), ("u@EXAMPLE.com", True), ("u@sub.example.com", False),
    ("u@a.b.wild.example", True), ("u@wild.example", False), ("nodomain", True),
    ("u@", False), ("u@x@example.com", True), ("u@example.com@x", False), ("@example.com", True),
    ("u@more.example", True), ("u@deep.more2.example", True), ("u@more2.example", False),
])
def test_lookup_table(tmp_path, address, allowed):
    table = make(tmp_path, "example.com\n.Wild.Example  \n# comment\n\n",
                 more=[b"more.example", b".more2.example"])
    assert table.allows(address) is allowed


def test_morercpthosts_ignored_when_rcpthosts_is_missing_is_still_open(tmp_path):
    table = make(tmp_path, None, more=[b"more.example"])
    assert table.allows("u@other.example")


def test_corrupt_morercpthosts_is_control_trouble(tmp_path):
    make(tmp_path, "example.com\n")
    (tmp_path / "control" / "morercpthosts.cdb").write_bytes(b"\xff" * 100)
    table = rcpthosts.Rcpthosts(str(tmp_path))
    with pytest.raises(control.ControlTrouble):
        table.allows("u@other.example")


def test_unreadable_rcpthosts_is_control_trouble(tmp_path):
    (tmp_path / "control").mkdir()
    (tmp_path / "control" / "rcpthosts").mkdir()
    with pytest.raises(control.ControlTrouble):
        rcpthosts.Rcpthosts(str(tmp_path))


@given(st.text(alphabet="abc.", max_size=20))
def test_suffixes_are_the_host_and_its_dotted_tails(host):
    keys = rcpthosts.suffixes(host)
    assert keys == ([host] if host else []) + [host[i:] for i in range(1, len(host)) if host[i] == "."]
    assert all(host.endswith(k) for k in keys)


@given(st.text(alphabet="abcXYZ.-", min_size=1, max_size=12), st.text(alphabet="abcXYZ.-", max_size=12))
def test_a_listed_host_accepts_itself_and_dot_entries_accept_subdomains(host, local):
    assert rcpthosts.lower(host) == host.lower()
    table = rcpthosts.Rcpthosts.__new__(rcpthosts.Rcpthosts)
    table.active, table.hosts, table.more = True, {rcpthosts.lower(host), ".dot.example"}, None
    assert table.allows(f"{local}@{host.upper()}")
    assert table.allows(f"{local}@{host}.dot.example")
