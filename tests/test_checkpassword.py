"""checkpassword (system users): exit codes for each bad input, the login (ids, home,
USER/HOME/SHELL), hashes that never match, shadow trouble, the time an unknown user
takes; with a password database of the tests' own, and (as root) with real accounts made
by useradd/chpasswd in /etc/passwd and /etc/shadow (sha512-crypt and yescrypt)."""

import os
import subprocess
import time

import crypt_r
import pytest

from qmail.auth import checkpassword, checkpw
from tests import pop3_rig, support
from tests.pop3_rig import PASSWORD, USER

SHOW = ["sh", "-c", 'echo "$(id -u) $(id -g) $(id -G) $(pwd) $USER $HOME $SHELL $1"', "sh", "arg"]


def run(record: bytes | None, env=None, argv=SHOW):
    """checkpassword ARGV with record on descriptor 3 (None: no descriptor 3);
    (exit code, stdout, stderr)."""
    done = support.run_with_fd3([support.prog("checkpassword"), *argv], record, env=env)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def user():
    """The rig's account popper (an ordinary user's uid) plus: locked (!hash), star (*),
    empty (no password), nohash ('x' in passwd, nothing in shadow), rootish (uid 0)."""
    right = crypt_r.crypt(PASSWORD, "$6$other$")
    u = pop3_rig.PopUser(
        extra_passwd="".join(f"{name}:x:{{uid}}:{{gid}}::/:/bin/sh\n".format(uid=os.getuid(), gid=os.getgid())
                             for name in ("locked", "star", "empty", "nohash")),
        extra_shadow=f"locked:!{right}:1::::::\nstar:*:1::::::\nempty::1::::::\n")
    yield u
    u.remove()


def test_right_login_becomes_the_user_in_home(user):
    code, out, err = run(f"{USER}\0{PASSWORD}\0<1.2@host>\0".encode(), user.env())
    assert code == 0, err
    uid, gid, groups, cwd, name, home, shell, arg = out.decode().split()
    assert (int(uid), int(gid), cwd, name, home, shell, arg) == \
        (user.uid, user.gid, str(user.home), USER, str(user.home), "/bin/sh", "arg")
    if os.getuid() == 0:
        assert groups == str(user.gid)  # as djb's prot_gid: the primary group alone


@pytest.mark.parametrize("record, code", [
    (f"{USER}\0wrong\0\0".encode(), 1),
    (f"{USER}\0{PASSWORD}x\0\0".encode(), 1),
    (f"{USER}\0\0\0".encode(), 1),
    (f"nobody-such\0{PASSWORD}\0\0".encode(), 1),
    (f"\0{PASSWORD}\0\0".encode(), 1),
    (f"locked\0{PASSWORD}\0\0".encode(), 1),
    (b"star\0*\0\0", 1),
    (b"empty\0\0\0", 1),
    (b"empty\0x\0\0", 1),
    (b"nohash\0x\0\0", 111),                  # 'x' in passwd, no shadow entry: trouble
    (f"{USER}\0{PASSWORD}".encode(), 2),      # password not NUL-terminated
    (f"{USER}{PASSWORD}".encode(), 2),        # no NUL at all
    (b"", 2),
    (f"{USER}\0{PASSWORD}\0".encode() + b"x" * 600, 2),   # more than 512 bytes
])
def test_exit_codes(user, record, code):
    assert run(record, user.env())[0] == code


def test_no_descriptor_3_and_no_program_are_misuse(user):
    assert run(None, user.env())[0] == 2
    assert run(f"{USER}\0{PASSWORD}\0\0".encode(), user.env(), argv=[])[0] == 2


def test_unreadable_shadow_is_temporary(user):
    env = user.env(CHECKPASSWORD_SHADOW=str(user.base))  # a directory: reading it fails
    assert run(f"{USER}\0{PASSWORD}\0\0".encode(), env)[0] == 111
    env = user.env(CHECKPASSWORD_PASSWD=user.base / "missing")
    assert run(f"{USER}\0{PASSWORD}\0\0".encode(), env)[0] == 111


def test_missing_home_is_temporary(user):
    os.rename(user.home, user.base / "elsewhere")
    assert run(f"{USER}\0{PASSWORD}\0\0".encode(), user.env())[0] == 111


def test_missing_program_is_temporary(user):
    assert run(f"{USER}\0{PASSWORD}\0\0".encode(), user.env(), argv=["/nonexistent/prog"])[0] == 111


def test_typical_hash_is_the_most_common_setting():
    rows = [["a", "$6$s1$h"], ["b", "$y$j9T$s$h"], ["c", "$y$j9T$t$h"], ["d", "!"], ["e", "*"], ["f", ""]]
    assert checkpassword.typical_hash(rows) == "$y$j9T$s$h"
    assert checkpassword.typical_hash([["d", "!"]]) is None


# --- real accounts (root) -------------------------------------------------------


@pytest.fixture(scope="module")
def accounts():
    """Two accounts made with useradd and chpasswd: sha512-crypt and yescrypt hashes."""
    if os.getuid() != 0:
        pytest.skip("making system accounts (useradd, chpasswd) needs root")
    made = []

    def remove():
        for name in made:
            subprocess.run(["userdel", "-r", name], capture_output=True)

    try:
        for name, method in (("cpwsha", "SHA512"), ("cpwyes", "YESCRYPT")):
            subprocess.run(["userdel", "-r", name], capture_output=True)
            subprocess.run(["useradd", "-m", "-d", f"/tmp/{name}-home", "-s", "/bin/sh", name],
                           check=True, capture_output=True)
            made.append(name)
            done = subprocess.run(["chpasswd", "-c", method], input=f"{name}:{PASSWORD}\n".encode(),
                                  capture_output=True)
            assert done.returncode == 0, done.stderr
        hashes = {row[0]: row[1] for row in checkpassword.read_table("/etc/shadow")}
        assert hashes["cpwsha"].startswith("$6$") and hashes["cpwyes"].startswith("$y$")
        yield made
    finally:
        remove()


@pytest.mark.parametrize("name", ["cpwsha", "cpwyes"])
def test_system_account_login(accounts, name):
    env = support.suite_env(CHECKPASSWORD_PASSWD=None, CHECKPASSWORD_SHADOW=None)
    code, out, err = run(f"{name}\0{PASSWORD}\0\0".encode(), env)
    assert code == 0, err
    import pwd
    pw = pwd.getpwnam(name)
    assert out.decode().split() == [str(pw.pw_uid), str(pw.pw_gid), str(pw.pw_gid), pw.pw_dir,
                                    name, pw.pw_dir, "/bin/sh", "arg"]
    assert run(f"{name}\0wrong\0\0".encode(), env)[0] == 1


def test_system_account_locked(accounts):
    env = support.suite_env()
    subprocess.run(["usermod", "-L", "cpwsha"], check=True, capture_output=True)
    try:
        assert run(f"cpwsha\0{PASSWORD}\0\0".encode(), env)[0] == 1
    finally:
        subprocess.run(["usermod", "-U", "cpwsha"], check=True, capture_output=True)
    assert run(f"cpwsha\0{PASSWORD}\0\0".encode(), env)[0] == 0


def test_root_login_is_allowed_as_in_qmail(accounts, tmp_path):
    """uid 0 with a password logs in as root (djb's checkpassword does); qmail-pop3d then
    refuses to run as root."""
    stored = crypt_r.crypt(PASSWORD, "$6$rootish$")
    (tmp_path / "passwd").write_text(f"rootish:x:0:0::{tmp_path}:/bin/sh\n")
    (tmp_path / "shadow").write_text(f"rootish:{stored}:1::::::\n")
    env = support.suite_env(CHECKPASSWORD_PASSWD=tmp_path / "passwd", CHECKPASSWORD_SHADOW=tmp_path / "shadow")
    code, out, _ = run(f"rootish\0{PASSWORD}\0\0".encode(), env)
    assert code == 0 and out.split()[0] == b"0"
    code, out, err = run(f"rootish\0{PASSWORD}\0\0".encode(), env, argv=[support.prog("qmail-pop3d"), "Maildir"])
    assert (code, err) == (1, b"qmail-pop3d invoked as uid 0, terminating\n")


def test_unknown_user_takes_the_time_of_a_wrong_password(accounts):
    """In process, the real /etc files: verify() for an unknown user and, with a wrong
    password, for the test account whose hash has the most common setting here."""
    os.environ.pop("CHECKPASSWORD_PASSWD", None)
    os.environ.pop("CHECKPASSWORD_SHADOW", None)

    def once(name: bytes) -> float:
        start = time.perf_counter()
        with pytest.raises(checkpw.Refused) as refused:
            checkpassword.verify(checkpw.Request(name, b"wrong password", b""))
        assert refused.value.code == 1
        return time.perf_counter() - start

    shadow = checkpassword.read_table("/etc/shadow")
    typical = checkpw._setting_prefix(checkpassword.typical_hash(shadow))
    ours = [row[0] for row in shadow if row[0] in accounts and checkpw._setting_prefix(row[1]) == typical]
    if not ours:
        pytest.skip(f"the most common hash setting here ({typical}) is neither test account's")
    name = ours[0].encode()
    # interleaved, and the fastest of each: what the work costs, without the load's noise
    wrong, unknown = [], []
    for _ in range(9):
        wrong.append(once(name))
        unknown.append(once(b"no-such-user-here"))
    wrong, unknown = min(wrong), min(unknown)
    assert wrong > 0.002, "hashing too fast here to tell"
    assert 0.75 < unknown / wrong < 1.33, (unknown, wrong)


def test_unknown_user_without_the_imitation_would_be_fast():
    """What the timing test guards against: reading the files alone is far cheaper than
    a hash, so skipping the decoy would show."""
    start = time.perf_counter()
    checkpassword.read_table("/etc/passwd")
    lookup = time.perf_counter() - start
    start = time.perf_counter()
    checkpw.spend_like(b"x")
    assert time.perf_counter() - start > 2 * lookup
