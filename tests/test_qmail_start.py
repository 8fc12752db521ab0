"""qmail-start: starts qmail-send and its helpers with the right arguments, descriptors
and users; the optional logger gets qmail-send's log."""

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from tests import support
from tests.qmail_send_rig import FQDN, Rig, session_processes
from tests.qmail_trees import user_tree  # noqa: F401 (fixture)


@pytest.fixture
def rig(user_tree):
    root, user = user_tree
    r = Rig(root, user, Path(root).parent)
    yield r
    r.stop()


def _programs(pid: int) -> dict[str, list]:
    found: dict[str, list] = {}
    for cmdline, uid in session_processes(pid).values():
        found.setdefault(cmdline, []).append(uid)
    return found


def _wait_programs(pid: int, want: int):
    result = {}

    def enough():
        nonlocal result
        result = _programs(pid)
        started = sum(len(v) for k, v in result.items() if "qmail-" in k and "qmail-start" not in k)
        return started >= want and not any("qmail-start" in k for k in result)

    support.wait_for(enough, what="qmail-start's processes")
    return result


def test_embedded_mode_runs_every_part_as_the_current_user(rig):
    rig.start("./Maildir/")
    programs = _wait_programs(rig.proc.pid, 6)
    names = " | ".join(sorted(programs))
    for name in ("qmail-send", "qmail-todo", "qmail-lspawn ./Maildir/", "qmail-rspawn"):
        assert any(cmd.startswith(name) for cmd in programs), names
    assert len(programs.get("qmail-clean", [])) == 2, names  # qmail-send's and qmail-todo's
    uids = {uid for cmd, ids in programs.items() if "qmail-" in cmd for uid in ids}
    assert uids == {rig.user.pw_uid}


def test_default_delivery_is_mailbox(rig):
    argv = support.as_user([support.prog("qmail-start")], rig.user)
    rig.proc = support.Proc(argv, env=rig.env)
    rig.log.wait_line("status: local 0/10 remote 0/20", timeout=20)
    programs = _wait_programs(rig.proc.pid, 6)
    assert "qmail-lspawn ./Mailbox" in programs, sorted(programs)


def test_logger_gets_the_log_and_stdout_stays_quiet(rig):
    logfile = Path(rig.root) / "send.log"
    argv = support.as_user([support.prog("qmail-start"), "./Maildir/", "/bin/sh", "-c",
                            f"exec cat > {logfile}"], rig.user)
    rig.proc = support.Proc(argv, env=rig.env)
    support.wait_for(lambda: logfile.exists() and b"status: local 0/10 remote 0/20\n" in logfile.read_bytes(),
                     timeout=20, what="log line in the logger's file")
    rig.inject([f"demo@{FQDN}"])
    support.wait_for(lambda: b"end msg " in logfile.read_bytes(), timeout=20, what="end msg logged")
    assert rig.proc.out.read_available(0.2) == []
    assert len(rig.maildir("demo")) == 1


def test_root_mode_runs_each_part_as_its_qmail_user(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("root mode needs root")
    base = Path(tempfile.mkdtemp(prefix="qmail-start-root-"))
    base.chmod(0o755)
    root = str(base / "qmail")
    try:
        # root mode: qmail-install creates qmail's users and groups where they are missing
        done = support.run([support.prog("qmail-install"), "--fqdn", "root.example", root],
                           env=support.suite_env(), timeout=60)
        assert done.returncode == 0, done.stderr
        ids = {name: pwd.getpwnam(name).pw_uid for name in ("qmails", "qmailr", "qmailq")}
        remote = base / "fake-remote"
        remote.write_text("#!/bin/sh\ncat >/dev/null\nprintf 'r\\0Kok.\\n\\0'\n")
        remote.chmod(0o755)
        env = support.suite_env(QMAIL_ROOT=root, QMAILREMOTE=str(remote))
        injected = support.run([support.prog("qmail-inject"), "joe@remote.example"],
                               input=b"Subject: root mode\n\nhi\n", env=env, timeout=30)
        assert injected.returncode == 0, injected.stderr
        proc = support.Proc([support.prog("qmail-start"), "./Maildir/"], env=env)
        try:
            proc.out.wait_line(lambda x: x.endswith(": success: ok./"), timeout=30)
            programs = _wait_programs(proc.pid, 6)
            assert programs["qmail-send"] == [ids["qmails"]]
            assert programs["qmail-todo"] == [ids["qmails"]]
            assert programs["qmail-rspawn"] == [ids["qmailr"]]
            assert programs["qmail-clean"] == [ids["qmailq"]] * 2
            assert programs["qmail-lspawn ./Maildir/"] == [0]
        finally:
            proc.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
