"""privileges.become, the one place ids change: complete changes, no way back to root, and a
warm child that changed uid is not dumpable by the new user before its own exec."""

import ctypes  # before any test drops root: the interpreter may be one only root can read
import json
import os
import pwd
import signal

import pytest

from tests import support
from tests.ucspi_servers import exchange, start_tcpserver
from ucspi.runtime import privileges

needs_root = pytest.mark.skipif(os.getuid() != 0, reason="changing ids needs root (CI runs as root)")


def in_child(work) -> int:
    """Run work() in a forked child of the test; its exit code (work's return value)."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = work()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def dumpable() -> int:
    return ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)


@needs_root
def test_become_sets_real_effective_and_saved_ids_and_only_the_groups_asked():
    user = support.unprivileged_user()

    def work():
        privileges.become(user.pw_uid, user.pw_gid, [user.pw_gid])
        assert os.getresuid() == (user.pw_uid,) * 3
        assert os.getresgid() == (user.pw_gid,) * 3
        assert os.getgroups() == [user.pw_gid]
        for regain in (lambda: os.setuid(0), lambda: os.seteuid(0), lambda: os.setgid(0),
                       lambda: os.setgroups([0])):
            with pytest.raises(PermissionError):
                regain()
        assert dumpable() == 0
        return 0

    assert in_child(work) == 0


@needs_root
def test_become_with_no_groups_leaves_none():
    user = support.unprivileged_user()

    def work():
        privileges.become(user.pw_uid, user.pw_gid, [])
        return 0 if os.getgroups() == [] and os.getresuid() == (user.pw_uid,) * 3 else 1

    assert in_child(work) == 0


@needs_root
def test_become_gid_only_keeps_the_uid():
    user = support.unprivileged_user()

    def work():
        privileges.become(None, user.pw_gid)
        return 0 if os.getresuid() == (0, 0, 0) and os.getresgid() == (user.pw_gid,) * 3 else 1

    assert in_child(work) == 0


def test_an_ordinary_user_cannot_become_another_and_is_told_which_step():
    if os.getuid() == 0:
        other = support.unprivileged_user()

        def work():
            privileges.become(other.pw_uid, other.pw_gid)
            try:
                privileges.become(0, 0)
            except privileges.PrivilegeError as err:
                return 0 if err.step == "gid" and err.errno == 1 else 2
            return 1
        assert in_child(work) == 0
    else:
        with pytest.raises(privileges.PrivilegeError) as caught:
            privileges.become(0, 0)
        assert caught.value.step == "gid"


def probe_report(output: bytes) -> dict:
    return json.loads(output)


def assert_dropped_warm_child(report: dict, user) -> None:
    """ucspi-probe's report of a warm child that changed to user: all of user's ids, none
    of root's left to take back, not dumpable."""
    assert report["warm"] is True
    assert report["ids"] == [user.pw_uid, user.pw_uid, user.pw_gid, user.pw_gid, [user.pw_gid]]
    assert report["saved_ids"] == [user.pw_uid, user.pw_gid]
    assert report["regains_root"] is False
    assert report["dumpable"] == 0


@needs_root
def test_setuidgid_warm_child_cannot_regain_root_and_is_not_dumpable():
    user = support.unprivileged_user()
    done = support.run([support.prog("setuidgid"), user.pw_name, support.prog("ucspi-probe")],
                       env=support.suite_env(UCSPI_WARMSTART="1"))
    report = probe_report(done.stdout)
    assert_dropped_warm_child(report, user)


@needs_root
def test_setuidgid_cold_child_is_dumpable_again_after_its_exec():
    """The flag is what exec would reset: a cold child (exec'd) is dumpable, the warm one
    above, still holding root's interpreter, is not."""
    user = support.unprivileged_user()
    done = support.run([support.prog("setuidgid"), user.pw_name, support.prog("ucspi-probe")],
                       env=support.suite_env(UCSPI_WARMSTART="0"))
    assert done.returncode == 0, f"{user.pw_name} cannot run the interpreter: {done.stderr!r}"
    report = probe_report(done.stdout)
    assert report["warm"] is False and report["dumpable"] == 1
    assert report["saved_ids"] == [user.pw_uid, user.pw_gid] and report["regains_root"] is False


@needs_root
@pytest.mark.parametrize("here", [True, False], ids=["planned-in-server", "looked-up-in-child"])
def test_tcpserver_u_g_warm_child_cannot_regain_root_and_is_not_dumpable(tmp_path, here):
    user = support.unprivileged_user()
    os.chmod(tmp_path, 0o755)
    opts = ["-RHl0"] if here else ["-Hl0", "-r", "-t", "1"]  # -r: the ident look-up is the child's
    proc, port = start_tcpserver([*opts, "-u", str(user.pw_uid), "-g", str(user.pw_gid)],
                                 [support.prog("ucspi-probe")],
                                 env=support.suite_env(UCSPI_WARMSTART="1"), cwd=tmp_path)
    try:
        report = probe_report(exchange(port))
    finally:
        proc.stop()
    assert_dropped_warm_child(report, user)


@needs_root
def test_proc_files_of_a_dropped_warm_child_belong_to_root():
    """From outside: a non-dumpable process's /proc files are root's, so the user it runs
    as cannot read its environment or memory."""
    user = support.unprivileged_user()
    proc = support.Proc([support.prog("setuidgid"), user.pw_name, support.prog("ucspi-probe"),
                         "-k", "19"], env=support.suite_env(UCSPI_WARMSTART="1"))
    try:
        report = json.loads(proc.out.wait_line(lambda line: line.startswith("{"), timeout=15))
        pid = report["pid"]
        assert pwd.getpwuid(os.stat(f"/proc/{pid}/environ").st_uid).pw_uid == 0
        with open(f"/proc/{pid}/status") as f:
            uids = next(line.split()[1:] for line in f if line.startswith("Uid:"))
        assert uids == [str(user.pw_uid)] * 4
    finally:
        proc.stop(signal.SIGKILL)
