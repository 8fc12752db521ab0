"""qmail/auth/checkpw.py: the checkpassword interface, client and server sides."""

import os
import sys
import textwrap
import time

import crypt_r
import pytest

from qmail.auth import checkpw
from tests import support

# A checkpassword built on serve(): knows joe/secret, logs in as the current user.
SERVER = textwrap.dedent("""
    import os, sys
    from qmail.auth import checkpw
    def verify(request):
        if request.user == b"temp":
            raise checkpw.Refused(checkpw.TEMPORARY)
        if request.user != b"joe" or request.password != b"secret":
            raise checkpw.Refused(checkpw.BAD_LOGIN)
        return checkpw.Account("joe", os.getuid(), os.getgid(), sys.argv[1], "/bin/sh")
    sys.exit(checkpw.serve(sys.argv[1:], verify))
""")


def run_server(tmp_path, record, next_program=None, fd3=True):
    """Run SERVER with record on descriptor 3 (None: no descriptor 3); (code, stdout)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    argv = [sys.executable, "-c", SERVER, str(home)]
    argv += next_program if next_program is not None else \
        ["sh", "-c", 'echo "$USER $HOME $SHELL $(pwd) $1"', "sh", "arg"]
    done = support.run_with_fd3(argv, record if fd3 else None, timeout=30)
    return done.returncode, done.stdout


def test_right_login_runs_the_next_program_as_the_user_in_home(tmp_path):
    code, out = run_server(tmp_path, b"joe\0secret\0<1.2@host>\0")
    home = str(tmp_path / "home")
    assert code == 0
    assert out.decode().split() == ["joe", home, "/bin/sh", home, "arg"]


@pytest.mark.parametrize("record, code", [
    (b"joe\0wrong\0\0", 1),
    (b"bob\0secret\0\0", 1),
    (b"temp\0x\0\0", 111),
    (b"joe\0secret", 2),          # password not NUL-terminated
    (b"joesecret", 2),            # no NUL at all
    (b"", 2),
    (b"joe\0secret\0" + b"x" * 502, 2),   # 513 bytes
])
def test_exit_codes(tmp_path, record, code):
    assert run_server(tmp_path, record)[0] == code


def test_512_bytes_are_accepted(tmp_path):
    record = b"joe\0secret\0" + b"x" * 500 + b"\0"
    assert len(record) == 512
    assert run_server(tmp_path, record)[0] == 0


def test_no_descriptor_3_is_misuse(tmp_path):
    assert run_server(tmp_path, b"", fd3=False)[0] == 2


def test_no_next_program_is_misuse(tmp_path):
    # serve() sees only its own name
    assert checkpw.serve(["checkpassword"], lambda request: None) == checkpw.MISUSE


def test_next_program_missing_is_temporary(tmp_path):
    code, _ = run_server(tmp_path, b"joe\0secret\0\0", ["/nonexistent/program"])
    assert code == 111


def test_parse_fields():
    request = checkpw.parse(b"u\0p\0stamp\0more")
    assert (request.user, request.password, request.timestamp) == (b"u", b"p", b"stamp")
    assert checkpw.parse(b"u\0p\0").timestamp == b""


def test_client_run_passes_the_record_and_descriptors(tmp_path):
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        code = checkpw.run(["sh", "-c", "cat <&3; exit 7"], checkpw.pop_record(b"u", b"p", b"<t>"),
                           dict(os.environ), {1: fd})
    finally:
        os.close(fd)
    assert code == 7
    assert out.read_bytes() == b"u\0p\0<t>\0"


def test_client_run_reports_a_signal_as_none():
    assert checkpw.run(["sh", "-c", "kill -9 $$"], b"", dict(os.environ), {}) is None


def test_credentials_records():
    assert checkpw.Credentials(b"u", b"p").record() == b"u\0p\0\0"
    assert checkpw.Credentials(b"u", b"digest", b"<c>").record() == b"u\0<c>\0digest\0"


@pytest.mark.parametrize("setting", ["$6$saltsalt$", "$y$j9T$saltsaltsaltsalt$", "$5$rounds=6000$abcd$",
                                     "$2b$05$" + "a" * 22, "ab"])
def test_crypt_matches_and_decoy(setting):
    stored = crypt_r.crypt("pw", setting)
    if not stored or stored.startswith("*"):
        pytest.skip(f"libxcrypt here does not do {setting}")
    assert checkpw.crypt_matches(b"pw", stored)
    assert not checkpw.crypt_matches(b"wrong", stored)
    decoy = checkpw.decoy_hash(stored)
    assert checkpw._setting_prefix(decoy) == checkpw._setting_prefix(stored)
    assert not checkpw.crypt_matches(b"pw", decoy)
    assert checkpw.spend_like(b"pw", stored) is False


@pytest.mark.parametrize("stored", ["", "!", "*", "!$6$x$y", "!!", "*LK*", "garbage$"])
def test_unusable_hashes_never_match(stored):
    assert not checkpw.crypt_matches(b"", stored)
    assert not checkpw.crypt_matches(b"garbage$", stored)
    assert not checkpw.usable(stored)


def test_decoy_costs_what_the_real_hash_costs():
    stored = crypt_r.crypt("pw", "$6$rounds=200000$saltsalt$")

    def cost(check):
        start = time.perf_counter()
        for _ in range(3):
            check()
        return time.perf_counter() - start

    wrong = cost(lambda: checkpw.crypt_matches(b"bad", stored))
    decoy = cost(lambda: checkpw.spend_like(b"bad", stored))
    assert 0.5 < decoy / wrong < 2
