"""users/assign and users/cdb (qmail-users(5)), qmail-newu and qmail-getpw."""

import io
import os
import pwd

import cdblib
import pytest
from hypothesis import given, strategies as st

from qmail.config import users
from qmail.config.users import Assignment
from tests import support

ASSIGN = (b"=joe:joe:1000:1001:/home/joe:::\n"
          b"+joe-:joe:1000:1001:/home/joe:-::\n"
          b"=Demo:demo:1002:1002:/home/demo:::\n"
          b"+list-:lists:1003:1003:/home/lists:-:pre-:\n"
          b"+:alias:7790:2108:/var/qmail/alias:-::\n"
          b".\n")


def table(text=ASSIGN):
    out = io.BytesIO()
    users.build_cdb(text, out)
    return out.getvalue()


@pytest.mark.parametrize("local,expected", [
    (b"joe", Assignment(b"joe", 1000, 1001, b"/home/joe", b"", b"")),
    (b"JOE", Assignment(b"joe", 1000, 1001, b"/home/joe", b"", b"")),
    (b"joe-x-y", Assignment(b"joe", 1000, 1001, b"/home/joe", b"-", b"x-y")),
    (b"Joe-X", Assignment(b"joe", 1000, 1001, b"/home/joe", b"-", b"X")),
    (b"demo", Assignment(b"demo", 1002, 1002, b"/home/demo", b"", b"")),
    (b"list-a", Assignment(b"lists", 1003, 1003, b"/home/lists", b"-", b"pre-a")),
    (b"list-", Assignment(b"lists", 1003, 1003, b"/home/lists", b"-", b"pre-")),
    (b"joex", Assignment(b"alias", 7790, 2108, b"/var/qmail/alias", b"-", b"joex")),
    (b"demo-x", Assignment(b"alias", 7790, 2108, b"/var/qmail/alias", b"-", b"demo-x")),
])
def test_cdb_lookup_exact_then_longest_wildcard(local, expected):
    assert users.lookup_cdb(table(), local) == expected


def test_cdb_lookup_without_catch_all_finds_nothing():
    assert users.lookup_cdb(table(b"=joe:joe:1:1:/h:::\n.\n"), b"bob") is None


def test_cdb_records_are_qmail_newu_keys():
    reader = cdblib.Reader(table())
    assert reader.get(b"!joe\0") == b"joe\x001000\x001001\x00/home/joe\x00\x00"
    assert reader.get(b"!demo\0") is not None  # keys are lowercased
    assert reader.get(b"!joe-") == b"joe\x001000\x001001\x00/home/joe\x00-\x00"
    assert reader.get(b"") == b"-"  # last characters of the wildcard prefixes, once each


@pytest.mark.parametrize("text", [
    b"=joe:joe:1:1:/h::\n.\n",          # six fields only
    b"=joe:joe:1:1:/h:::\n",            # no final dot line... and last line complete
    b":joe:1:1:/h:::\n.\n",             # empty key
    b"\n.\n",                           # blank line
    b"joe\n.\n",                        # no colon
    b"=jo\0e:joe:1:1:/h:::\n.\n",       # NUL
    b"=joe:joe:1:1:/h:::",              # truncated
])
def test_bad_assign_lines_are_rejected(text):
    with pytest.raises(users.FormatError):
        users.parse_assign(text)


def test_encode_decode_round_trip():
    a = Assignment(b"u", 5, 6, b"/h", b"-", b"x-y")
    assert users.encode(a) == b"u\x005\x006\x00/h\x00-\x00x-y\x00"
    assert users.decode(users.encode(a)) == a


field = st.binary(min_size=0, max_size=8).filter(lambda b: b":" not in b and b"\n" not in b and b"\0" not in b)


@given(st.lists(st.tuples(st.sampled_from([b"=", b"+"]), field.filter(bool), field,
                          st.integers(0, 99999), st.integers(0, 99999), field, field, field),
                max_size=8))
def test_any_well_formed_assign_compiles_and_every_exact_entry_is_found(entries):
    text = b"".join(kind + key + b":" + user + b":%d:%d:" % (uid, gid) + home + b":" + dash
                    + b":" + ext + b":\n" for kind, key, user, uid, gid, home, dash, ext in entries)
    data = table(text + b".\n")
    firsts = {}
    for kind, key, user, uid, gid, home, dash, ext in entries:
        if kind == b"=":
            firsts.setdefault(key.lower(), Assignment(user, uid, gid, home, dash, ext))
    for key, expected in firsts.items():
        assert users.lookup_cdb(data, key) == expected


# --- qmail-newu -----------------------------------------------------------------------

def test_qmail_newu_builds_users_cdb(tmp_path):
    (tmp_path / "users").mkdir()
    (tmp_path / "users" / "assign").write_bytes(ASSIGN)
    r = support.run([support.prog("qmail-newu")], env=support.suite_env(QMAIL_ROOT=tmp_path))
    assert (r.returncode, r.stderr) == (0, b"")
    data = (tmp_path / "users" / "cdb").read_bytes()
    assert data == table()
    assert not (tmp_path / "users" / "cdb.tmp").exists()


def test_qmail_newu_bad_format_keeps_old_cdb(tmp_path):
    (tmp_path / "users").mkdir()
    (tmp_path / "users" / "cdb").write_bytes(b"old")
    (tmp_path / "users" / "assign").write_bytes(b"=joe:joe\n.\n")
    r = support.run([support.prog("qmail-newu")], env=support.suite_env(QMAIL_ROOT=tmp_path))
    assert r.returncode == 111
    assert r.stderr == b"qmail-newu: fatal: bad format in users/assign\n"
    assert (tmp_path / "users" / "cdb").read_bytes() == b"old"


def test_qmail_newu_missing_assign(tmp_path):
    (tmp_path / "users").mkdir()
    r = support.run([support.prog("qmail-newu")], env=support.suite_env(QMAIL_ROOT=tmp_path))
    assert (r.returncode, r.stderr) == (111, b"qmail-newu: fatal: unable to open users/assign\n")


def test_qmail_newu_missing_root(tmp_path):
    r = support.run([support.prog("qmail-newu")],
                    env=support.suite_env(QMAIL_ROOT=tmp_path / "none"))
    assert (r.returncode, r.stderr) == (111, b"qmail-newu: fatal: unable to chdir\n")


# --- qmail-getpw ----------------------------------------------------------------------

def mail_user():
    """A system account qmail-getpw accepts (uid not 0, owns its home), or a visible skip."""
    for entry in pwd.getpwall():
        if entry.pw_uid == 0 or not entry.pw_name.isalnum() or len(entry.pw_name) > 31:
            continue
        try:
            if os.stat(entry.pw_dir).st_uid == entry.pw_uid:
                return entry
        except OSError:
            continue
    pytest.skip("no system account owns its home directory")


def test_qmail_getpw_finds_user_and_extension():
    u = mail_user()
    r = support.run([support.prog("qmail-getpw"), u.pw_name.upper() + "-Foo-bar"])
    assert r.returncode == 0
    assert r.stdout == (f"{u.pw_name}\0{u.pw_uid}\0{u.pw_gid}\0{u.pw_dir}\0-\0Foo-bar\0").encode()


def test_qmail_getpw_whole_name_has_no_dash():
    u = mail_user()
    r = support.run([support.prog("qmail-getpw"), u.pw_name])
    assert r.stdout == (f"{u.pw_name}\0{u.pw_uid}\0{u.pw_gid}\0{u.pw_dir}\0\0\0").encode()


def test_qmail_getpw_never_gives_root_and_falls_back_to_alias():
    r = support.run([support.prog("qmail-getpw"), "root"])
    try:
        alias = pwd.getpwnam("alias")
    except KeyError:
        assert (r.returncode, r.stdout) == (116, b"")
        return
    assert r.stdout == f"alias\0{alias.pw_uid}\0{alias.pw_gid}\0{alias.pw_dir}\0-\0root\0".encode()


def test_qmail_getpw_without_argument_exits_100():
    assert support.run([support.prog("qmail-getpw")]).returncode == 100


# --- qmail-pw2u -----------------------------------------------------------------------

@pytest.fixture
def pw_tree(tmp_path):
    root = tmp_path / "root"
    (root / "users").mkdir(parents=True)
    homes = tmp_path / "homes"
    for name, uid in (("joe", 1000), ("al", 7790), ("other", 1)):
        (homes / name).mkdir(parents=True)
        if os.getuid() == 0:
            os.chown(homes / name, uid, 100)
    passwd = (f"root:x:0:0:root:/root:/bin/sh\n"
              f"joe:x:1000:100:Joe:{homes}/joe:/bin/sh\n"
              f"Upper:x:1001:100::{homes}/joe:/bin/sh\n"
              f"alias:*:7790:2108::{homes}/al:/bin/true\n"
              f"nohome:x:1002:100::{homes}/missing:/bin/sh\n"
              f"notowner:x:1003:100::{homes}/other:/bin/sh\n"
              f"short:x:1004\n").encode()
    return root, homes, passwd


def pw2u(root, passwd, *opts):
    return support.run([support.prog("qmail-pw2u"), *opts], input=passwd,
                       env=support.suite_env(QMAIL_ROOT=root))


def test_qmail_pw2u_writes_assignments_for_mail_accounts(pw_tree):
    if os.getuid() != 0:
        pytest.skip("home ownership needs root")
    root, homes, passwd = pw_tree
    r = pw2u(root, passwd)
    assert (r.returncode, r.stderr) == (0, b"")
    assert r.stdout == (f"=joe:joe:1000:100:{homes}/joe:::\n"
                        f"+joe-:joe:1000:100:{homes}/joe:-::\n"
                        f"+:alias:7790:2108:{homes}/al:-::\n"
                        f"=alias:alias:7790:2108:{homes}/al:::\n"
                        f"+alias-:alias:7790:2108:{homes}/al:-::\n.\n").encode()
    # and qmail-newu accepts what it wrote
    (root / "users" / "assign").write_bytes(r.stdout)
    assert support.run([support.prog("qmail-newu")], env=support.suite_env(QMAIL_ROOT=root)).returncode == 0
    data = (root / "users" / "cdb").read_bytes()
    assert users.lookup_cdb(data, b"joe-ext").ext == b"ext"
    assert users.lookup_cdb(data, b"nobody").user == b"alias"


def test_qmail_pw2u_options_and_files(pw_tree):
    if os.getuid() != 0:
        pytest.skip("home ownership needs root")
    root, homes, passwd = pw_tree
    (root / "users" / "mailnames").write_bytes(b"joe:jsmith:john\n")
    (root / "users" / "exclude").write_bytes(b"# comment\nalias2\n")
    (root / "users" / "subusers").write_bytes(b"joe-list:joe:list:\n")
    (root / "users" / "append").write_bytes(b"=extra:joe:1000:100:/x:::\n")
    r = pw2u(root, passwd, "-/", "-c", "+", "-u", "-H")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[:2] == [f"=jsmith:joe:1000:100:{homes}/joe:::", f"+jsmith+:joe:1000:100:{homes}/joe:-/::"]
    assert f"=Upper:Upper:1001:100:{homes}/joe:::" in lines  # -u: capitals allowed
    assert f"=nohome:nohome:1002:100:{homes}/missing:::" in lines  # -H: homes ignored
    assert f"=joe-list:joe:1000:100:{homes}/joe:-/:list:" in lines
    assert f"+joe-list+:joe:1000:100:{homes}/joe:-/:list-:" in lines
    assert lines[-2:] == ["=extra:joe:1000:100:/x:::", "."]


def test_qmail_pw2u_include_list_and_no_break(pw_tree):
    if os.getuid() != 0:
        pytest.skip("home ownership needs root")
    root, homes, passwd = pw_tree
    (root / "users" / "include").write_bytes(b"alias\n")
    r = pw2u(root, passwd, "-C")
    assert r.stdout == (f"+:alias:7790:2108:{homes}/al:-::\n"
                        f"=alias:alias:7790:2108:{homes}/al:::\n.\n").encode()


def test_qmail_pw2u_needs_alias_user(pw_tree):
    root, homes, passwd = pw_tree
    r = pw2u(root, b"joe:x:1000:100::/tmp:/bin/sh\n")
    assert (r.returncode, r.stderr) == (111, b"qmail-pw2u: fatal: unable to find alias user\n")


def test_qmail_pw2u_missing_home_with_h_stops(pw_tree):
    if os.getuid() != 0:
        pytest.skip("home ownership needs root")
    root, homes, passwd = pw_tree
    r = pw2u(root, passwd, "-h")
    assert (r.returncode, r.stderr) == (111, f"qmail-pw2u: fatal: unable to stat {homes}/missing\n".encode())


def test_qmail_pw2u_unknown_subuser_owner(pw_tree):
    if os.getuid() != 0:
        pytest.skip("home ownership needs root")
    root, homes, passwd = pw_tree
    (root / "users" / "subusers").write_bytes(b"x:ghost:p:\n")
    r = pw2u(root, passwd)
    assert (r.returncode, r.stderr) == (111, b"qmail-pw2u: fatal: unable to find ghost user for subuser\n")
