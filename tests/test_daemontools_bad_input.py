"""Bad input to the daemontools programs, each case run against the C tool and ours:
envdir with unreadable files and directories, supervise and svscan given a path that is
not a usable directory, multilog scripts with unknown or malformed actions and log
directories it cannot create, svc/svstat/svok on service directories closed to the user.
Messages, exit codes and the files left behind must be the C tools'."""

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from tests import support

LABEL = re.compile(rb"@[0-9a-f]{24}")


@pytest.fixture
def user_dir():
    """A fresh directory an ordinary user can reach (tmp_path may be closed to it as root)."""
    user = support.unprivileged_user()
    path = Path(tempfile.mkdtemp(prefix="bad-input-"))
    path.chmod(0o755)
    os.chown(path, user.pw_uid, user.pw_gid)
    yield path, user
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
    shutil.rmtree(path, ignore_errors=True)


def outcome(argv, user=None, cwd=None, input=b"", timeout=20):
    """(exit code, stdout, stderr) of argv, run as user when given."""
    if user is not None:
        argv = support.as_user(argv, user)
    result = support.run(argv, input=input, cwd=cwd, timeout=timeout)
    return result.returncode, result.stdout, result.stderr


def both(name, args, user=None, cwd=None, input=b""):
    """The outcomes of C's and our `name` with the same arguments: (c, ours)."""
    return (outcome([support.c_tool(name), *args], user, cwd, input),
            outcome([support.prog(name), *args], user, cwd, input))


def owned(path: Path, user, mode: int) -> Path:
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)
    return path


# envdir

def test_envdir_unreadable_file_is_fatal_as_in_c(user_dir):
    base, user = user_dir
    d = base / "env"
    d.mkdir()
    owned(d, user, 0o755)
    (d / "A").write_bytes(b"1\n")
    owned(d / "A", user, 0o644)
    (d / "B").write_bytes(b"2\n")
    owned(d / "B", user, 0o000)
    c, ours = both("envdir", [d, "true"], user)
    assert ours == c
    assert ours == (111, b"", f"envdir: fatal: unable to read {d}/B: access denied\n".encode())


@pytest.mark.parametrize("mode, message", [
    (0o000, "unable to switch to directory {d}: access denied"),
    (0o311, "unable to read directory {d}: access denied"),  # searchable, not listable
])
def test_envdir_unreadable_directory_is_fatal_as_in_c(user_dir, mode, message):
    base, user = user_dir
    d = base / "env"
    d.mkdir()
    (d / "A").write_bytes(b"1\n")
    owned(d, user, mode)
    c, ours = both("envdir", [d, "true"], user)
    assert ours == c
    assert ours == (111, b"", f"envdir: fatal: {message.format(d=d)}\n".encode())


# supervise and svscan

@pytest.mark.parametrize("name", ["supervise", "svscan"])
@pytest.mark.parametrize("kind", ["plain file", "closed directory", "missing"])
def test_unusable_directory_argument_is_fatal_as_in_c(user_dir, name, kind):
    base, user = user_dir
    target = base / "target"
    if kind == "plain file":
        target.write_bytes(b"")
        owned(target, user, 0o644)
        reason = "not a directory"
    elif kind == "closed directory":
        target.mkdir()
        owned(target, user, 0o000)
        reason = "access denied"
    else:
        reason = "file does not exist"
    c, ours = both(name, [target], user)
    assert ours == c
    assert ours == (111, b"", f"{name}: fatal: unable to chdir to {target}: {reason}\n".encode())


@pytest.mark.parametrize("state_dir", [False, True], ids=["service-readonly", "supervise-readonly"])
def test_supervise_that_cannot_lock_is_fatal_as_in_c(user_dir, state_dir):
    base, user = user_dir
    service = base / "svc"
    service.mkdir()
    (service / "run").write_text("#!/bin/sh\nexec sleep 100\n")
    (service / "run").chmod(0o755)
    if state_dir:
        (service / "supervise").mkdir()
        owned(service / "supervise", user, 0o555)
    owned(service, user, 0o555)
    c, ours = both("supervise", [service], user)
    assert ours == c
    reason = "access denied" if state_dir else "file does not exist"
    assert ours == (111, b"", f"supervise: fatal: unable to acquire {service}/supervise/lock: "
                              f"{reason}\n".encode())


def test_svscan_warns_each_scan_when_its_directory_cannot_be_listed(user_dir):
    base, user = user_dir
    target = base / "services"
    target.mkdir()
    owned(target, user, 0o311)
    seen = {}
    for which, path in (("c", support.c_tool("svscan")), ("ours", support.prog("svscan"))):
        proc = support.Proc(support.as_user([path, target], user))
        try:
            first = proc.err.wait_line("svscan:", timeout=10)
            assert proc.alive()
            seen[which] = first
        finally:
            proc.stop()
    assert seen["ours"] == seen["c"] == "svscan: warning: unable to read directory: access denied"


# multilog scripts

def snapshot(root: Path) -> dict:
    """Every file under root with its mode; old logs named by their order, labels masked."""
    files = {}
    for dirpath, dirnames, names in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        files[(rel, "")] = ("dir", stat.S_IMODE(os.stat(dirpath).st_mode))
        old = sorted(n for n in names if n.startswith("@"))
        for name in names:
            path = Path(dirpath) / name
            key = f"old{old.index(name)}{name[25:]}" if name.startswith("@") else name
            files[(rel, key)] = (stat.S_IMODE(path.stat().st_mode), LABEL.sub(b"@TAI", path.read_bytes()))
    return files


def multilog_both(tmp_path: Path, script: list[str], data: bytes, prepare=None):
    """C and our multilog on the same script and input in twin directories: results per tool."""
    results = {}
    for which, tool in (("c", support.c_tool("multilog")), ("ours", support.prog("multilog"))):
        work = tmp_path / which
        work.mkdir()
        if prepare:
            prepare(work)
        source = tmp_path / f"{which}.input"
        source.write_bytes(data)
        with open(source, "rb") as stdin:  # a regular file: C reads it in fixed steps
            result = support.run([tool, *script], stdin=stdin, cwd=work, timeout=60)
        results[which] = (result.returncode, result.stdout, LABEL.sub(b"@TAI", result.stderr),
                          snapshot(work))
    return results["c"], results["ours"]


def many_lines(count=600) -> bytes:
    return b"".join(b"line %05d %s\n" % (i, b"x" * (i % 70)) for i in range(count))


@pytest.mark.parametrize("script", [
    ["q", "./d"],             # an action multilog does not know: ignored
    ["Z", "xyz", "./d"],
    ["sjunk", "./d"],         # size 0, clamped to 4096
    ["s12x", "./d"],          # digits up to the junk: 12, clamped
    ["s", "./d"],
    ["s-5000", "./d"],
    ["s4096", "njunk", "./d"],  # 0 files: at least 2
    ["s4096", "n", "./d"],
    ["s4096", "n3x", "./d"],
    ["s4096", "n3", "!", "./d"],      # empty processor: sh -c '' gives empty old logs
    ["s4096", "n3", "!  ", "./d"],
    ["s4096", "n3", "!exit 1", "!cat", "./d"],  # the last processor before the log counts
    ["tt", "./d"],             # t only as the first action; a later t is unknown
    ["e", "-", "+", "./d"],    # empty patterns
    ["s4096", "./d", "./d2", "n2", "./d3"],
])
def test_malformed_script_gives_the_same_logs_as_c(tmp_path, script):
    c, ours = multilog_both(tmp_path, script, many_lines())
    assert ours[:3] == c[:3]
    assert sorted(ours[3]) == sorted(c[3])
    for key in c[3]:
        assert ours[3][key] == c[3][key], key


@pytest.mark.parametrize("script, message", [
    (["./missing/d"], "multilog: fatal: unable to open directory ./missing/d: file does not exist\n"),
    (["=", "./d"], "multilog: fatal: unable to create : file does not exist\n"),
    (["./d", "=missing/status"], "multilog: fatal: unable to create missing/status: file does not exist\n"),
])
def test_script_naming_what_cannot_be_created_exits_111_like_c(tmp_path, script, message):
    c, ours = multilog_both(tmp_path, script, b"a line\n")
    assert ours == c
    assert ours[0] == 111 and ours[2] == message.encode()


def test_log_directory_in_a_closed_parent_exits_111_like_c(user_dir):
    base, user = user_dir
    results = {}
    for which, tool in (("c", support.c_tool("multilog")), ("ours", support.prog("multilog"))):
        work = base / which
        work.mkdir()
        owned(work, user, 0o555)  # d cannot be created here
        results[which] = outcome([tool, "./d"], user, cwd=work, input=b"x\n")
        assert os.listdir(work) == []
    assert results["ours"] == results["c"]
    assert results["ours"] == (111, b"", b"multilog: fatal: unable to open directory ./d: file does not exist\n")


def test_existing_log_directory_closed_to_the_user_exits_111_like_c(user_dir):
    base, user = user_dir
    results = {}
    for which, tool in (("c", support.c_tool("multilog")), ("ours", support.prog("multilog"))):
        work = base / which
        work.mkdir()
        owned(work, user, 0o755)
        (work / "d").mkdir()
        owned(work / "d", user, 0o555)
        results[which] = outcome([tool, "./d"], user, cwd=work, input=b"x\n")
        assert os.listdir(work / "d") == []
    assert results["ours"] == results["c"]
    assert results["ours"] == (111, b"", b"multilog: fatal: unable to lock directory ./d: access denied\n")


# svc, svstat, svok on service directories closed to the user

@pytest.mark.parametrize("closed", ["service", "supervise", "ok", "control", "status"])
def test_svc_svstat_svok_on_closed_service_directories_behave_as_c(user_dir, closed):
    """A service the user supervises, with one element then made unusable to the user."""
    base, user = user_dir
    service = base / "svc"
    service.mkdir()
    (service / "run").write_text("#!/bin/sh\nexec sleep 100\n")
    owned(service / "run", user, 0o755)
    owned(service, user, 0o755)
    proc = support.Proc(support.as_user([support.prog("supervise"), service], user))
    status = service / "supervise" / "status"
    path = {"service": service, "supervise": service / "supervise", "ok": service / "supervise" / "ok",
            "control": service / "supervise" / "control", "status": status}[closed]
    try:
        support.wait_for(lambda: status.exists() and status.stat().st_size == 18, what="status")
        mode = stat.S_IMODE(path.stat().st_mode)
        path.chmod(0o000)
        try:
            for name, args in (("svok", [service]), ("svstat", [service]), ("svc", ["-u", service])):
                c, ours = both(name, args, user)
                if name == "svstat":  # the seconds may tick between the two runs
                    c, ours = ((code, re.sub(rb"\d+ seconds", b"N seconds", out), err)
                               for code, out, err in (c, ours))
                assert ours == c, (name, closed)
        finally:
            path.chmod(mode)
    finally:
        proc.stop()


def test_messages_for_closed_service_elements_are_the_c_ones(user_dir):
    """The exact texts, so that a change on both sides is noticed."""
    base, user = user_dir
    service = base / "svc"
    service.mkdir()
    (service / "run").write_text("#!/bin/sh\nexec sleep 100\n")
    owned(service / "run", user, 0o755)
    owned(service, user, 0o000)
    assert outcome([support.prog("svok"), service], user) == (
        111, b"", f"svok: fatal: unable to chdir to {service}: access denied\n".encode())
    assert outcome([support.prog("svstat"), service], user) == (
        0, f"{service}: unable to chdir: access denied\n".encode(), b"")
    assert outcome([support.prog("svc"), "-u", service], user) == (
        0, b"", f"svc: warning: unable to chdir to {service}: access denied\n".encode())


# supervise with odd things in its service directory

RUN = "#!/bin/sh\necho $$ > ../run.pid\nexec sleep 100\n"


def supervise_odd_service(work: Path, tool: str, setup) -> tuple[list[str], list]:
    """supervise on work/w after setup(w): its distinct stderr lines (first 1.5 s) and the
    service directory's entries (path, type, mode) once stopped."""
    service = work / "w"
    service.mkdir(parents=True)
    (service / "run").write_text(RUN)
    (service / "run").chmod(0o755)
    setup(service)
    proc = support.Proc([tool, "w"], cwd=work)
    try:
        lines = proc.err.read_available(1.5)
    finally:
        proc.stop()
        pid_file = work / "run.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), 9)
            except (ProcessLookupError, ValueError):
                pass
    entries = []
    for dirpath, dirnames, names in os.walk(service):
        for name in dirnames + names:
            path = Path(dirpath) / name
            st = os.lstat(path)
            entries.append((str(path.relative_to(service)), stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode)))
    return sorted(set(lines)), sorted(entries)


def _mkdirs(*names):
    def setup(service):
        for name in names:
            (service / name).mkdir()
    return setup


def _touch(name, mode=0o644):
    def setup(service):
        (service / "supervise").mkdir(exist_ok=True)
        (service / name).write_bytes(b"")
        (service / name).chmod(mode)
    return setup


def _run_replaced(kind):
    def setup(service):
        (service / "run").unlink()
        if kind == "dir":
            (service / "run").mkdir()
        else:
            (service / "run").symlink_to("run")
    return setup


@pytest.mark.parametrize("setup, expected", [
    (lambda s: (s / "run").chmod(0o644), ["supervise: fatal: unable to start w/run: access denied"]),
    (_run_replaced("dir"), ["supervise: fatal: unable to start w/run: access denied"]),
    (_run_replaced("loop"), ["supervise: fatal: unable to start w/run: symbolic link loop"]),
    (lambda s: (s / "supervise").write_bytes(b""),
     ["supervise: fatal: unable to acquire w/supervise/lock: not a directory"]),
    (_touch("supervise/control"), []),
    (_touch("supervise/ok"), []),
    (_mkdirs("supervise", "supervise/status.new"),
     ["supervise: warning: unable to open w/supervise/status.new: is a directory"]),
    (_touch("down", 0o000), []),
    (_mkdirs("down"), []),
], ids=["run-not-executable", "run-directory", "run-loop", "supervise-file", "control-regular-file",
        "ok-regular-file", "status-new-directory", "down-unreadable", "down-directory"])
def test_supervise_with_odd_service_directory_entries_behaves_as_c(tmp_path, setup, expected):
    c = supervise_odd_service(tmp_path / "c", support.c_tool("supervise"), setup)
    ours = supervise_odd_service(tmp_path / "ours", support.prog("supervise"), setup)
    assert ours == c
    assert ours[0] == expected


def test_status_that_is_a_directory_gives_the_c_warning(tmp_path):
    """Known difference: C leaves supervise/status.new behind; ours removes it."""
    setup = _mkdirs("supervise", "supervise/status")
    c = supervise_odd_service(tmp_path / "c", support.c_tool("supervise"), setup)
    ours = supervise_odd_service(tmp_path / "ours", support.prog("supervise"), setup)
    assert ours[0] == c[0] == ["supervise: warning: unable to rename w/supervise/status.new to status: "
                               "is a directory"]
    assert [e for e in c[1] if e[0] != "supervise/status.new"] == ours[1]


# multilog on log directories holding odd things

def _log_setup(*steps):
    """steps: ("dir", name) | ("file", name, bytes) | ("link", name, target), inside ./d."""
    def setup(work: Path):
        d = work / "d"
        for step in steps:
            path = work / step[1]
            if step[0] == "dir":
                path.mkdir(parents=True, exist_ok=True)
            elif step[0] == "file":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(step[2])
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.symlink_to(step[2])
        return d
    return setup


@pytest.mark.parametrize("setup, message", [
    (_log_setup(("file", "d", b"")), "multilog: fatal: unable to open directory ./d: not a directory\n"),
    (_log_setup(("dir", "d/current")), "multilog: fatal: unable to append to ./d/current: is a directory\n"),
    (_log_setup(("dir", "d/lock")), "multilog: fatal: unable to lock directory ./d: is a directory\n"),
    (_log_setup(("dir", "d/state")), "multilog: fatal: unable to write to ./d/state: is a directory\n"),
], ids=["d-is-a-file", "current-is-a-directory", "lock-is-a-directory", "state-is-a-directory"])
def test_log_directory_with_a_directory_in_the_way_exits_111_like_c(tmp_path, setup, message):
    c, ours = multilog_both(tmp_path, ["./d"], b"a line\n", prepare=setup)
    assert ours == c
    assert ours[0] == 111 and ours[2] == message.encode()


@pytest.mark.parametrize("setup", [
    _log_setup(("dir", "d"), ("link", "d/current", "nowhere")),
    _log_setup(("file", "d/processed", b"half processed\n"), ("file", "d/current", b"unfinished\n")),
    _log_setup(("file", "d/previous", b"before the crash\n"), ("file", "d/current", b"after\n")),
    _log_setup(("file", "d/previous", b"before\n"), ("file", "d/current", b"after\n"),
               ("file", "d/newstate", b"new state\n")),
], ids=["current-dangling-link", "processed-left-over", "previous-left-over", "previous-and-newstate"])
def test_log_directory_left_in_odd_states_is_recovered_like_c(tmp_path, setup):
    c, ours = multilog_both(tmp_path, ["./d"], b"one\ntwo\n", prepare=setup)
    assert ours[:3] == c[:3] == (0, b"", b"")
    assert sorted(ours[3]) == sorted(c[3])
    for key in c[3]:
        assert ours[3][key] == c[3][key], key


@pytest.mark.parametrize("name", ["previous", "processed"])
def test_a_directory_where_a_rotation_file_belongs_pauses_like_c(tmp_path, name):
    """As in C, multilog retries removing the file until a removal succeeds: taking the
    directory away is not enough (the warning becomes "file does not exist"); a plain
    file in its place lets it go on, and nothing logged is lost."""
    results = {}
    for which, tool in (("c", support.c_tool("multilog")), ("ours", support.prog("multilog"))):
        work = tmp_path / which
        (work / "d" / name).mkdir(parents=True)
        (work / "d" / "current").write_bytes(b"before\n")
        r, w = os.pipe()
        proc = support.Proc([tool, "./d"], stdin=r, cwd=work)
        os.close(r)
        try:
            first = proc.err.wait_line("multilog:", timeout=10)
            (work / "d" / name).rmdir()
            second = proc.err.wait_line("multilog:", timeout=10)
            assert proc.alive()
            (work / "d" / name).write_bytes(b"")
            os.write(w, b"one\ntwo\n")
        finally:
            os.close(w)
        assert proc.wait(20) == 0
        d = work / "d"
        assert b"".join((d / n).read_bytes() for n in sorted(os.listdir(d)) if n.startswith("@")) \
            + (d / "current").read_bytes() == b"before\none\ntwo\n"
        results[which] = (first, second, snapshot(work))
    assert results["ours"][:2] == results["c"][:2] == (
        f"multilog: warning: unable to remove ./d/{name}, pausing: is a directory",
        f"multilog: warning: unable to remove ./d/{name}, pausing: file does not exist")
    assert results["ours"][2] == results["c"][2]
