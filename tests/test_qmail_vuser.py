"""qmail-vuser and the virtual-mailbox database (qmail/virtual/vdomains.py): domains routed
in qmail's own terms (virtualdomains, users/assign, one .qmail per user), logins in .passwd
and its cdb, Maildir++ quotas, bad input changing nothing, locking, delivery through
qmail-send to a virtual user and a bounce for an unknown one."""

import io
import os
import stat
import subprocess
from pathlib import Path

import cdblib
import pytest
from hypothesis import given, strategies as st

from qmail.config import users
from qmail.virtual import vdomains
from tests import support
from tests.vdomain_trees import (ADDRESS, DOMAIN, PASSWORD, bare_tree, run_checkvpw,  # noqa: F401
                                 domain_dir, maildir, ok, record, rig, vtree, vuser)


def snapshot(root: str) -> dict:
    """Every path under root with its mode and (files) content."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st_ = os.lstat(path)
            content = Path(path).read_bytes() if stat.S_ISREG(st_.st_mode) else None
            found[path] = (st_.st_mode, st_.st_uid, content)
    return found


def assignment(root: str, local: bytes) -> users.Assignment | None:
    return users.lookup_cdb((Path(root) / "users" / "cdb").read_bytes(), local)


def read_control(root: str, name: str) -> list[str]:
    path = Path(root) / "control" / name
    return path.read_text().splitlines() if path.exists() else []


# --- domains -----------------------------------------------------------------------


def test_adddomain_routes_the_domain_through_virtualdomains_and_users_assign(bare_tree):
    root, user, _ = bare_tree
    done = vuser(root, user, "adddomain", "Example.ORG")
    assert done.returncode == 0, done.stderr
    assert b"SIGHUP" in done.stderr and b"svc -h" in done.stderr
    assert read_control(root, "virtualdomains") == [f"{DOMAIN}:{DOMAIN}"]
    assert DOMAIN in read_control(root, "rcpthosts")
    assign = (Path(root) / "users" / "assign").read_text().splitlines()
    line = f"+{DOMAIN}-:{user.pw_name}:{user.pw_uid}:{user.pw_gid}:{domain_dir(root)}:-::"
    assert line in assign and assign[-1] == "."
    found = assignment(root, b"example.org-bob")
    assert found == users.Assignment(user.pw_name.encode(), user.pw_uid, user.pw_gid,
                                     str(domain_dir(root)).encode(), b"-", b"bob")
    d = domain_dir(root)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700 and d.stat().st_uid == user.pw_uid
    assert (d / ".passwd").read_bytes() == b""
    assert ok(vuser(root, user, "list")) == f"{DOMAIN}\n"


def test_adddomain_refuses_a_local_domain_and_a_foreign_virtualdomains_entry(bare_tree):
    root, user, _ = bare_tree
    locals_ = read_control(root, "locals")[0]
    before = snapshot(root)
    done = vuser(root, user, "adddomain", locals_)
    assert done.returncode == 100 and b"control/locals" in done.stderr
    vd = Path(root) / "control" / "virtualdomains"
    vd.write_text("other.example:someone\n")
    os.chown(vd, user.pw_uid, user.pw_gid)
    before = snapshot(root)
    done = vuser(root, user, "adddomain", "other.example")
    assert done.returncode == 100 and b"virtualdomains already" in done.stderr
    assert snapshot(root) == before


def test_deldomain_refuses_a_domain_with_users_unless_r(vtree):
    root, user = vtree
    before = snapshot(root)
    done = vuser(root, user, "deldomain", DOMAIN)
    assert done.returncode == 100 and b"has users" in done.stderr
    assert snapshot(root) == before
    done = vuser(root, user, "deldomain", "-r", DOMAIN)
    assert done.returncode == 0, done.stderr
    assert not domain_dir(root).exists()
    assert read_control(root, "virtualdomains") == []
    assert DOMAIN not in read_control(root, "rcpthosts")
    assert DOMAIN not in (Path(root) / "users" / "assign").read_text()
    assert assignment(root, b"example.org-bob").dash == b"-"  # now the alias catch-all's
    assert assignment(root, b"example.org-bob").home.endswith(b"/alias")
    assert ok(vuser(root, user, "list")) == ""


# --- users -------------------------------------------------------------------------


def test_add_makes_the_maildir_the_dot_qmail_and_the_login(vtree):
    root, user = vtree
    d = domain_dir(root)
    box = maildir(root)
    for sub in ("", "tmp", "new", "cur"):
        assert (box / sub).is_dir() and stat.S_IMODE((box / sub).stat().st_mode) == 0o700
        assert (box / sub).stat().st_uid == user.pw_uid
    assert (d / ".qmail-bob").read_bytes() == b"./bob/Maildir/\n"
    assert stat.S_IMODE((d / ".qmail-bob").stat().st_mode) == 0o600
    [entry] = vdomains.parse((d / ".passwd").read_bytes())
    assert entry.user == "bob" and entry.quota is None and entry.hash.startswith("$argon2id$")
    assert vdomains.password_matches(entry.hash, PASSWORD.encode())
    assert not vdomains.password_matches(entry.hash, b"wrong")
    assert vdomains.lookup(root, DOMAIN, "bob") == entry
    assert vdomains.lookup(root, DOMAIN, "nobody") is None
    assert vdomains.lookup(root, "nowhere.example", "bob") is None
    for name in (".passwd", ".passwd.cdb"):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600
    assert ok(vuser(root, user, "list", DOMAIN)) == f"{ADDRESS} -\n"


def test_names_are_folded_and_dots_become_colons_in_the_dot_qmail(vtree):
    root, user = vtree
    ok(vuser(root, user, "add", "First.Last%EXAMPLE.org", "pw"))
    d = domain_dir(root)
    assert (d / ".qmail-first:last").read_bytes() == b"./first.last/Maildir/\n"
    assert (d / "first.last" / "Maildir" / "new").is_dir()
    assert ok(vuser(root, user, "list", DOMAIN)) == f"{ADDRESS} -\nfirst.last@{DOMAIN} -\n"


@pytest.mark.parametrize("args", [
    [], ["frobnicate"], ["list", "a", "b"], ["add"], ["quota", ADDRESS],
    ["add", "-r", f"x@{DOMAIN}", "pw"], ["adddomain", "-r", "new.example"],
    ["adddomain", "bad_domain.example"], ["adddomain", "-x.example"], ["adddomain", "a..b"],
    ["adddomain", "a/b"], ["adddomain", "x" * 64 + ".example"], ["adddomain", DOMAIN],
    ["adddomain", ""], ["deldomain", "nowhere.example"],
    ["add", f"default@{DOMAIN}", "pw"], ["add", f"x-default@{DOMAIN}", "pw"],
    ["add", f".x@{DOMAIN}", "pw"], ["add", f"a..b@{DOMAIN}", "pw"], ["add", f"x.@{DOMAIN}", "pw"],
    ["add", f"a/b@{DOMAIN}", "pw"], ["add", f"a:b@{DOMAIN}", "pw"], ["add", "x" * 65 + f"@{DOMAIN}", "pw"],
    ["add", ADDRESS, "pw"], ["add", "x@nowhere.example", "pw"], ["add", f"x@{DOMAIN}", ""],
    ["add", "no-at-sign", "pw"], ["add", f"@{DOMAIN}", "pw"], ["add", "x@", "pw"],
    ["del", f"nobody@{DOMAIN}"], ["passwd", f"nobody@{DOMAIN}", "pw"],
    ["quota", ADDRESS, "12k"], ["quota", ADDRESS, "0"], ["quota", ADDRESS, "-5"],
    ["quota", f"nobody@{DOMAIN}", "100"], ["list", "nowhere.example"],
])
def test_bad_input_exits_100_and_changes_nothing(vtree, args):
    root, user = vtree
    before = snapshot(root)
    done = vuser(root, user, *args, input=b"")
    assert done.returncode == 100, (done.stdout, done.stderr)
    assert done.stderr.startswith(b"qmail-vuser: ") and done.stdout == b""
    assert snapshot(root) == before


def test_password_is_read_from_stdin_and_changed_by_passwd(vtree):
    root, user = vtree
    ok(vuser(root, user, "add", f"carol@{DOMAIN}", input=b"from stdin\r\nignored\n"))
    assert vdomains.password_matches(vdomains.lookup(root, DOMAIN, "carol").hash, b"from stdin")
    ok(vuser(root, user, "passwd", f"carol@{DOMAIN}", input=b"newer\n"))
    entry = vdomains.lookup(root, DOMAIN, "carol")
    assert vdomains.password_matches(entry.hash, b"newer")
    assert not vdomains.password_matches(entry.hash, b"from stdin")


def test_del_refuses_a_maildir_with_mail_unless_r(vtree):
    root, user = vtree
    box = maildir(root)
    (box / "new" / "1.2.host").write_bytes(b"Subject: x\n\nmail\n")
    before = snapshot(root)
    done = vuser(root, user, "del", ADDRESS)
    assert done.returncode == 100 and b"has mail" in done.stderr
    assert snapshot(root) == before
    ok(vuser(root, user, "del", "-r", ADDRESS))
    d = domain_dir(root)
    assert not (d / "bob").exists() and not (d / ".qmail-bob").exists()
    assert vdomains.lookup(root, DOMAIN, "bob") is None and vdomains.read(str(d)) == []


def test_del_removes_a_user_without_mail(vtree):
    root, user = vtree
    ok(vuser(root, user, "del", ADDRESS))
    assert not (domain_dir(root) / "bob").exists()
    assert vdomains.lookup(root, DOMAIN, "bob") is None
    ok(vuser(root, user, "add", ADDRESS, "again"))  # the name is free again


def test_quota_writes_maildirsize_and_none_removes_it(vtree):
    root, user = vtree
    box = maildir(root)
    (box / "new" / "1.M2P3.host,S=300").write_bytes(b"x" * 10)  # the size in the name wins
    (box / "cur" / "4.M5P6.host:2,S").write_bytes(b"y" * 25)
    ok(vuser(root, user, "quota", ADDRESS, "1000000"))
    lines = (box / "maildirsize").read_text().splitlines()
    assert lines[0] == "1000000S"
    assert [int(x) for x in lines[1].split()] == [325, 2]
    assert (box / "maildirsize").stat().st_uid == user.pw_uid
    assert ok(vuser(root, user, "list", DOMAIN)) == f"{ADDRESS} 1000000\n"
    assert vdomains.lookup(root, DOMAIN, "bob").quota == 1000000
    ok(vuser(root, user, "quota", ADDRESS, "none"))
    assert not (box / "maildirsize").exists()
    assert vdomains.lookup(root, DOMAIN, "bob").quota is None
    assert os.listdir(box / "tmp") == []


def test_concurrent_adds_all_land(vtree):
    root, user = vtree
    names = [f"u{i}" for i in range(6)]
    procs = [subprocess.Popen(support.as_user([support.prog("qmail-vuser"), "add",
                                               f"{n}@{DOMAIN}", "pw"], user),
                              env=support.suite_env(QMAIL_ROOT=root), stdin=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for n in names]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    entries = vdomains.read(str(domain_dir(root)))
    assert sorted(e.user for e in entries) == sorted(["bob", *names])
    reader = cdblib.Reader((domain_dir(root) / ".passwd.cdb").read_bytes())
    assert all(reader.get(n.encode()) for n in names)


@pytest.mark.skipif(os.getuid() != 0, reason="root running qmail-vuser on a user's tree needs root")
def test_root_on_an_embedded_tree_gives_everything_to_the_trees_owner(bare_tree):
    root, user, _ = bare_tree
    env = support.suite_env(QMAIL_ROOT=root)
    for args in (["adddomain", DOMAIN], ["add", ADDRESS, "pw"], ["quota", ADDRESS, "5000"]):
        done = support.run([support.prog("qmail-vuser"), *args], env=env, timeout=60)
        assert done.returncode == 0, done.stderr
    for path in [Path(root) / "vdomains", *Path(root, "vdomains").rglob("*")]:
        assert path.lstat().st_uid == user.pw_uid, path
    assert f":{user.pw_name}:{user.pw_uid}:" in (Path(root) / "users" / "assign").read_text()


@pytest.mark.skipif(os.getuid() != 0, reason="a root-mode tree needs root")
def test_root_mode_gives_domains_to_vmail_and_checkvpw_becomes_it(bare_tree):
    import pwd
    base = bare_tree[2]  # a directory every user can search (pytest's tmp_path is root's)
    root = str(base / "root-mode")
    env = support.suite_env(QMAIL_ROOT=root)
    done = support.run([support.prog("qmail-install"), "--fqdn", "mx.example.net", root],
                       timeout=120)
    assert done.returncode == 0, done.stderr
    vmail = pwd.getpwnam("vmail")
    for args in (["adddomain", DOMAIN], ["add", ADDRESS, PASSWORD]):
        done = support.run([support.prog("qmail-vuser"), *args], env=env, timeout=60)
        assert done.returncode == 0, done.stderr
    for path in [Path(root) / "vdomains", *Path(root, "vdomains").rglob("*")]:
        assert (path.lstat().st_uid, path.lstat().st_gid) == (vmail.pw_uid, vmail.pw_gid), path
    vd = Path(root) / "control" / "virtualdomains"
    assert vd.stat().st_uid == 0 and stat.S_IMODE(vd.stat().st_mode) == 0o644
    ok(vuser(root, vmail, "add", f"carol@{DOMAIN}", "pw"))  # vmail manages the users
    before = snapshot(root)
    assert vuser(root, vmail, "adddomain", "other.example").returncode == 111  # users/: root's
    assert snapshot(root) == before
    assert (domain_dir(root) / "carol" / "Maildir").stat().st_uid == vmail.pw_uid
    found = assignment(root, b"example.org-bob")
    assert (found.user, found.uid, found.gid) == (b"vmail", vmail.pw_uid, vmail.pw_gid)
    done = run_checkvpw(root, record(ADDRESS.encode(), PASSWORD), ("/bin/sh", "-c", "id -u; pwd"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == [str(vmail.pw_uid), str(domain_dir(root) / "bob")]


# --- delivery ----------------------------------------------------------------------


def test_qmail_send_delivers_to_a_virtual_user_and_bounces_an_unknown_one(vtree, rig):
    root, _ = vtree
    rig.inject([ADDRESS], subject="for bob", body=b"virtual body\n")
    rig.log.wait_line(lambda line: "delivery 1: success" in line, timeout=30)
    [mail] = [p.read_bytes() for p in (maildir(root) / "new").iterdir()]
    assert mail.startswith(b"Return-Path: <demo@mail.example.com>\n"
                           b"Delivered-To: example.org-bob@example.org\n")
    assert mail.endswith(b"\nSubject: for bob\n\nvirtual body\n")
    rig.inject([f"nobody@{DOMAIN}"], subject="for nobody")
    support.wait_for(lambda: any(b"Sorry, no mailbox here by that name. (#5.1.1)" in m
                                 for m in rig.maildir("demo")), timeout=30,
                     what="bounce for nobody@example.org")


# --- the database's formats --------------------------------------------------------


@pytest.mark.parametrize("good", ["bob", "first.last", "a-b", "_x", "0", "x" * 64, "a.b-c_d"])
def test_good_user_names(good):
    assert vdomains.check_user(good.upper()) == good


@pytest.mark.parametrize("good", ["example.org", "a", "a-b.c0", "x" * 63 + ".org"])
def test_good_domain_names(good):
    assert vdomains.check_domain(good.upper()) == good


@given(st.text(max_size=80))
def test_a_checked_user_name_is_a_safe_file_name(text):
    try:
        name = vdomains.check_user(text)
    except vdomains.BadName:
        return
    assert "/" not in name and ":" not in name and not name.startswith(".")
    assert name == name.lower() and name.isascii() and name != "default"
    assert vdomains.dot_qmail_name(name) == ".qmail-" + name.replace(".", ":")


@given(st.text(max_size=300))
def test_a_checked_domain_is_lowercase_labels(text):
    try:
        name = vdomains.check_domain(text)
    except vdomains.BadName:
        return
    assert all(0 < len(label) <= 63 for label in name.split("."))
    assert "/" not in name and ":" not in name and name.isascii() and name == name.lower()


_users = st.from_regex(r"[a-z0-9_][a-z0-9_-]{0,20}", fullmatch=True).filter(
    lambda n: n != "default" and not n.endswith("-default"))
_entries = st.lists(st.builds(vdomains.Entry, _users,
                              st.from_regex(r"\$argon2id\$[A-Za-z0-9+/=,$]{1,40}", fullmatch=True),
                              st.one_of(st.none(), st.integers(0, 10**12))),
                    unique_by=lambda e: e.user, max_size=8)


@given(_entries)
def test_passwd_text_and_cdb_round_trip(entries):
    text = vdomains.format_entries(entries)
    assert vdomains.parse(text) == sorted(entries, key=lambda e: e.user)
    out = io.BytesIO()
    vdomains.build_cdb(entries, out)
    reader = cdblib.Reader(out.getvalue())
    for e in entries:
        hashed, quota = reader.get(e.user.encode()).split(b":")
        assert hashed.decode() == e.hash and quota == (b"" if e.quota is None else b"%d" % e.quota)


@pytest.mark.parametrize("text", [b"bob:hash\n", b"bob:hash:1:2\n", b"Bob:hash:\n", b"bob::\n",
                                  b"bob:hash:12k\n", b".x:hash:\n"])
def test_bad_passwd_lines_are_refused(text):
    with pytest.raises(vdomains.FormatError):
        vdomains.parse(text)


@pytest.mark.parametrize("login, expected", [
    ("bob@example.org", ("bob", "example.org")), ("Bob%Example.Org", ("bob", "example.org")),
    ("a%b@example.org", None), ("a@b%example.org", None), ("a%b%example.org", None),
])
def test_split_address_takes_the_last_at_else_the_last_percent(login, expected):
    if expected is None:
        with pytest.raises(vdomains.BadName):
            vdomains.split_address(login)
    else:
        assert vdomains.split_address(login) == expected
