"""qmail-lspawn: the spawn protocol in, qmail-local run as the right user, K/Z/D reports out."""

import os
import pwd
import shutil
import stat
import tempfile

import pytest

from qmail.queue import spawn_protocol
from tests import qmail_trees, support

MESSAGE = b"Subject: lspawn\n\nbody\n"


@pytest.fixture
def world():
    """A tree every user can traverse (tmp_path is root's 0700): ROOT, a home, a message."""
    base = tempfile.mkdtemp(prefix="lspawn-")
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def build(base, user, assign_extra=b"", owner=None):
    root = os.path.join(base, "root")
    home = os.path.join(base, "home")
    for d in (root, os.path.join(root, "queue", "mess", "7"), os.path.join(root, "users"),
              home, os.path.join(home, "Maildir", "tmp"), os.path.join(home, "Maildir", "new"),
              os.path.join(home, "Maildir", "cur")):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
    with open(os.path.join(root, "queue", "mess", "7", "1234"), "wb") as f:
        f.write(MESSAGE)
    assign = (b"=demo:%s:%d:%d:%s:::\n" % (user.pw_name.encode(), user.pw_uid, user.pw_gid,
                                           home.encode())
              + b"+demo-:%s:%d:%d:%s:-::\n" % (user.pw_name.encode(), user.pw_uid,
                                              user.pw_gid, home.encode())
              + assign_extra + b".\n")
    with open(os.path.join(root, "users", "assign"), "wb") as f:
        f.write(assign)
    r = support.run([support.prog("qmail-newu")], env=support.suite_env(QMAIL_ROOT=root))
    assert r.returncode == 0, r.stderr
    if owner is None:  # root mode: the queue belongs to a queue user, not to us
        queue_user = pwd.getpwnam("nobody")
        for path in (os.path.join(root, "queue", "mess", "7"),
                     os.path.join(root, "queue", "mess", "7", "1234"),
                     os.path.join(root, "queue", "mess")):
            os.chown(path, queue_user.pw_uid, queue_user.pw_gid)
    if owner is not None:
        for d, dirs, files in os.walk(base):
            for name in [d] + [os.path.join(d, x) for x in dirs + files]:
                os.chown(name, owner.pw_uid, owner.pw_gid)
    else:
        for d, dirs, files in os.walk(home):
            for name in [d] + [os.path.join(d, x) for x in dirs + files]:
                os.chown(name, user.pw_uid, user.pw_gid)
    return root, home


def talk(root, commands, as_user=None, warm=True, default="./Maildir/", wrap=None):
    data = b"".join(spawn_protocol.encode_command(n, b"7/1234", sender, rcpt)
                    for n, (sender, rcpt) in enumerate(commands))
    argv = [support.prog("qmail-lspawn"), default]
    if as_user is not None:
        argv = support.as_user(argv, as_user)
    if wrap is not None:
        argv = wrap(argv)
    r = support.run(argv, input=data, timeout=60,
                    env=support.suite_env(QMAIL_ROOT=root, UCSPI_WARMSTART="1" if warm else "0"))
    assert r.returncode == 0, r.stderr
    assert r.stdout[:1] == bytes([spawn_protocol.AUTO_SPAWN])
    reports = dict(spawn_protocol.ReportReader().feed(r.stdout[1:]))
    assert len(reports) == len(commands)
    return reports


def delivered(home):
    new = os.path.join(home, "Maildir", "new")
    return [os.path.join(new, n) for n in os.listdir(new)]


def require_root():
    if os.getuid() != 0:
        pytest.skip("root mode needs root")


def require_interpreter_for(user):
    """Cold start as user needs our interpreter reachable by that user after a uid change."""
    probe = f"{support.PYTHON} -c 0"
    r = support.run(support.as_user(["/bin/sh", "-c", probe], user))
    if r.returncode != 0:
        pytest.skip(f"{support.PYTHON} cannot be run by {user.pw_name} here: {r.stderr!r}")


@pytest.mark.parametrize("warm", [True, False])
def test_root_mode_delivers_as_the_assigned_user(world, warm):
    require_root()
    user = support.unprivileged_user()
    if not warm:
        require_interpreter_for(user)
    root, home = build(world, user)
    reports = talk(root, [(b"s@x.org", b"demo@example.com")], warm=warm)
    assert reports == {0: b"Kdid 1+0+0\n"}
    [path] = delivered(home)
    assert os.stat(path).st_uid == user.pw_uid
    with open(path, "rb") as f:
        assert f.read() == (b"Return-Path: <s@x.org>\nDelivered-To: demo@example.com\n" + MESSAGE)


def test_root_mode_program_runs_with_the_users_ids_only(world):
    require_root()
    user = support.unprivileged_user()
    root, home = build(world, user)
    with open(os.path.join(home, ".qmail-ids"), "wb") as f:
        f.write(b"|id -u; id -g; id -G\n")
    os.chown(os.path.join(home, ".qmail-ids"), user.pw_uid, user.pw_gid)
    reports = talk(root, [(b"s@x.org", b"demo-ids@example.com")])
    assert reports == {0: b"K%d\n%d\n%d\ndid 0+0+1\n" % (user.pw_uid, user.pw_gid, user.pw_gid)}


def test_root_mode_refuses_to_deliver_as_root(world):
    require_root()
    user = support.unprivileged_user()
    root, home = build(world, user, assign_extra=b"=boss:root:0:0:/root:::\n")
    reports = talk(root, [(b"s@x.org", b"boss@example.com")])
    assert reports == {0: b"ZNot allowed to perform deliveries as root.\n"}


@pytest.mark.parametrize("warm", [True, False])
def test_embedded_mode_runs_everything_as_the_current_user(world, warm):
    user = support.unprivileged_user()
    if not warm and os.getuid() == 0:
        require_interpreter_for(user)
    root, home = build(world, user, owner=user)
    reports = talk(root, [(b"s@x.org", b"demo@example.com"), (b"", b"Demo-Ext@example.com")],
                   as_user=user, warm=warm)
    assert reports[0] == b"Kdid 1+0+0\n"
    assert reports[1] == b"DSorry, no mailbox here by that name. (#5.1.1)\n"
    [path] = delivered(home)
    assert os.stat(path).st_uid == user.pw_uid


def test_extension_reaches_qmail_local(world):
    user = support.unprivileged_user()
    root, home = build(world, user, owner=user)
    with open(os.path.join(home, ".qmail-tag-default"), "wb") as f:
        f.write(b'|echo "$EXT/$DEFAULT/$LOCAL/$HOST"\n')
    os.chown(os.path.join(home, ".qmail-tag-default"), user.pw_uid, user.pw_gid)
    reports = talk(root, [(b"s@x.org", b"Demo-Tag-X@Example.COM")], as_user=user)
    assert reports == {0: b"KTag-X/X/Demo-Tag-X/Example.COM\ndid 0+0+1\n"}


def test_null_local_part_is_delivered_as_nothing(world):
    user = support.unprivileged_user()
    root, home = build(world, user, owner=user)
    assert talk(root, [(b"s@x.org", b"@example.com")], as_user=user) == {0: b"K"}


def test_recipient_without_host_fails_permanently(world):
    user = support.unprivileged_user()
    root, home = build(world, user, owner=user)
    reports = talk(root, [(b"s@x.org", b"demo")], as_user=user)
    assert reports == {0: b"DSorry, address must include host name. (#5.1.3)\n"}


def test_corrupt_users_cdb_defers(world):
    user = support.unprivileged_user()
    root, home = build(world, user, owner=user)
    with open(os.path.join(root, "users", "cdb"), "wb") as f:
        f.write(b"garbage")
    reports = talk(root, [(b"s@x.org", b"demo@example.com")], as_user=user)
    assert reports == {0: b"ZTrouble reading users/cdb in qmail-lspawn.\n"}


def without_account(name, tmp_path):
    """A wrapper running argv where account `name` does not exist: a private mount
    namespace with a copy of /etc/passwd lacking it (needs root when the account exists,
    e.g. after the root-mode tests created qmail's users on this machine)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return lambda argv: argv
    require_root()
    fake = tmp_path / "passwd-without-" / name
    fake.parent.mkdir(exist_ok=True)
    with open("/etc/passwd") as f:
        fake.write_text("".join(line for line in f if not line.startswith(name + ":")))
    fake.chmod(0o644)
    return lambda argv: ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                         'mount --bind "$0" /etc/passwd && exec "$@"', str(fake), *argv]


def test_unknown_address_without_alias_user_defers(world, tmp_path):
    user = support.unprivileged_user()
    root, home = build(world, user, owner=user)
    reports = talk(root, [(b"s@x.org", b"zz9-nobody-here@example.com")], as_user=user,
                   wrap=without_account("alias", tmp_path))
    assert reports == {0: b"ZUnable to find alias user!\n"}


def test_many_deliveries_at_once_all_arrive(world):
    user = support.unprivileged_user()
    root, home = build(world, user, owner=user)
    commands = [(b"s%d@x.org" % n, b"demo@example.com") for n in range(20)]
    reports = talk(root, commands, as_user=user)
    assert set(reports.values()) == {b"Kdid 1+0+0\n"}
    assert len(delivered(home)) == 20
    assert os.listdir(os.path.join(home, "Maildir", "tmp")) == []


def test_without_default_delivery_exits_100(world):
    r = support.run([support.prog("qmail-lspawn")], input=b"")
    assert r.returncode == 100


def test_embedded_tree_made_by_root_refuses_to_deliver_as_root(tmp_path):
    """qmail's rule holds in every mode: an embedded tree that root owns (and root runs)
    gets QLX_ROOT, not a delivery as uid 0; nothing is written to a mailbox."""
    require_root()
    root = qmail_trees.embedded_tree(tmp_path)
    os.makedirs(os.path.join(root, "queue", "mess", "7"), exist_ok=True)
    with open(os.path.join(root, "queue", "mess", "7", "1234"), "wb") as f:
        f.write(MESSAGE)
    reports = talk(root, [(b"s@x.org", b"demo@mail.example.com"),
                          (b"s@x.org", b"postmaster@mail.example.com")])
    assert reports == {0: b"ZNot allowed to perform deliveries as root.\n",
                       1: b"ZNot allowed to perform deliveries as root.\n"}
    assert delivered(os.path.join(root, "mailboxes", "demo")) == []
    assert os.listdir(os.path.join(root, "alias", "Maildir", "new")) == []


def test_message_not_owned_by_queue_owner_is_refused(world):
    require_root()
    user = support.unprivileged_user()
    root, home = build(world, user)
    os.chown(os.path.join(root, "queue", "mess", "7", "1234"), user.pw_uid, user.pw_gid)
    reports = talk(root, [(b"s@x.org", b"demo@example.com")])
    assert reports == {0: b"ZSorry, message has wrong owner. (#4.3.5)\n"}
    assert delivered(home) == []
    assert stat.S_ISREG(os.stat(os.path.join(root, "queue", "mess", "7", "1234")).st_mode)
