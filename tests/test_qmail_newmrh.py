"""qmail-newmrh: control/morercpthosts -> control/morercpthosts.cdb."""

import cdblib
from hypothesis import given, strategies as st

from qmail.tools import qmail_newmrh
from tests import support


def newmrh(root):
    return support.run([support.prog("qmail-newmrh")], env=support.suite_env(QMAIL_ROOT=root))


def test_hosts_become_lower_cased_keys_and_comments_are_skipped(tmp_path):
    (tmp_path / "control").mkdir()
    (tmp_path / "control" / "morercpthosts").write_bytes(b"One.Example \t\n#comment\n\n.two.example\nlast")
    result = newmrh(tmp_path)
    assert result.returncode == 0 and result.stdout == b"" and result.stderr == b""
    cdb = tmp_path / "control" / "morercpthosts.cdb"
    reader = cdblib.Reader(cdb.read_bytes())
    assert list(reader.keys()) == [b"one.example", b".two.example", b"last"]
    assert reader.get(b"one.example") == b""
    assert oct(cdb.stat().st_mode & 0o777) == "0o644"
    assert not (tmp_path / "control" / "morercpthosts.tmp").exists()


def test_missing_list_is_fatal_111_and_keeps_the_old_cdb(tmp_path):
    (tmp_path / "control").mkdir()
    (tmp_path / "control" / "morercpthosts.cdb").write_bytes(b"old")
    result = newmrh(tmp_path)
    assert result.returncode == 111
    assert result.stderr == b"qmail-newmrh: fatal: unable to read control/morercpthosts: file does not exist\n"
    assert (tmp_path / "control" / "morercpthosts.cdb").read_bytes() == b"old"


def test_missing_root_is_fatal_111(tmp_path):
    result = newmrh(tmp_path / "nowhere")
    assert result.returncode == 111
    assert result.stderr.startswith(b"qmail-newmrh: fatal: unable to chdir to ")


def test_temporary_file_trouble_is_fatal_111(tmp_path):
    (tmp_path / "control").mkdir()
    (tmp_path / "control" / "morercpthosts").write_text("a.example\n")
    (tmp_path / "control" / "morercpthosts.tmp").mkdir()
    result = newmrh(tmp_path)
    assert result.returncode == 111
    assert result.stderr == b"qmail-newmrh: fatal: unable to write to control/morercpthosts.tmp: is a directory\n"


def test_rename_trouble_is_fatal_111_and_leaves_no_temporary_file(tmp_path):
    (tmp_path / "control").mkdir()
    (tmp_path / "control" / "morercpthosts").write_text("a.example\n")
    (tmp_path / "control" / "morercpthosts.cdb").mkdir()
    (tmp_path / "control" / "morercpthosts.cdb" / "x").write_text("")
    result = newmrh(tmp_path)
    assert result.returncode == 111
    assert result.stderr.startswith(b"qmail-newmrh: fatal: unable to move control/morercpthosts.tmp to "
                                    b"control/morercpthosts.cdb: ")
    assert not (tmp_path / "control" / "morercpthosts.tmp").exists()


@given(st.lists(st.binary(min_size=0, max_size=20).filter(lambda b: b"\n" not in b), max_size=20))
def test_host_keys_property(lines):
    keys = qmail_newmrh.host_keys(b"\n".join(lines))
    assert all(k and not k.startswith(b"#") and k == k.lower() and not k.endswith((b" ", b"\t"))
               for k in keys)
    assert len(keys) <= len(lines)
