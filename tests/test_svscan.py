"""svscan: services and log pipes started, rescans, restarts, limits, descriptors,
signals, warnings; our svscan with our supervise, compared with the C svscan."""

import os
import shutil
import signal
import sys
import time

import pytest

from tests import support

SLEEP_RUN = "#!/bin/sh\nexec sleep 1000\n"
# Records its pid, then becomes sleep: the test inspects what the run process was given.
PID_RUN = "#!/bin/sh\necho $$ > pid\nexec sleep 1000\n"

# Writes "line N" for N up to the number in ./limit; ./next survives restarts, so a
# restarted writer goes on where it stopped (a kill between write and record repeats
# one line, never skips one).
WRITER = """
import os, time
def number(name, default):
    try:
        with open(name) as f:
            return int(f.read() or default)
    except (OSError, ValueError):
        return default
n = number("next", 1)
while True:
    if n > number("limit", 0):
        time.sleep(0.01)
        continue
    os.write(1, b"line %d\\n" % n)
    n += 1
    with open("next.tmp", "w") as f:
        f.write(str(n))
    os.replace("next.tmp", "next")
    time.sleep(0.001)
"""
# Appends everything it reads to ./lines.
LOGGER = """
import os
out = os.open("lines", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
while True:
    data = os.read(0, 65536)
    if not data:
        break
    os.write(out, data)
"""


def svscan_path(which):
    return support.prog("svscan") if which == "ours" else support.c_tool("svscan")


def start_svscan(which, directory, env=None, **kw):
    """svscan on directory; our supervise comes first in PATH unless env says otherwise."""
    return support.Proc([svscan_path(which), directory],
                        env=env if env is not None else support.suite_env(), **kw)


def c_env():
    """PATH finding the C supervise: the whole C daemontools tree."""
    support.c_tool("supervise")
    return support.suite_env(PATH="/usr/bin:/bin")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    return " ".join(w.decode(errors="replace") for w in raw.split(b"\0") if w).strip()


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def cwd(pid):
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def supervisors(svscan):
    """title -> pid of svscan's living children."""
    return {title(p): p for p in children(svscan.pid) if state(p) not in ("Z", "gone")}


def wait_supervisors(svscan, names, timeout=15):
    want = {f"supervise {n}" for n in names}
    return support.wait_for(lambda: (lambda s: s if set(s) == want else None)(supervisors(svscan)),
                            timeout, what=f"supervisors {sorted(want)}")


def wait_pid_file(path, timeout=10):
    """The pid a run script wrote, once that process has become sleep and sleeps
    (while starting, sleep itself opens and closes locale files)."""
    def ready():
        try:
            pid = int(path.read_text())
            with open(f"/proc/{pid}/wchan") as f:
                sleeping = "nanosleep" in f.read()
        except (OSError, ValueError):
            return None
        return pid if sleeping and title(pid).startswith("sleep") else None
    return support.wait_for(ready, timeout, what=f"{path}")


def fd_targets(pid):
    directory = f"/proc/{pid}/fd"
    return {int(fd): os.readlink(f"{directory}/{fd}") for fd in os.listdir(directory)}


def tree(pid, root, depth=2):
    """svscan's descendants as sorted (depth, title, cwd relative to root)."""
    found = []

    def walk(parent, level):
        for child in children(parent):
            if state(child) in ("Z", "gone"):
                continue
            found.append((level, title(child), os.path.relpath(cwd(child), root)))
            if level < depth:
                walk(child, level + 1)
    walk(pid, 1)
    return sorted(found)


def log_lines(path):
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("which", ["ours", "C", "ours with C supervise"])
def test_starts_one_supervise_per_directory_and_a_log_pair(tmp_path, which):
    support.service_tree(tmp_path, {"a": SLEEP_RUN, "b": SLEEP_RUN}, logs={"b": SLEEP_RUN})
    if which == "ours with C supervise":
        svscan = start_svscan("ours", tmp_path, env=c_env())
    else:
        svscan = start_svscan(which, tmp_path)
    found = wait_supervisors(svscan, ["a", "b", "log"])
    # The logger runs as `supervise log` inside b, as 0.76 does it. Each supervise is
    # titled (exec'd, or warm-started) before it changes into its directory: wait for it.
    for name, where in (("supervise log", tmp_path / "b" / "log"), ("supervise a", tmp_path / "a")):
        support.wait_for(lambda: cwd(found[name]) == str(where), what=f"{name} in {where}")


def test_skips_dot_directories_and_files_and_follows_links_once(tmp_path):
    support.service_tree(tmp_path, {"a": SLEEP_RUN, ".hidden": SLEEP_RUN, "b": SLEEP_RUN})
    (tmp_path / "plain-file").write_text("")
    (tmp_path / "alias").symlink_to("b")
    (tmp_path / "outside").symlink_to(tmp_path / "a")
    svscan = start_svscan("ours", tmp_path)
    support.wait_for(lambda: len(supervisors(svscan)) == 2, what="two supervisors")
    time.sleep(0.5)
    found = supervisors(svscan)
    # One supervise per directory, whichever of its names readdir gave first.
    assert sorted(cwd(p) for p in found.values()) == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert not (tmp_path / ".hidden" / "supervise").exists()


def test_process_tree_is_the_c_svscan_tree(tmp_path):
    env = c_env()
    support.service_tree(tmp_path, {"a": SLEEP_RUN, ".hidden": SLEEP_RUN, "b": SLEEP_RUN},
                         logs={"b": SLEEP_RUN})
    (tmp_path / "plain-file").write_text("")
    (tmp_path / "alias").symlink_to("a")
    # 0.76 pairs a logger with s only when s/log is a directory; the sticky bit of 0.70
    # and below means nothing any more.
    support.service_tree(tmp_path, {"c": SLEEP_RUN})
    (tmp_path / "c" / "log").write_text("not a directory")
    (tmp_path / "c").chmod(0o1755)
    trees = []
    for which, run_env in (("C", env), ("ours", support.suite_env())):
        svscan = start_svscan(which, tmp_path, env=run_env)
        support.wait_for(lambda: [t[1] for t in tree(svscan.pid, tmp_path) if t[0] == 2]
                         == ["sleep 1000"] * 4, what="four run processes")
        trees.append(tree(svscan.pid, tmp_path))
        svscan.stop()
    assert trees[1] == trees[0], trees
    assert len(trees[0]) == 8


@pytest.mark.parametrize("which", ["ours", "C"])
def test_log_pipe_loses_no_line_when_either_side_restarts(tmp_path, which):
    writer = f"#!/bin/sh\nexec {sys.executable} {tmp_path / 'writer.py'}\n"
    logger = f"#!/bin/sh\nexec {sys.executable} {tmp_path / 'logger.py'}\n"
    support.service_tree(tmp_path / "services", {"w": writer}, logs={"w": logger})
    (tmp_path / "writer.py").write_text(WRITER)
    (tmp_path / "logger.py").write_text(LOGGER)
    service = tmp_path / "services" / "w"
    lines_file = service / "log" / "lines"
    svscan = start_svscan(which, tmp_path / "services")
    found = wait_supervisors(svscan, ["w", "log"])

    def run_pid(name):
        return support.wait_for(lambda: children(found[f"supervise {name}"]), what=name)[0]

    def produce(limit, during=None, after=0):
        (service / "limit").write_text(str(limit))
        if during:
            support.wait_for(lambda: len(log_lines(lines_file)) >= after, what=f"{after} lines")
            during()
        support.wait_for(lambda: len(set(log_lines(lines_file))) >= limit, timeout=20,
                         what=f"{limit} lines")

    produce(50)
    writer_pid, logger_pid = run_pid("w"), run_pid("log")
    # The logger dies while idle; what the writer writes meanwhile waits in the pipe.
    os.kill(logger_pid, signal.SIGKILL)
    produce(100)
    assert run_pid("w") == writer_pid, "the writer must not see a broken pipe"
    logger_pid = run_pid("log")
    assert support.run([support.prog("svc"), "-t", service / "log"]).returncode == 0
    produce(150)
    support.wait_for(lambda: run_pid("log") != logger_pid, what="logger restarted")
    assert run_pid("w") == writer_pid
    # The writer dies in the middle of a burst, by KILL and then by svc -t.
    produce(400, during=lambda: os.kill(run_pid("w"), signal.SIGKILL), after=200)
    produce(700, during=lambda: support.run([support.prog("svc"), "-t", service]), after=450)
    lines = log_lines(lines_file)
    assert all(line.startswith("line ") for line in lines)
    numbers = {int(line[5:]) for line in lines}
    assert numbers == set(range(1, 701)), f"lost: {sorted(set(range(1, 701)) - numbers)[:10]}"


def test_new_and_removed_directories_are_seen_at_the_next_scan(tmp_path):
    support.service_tree(tmp_path, {"a": SLEEP_RUN})
    svscan = start_svscan("ours", tmp_path)
    found = wait_supervisors(svscan, ["a"])
    support.service_tree(tmp_path, {"b": SLEEP_RUN})
    found = wait_supervisors(svscan, ["a", "b"], timeout=8)
    # a goes away: once its supervise has ended it is forgotten, not restarted.
    old_run = children(found["supervise a"])
    shutil.rmtree(tmp_path / "a")
    for pid in [found["supervise a"], *old_run]:
        os.kill(pid, signal.SIGKILL)
    wait_supervisors(svscan, ["b"], timeout=3)
    time.sleep(6)
    assert set(supervisors(svscan)) == {"supervise b"}
    # A new directory of the same name is a new service.
    support.service_tree(tmp_path, {"a": SLEEP_RUN})
    wait_supervisors(svscan, ["a", "b"], timeout=8)


def test_dead_supervise_is_reaped_at_once_and_restarted_at_the_next_scan(tmp_path):
    support.service_tree(tmp_path, {"a": PID_RUN, "b": SLEEP_RUN})
    svscan = start_svscan("ours", tmp_path)
    found = wait_supervisors(svscan, ["a", "b"])
    old = found["supervise a"]
    run = wait_pid_file(tmp_path / "a" / "pid")
    os.kill(old, signal.SIGKILL)
    # Reaped as it dies: no zombie child of svscan lingers until the next scan.
    support.wait_for(lambda: old not in children(svscan.pid), timeout=2, what="reaped")
    os.kill(run, signal.SIGKILL)  # the orphaned run would otherwise run twice
    new = wait_supervisors(svscan, ["a", "b"], timeout=8)
    assert new["supervise a"] != old
    assert new["supervise b"] == found["supervise b"]
    assert not [p for p in children(svscan.pid) if state(p) == "Z"]


def test_never_starts_a_second_supervise_while_one_is_alive(tmp_path):
    support.service_tree(tmp_path, {"a": SLEEP_RUN})
    svscan = start_svscan("ours", tmp_path)
    found = wait_supervisors(svscan, ["a"])
    time.sleep(6)  # one more scan
    assert supervisors(svscan) == found
    # A second supervise would have complained about the lock.
    assert svscan.err.read_available(0.2) == []


@pytest.mark.parametrize("which", ["ours", "C"])
def test_children_get_only_0_1_2_and_their_pipe_end(tmp_path, which):
    support.service_tree(tmp_path, {"x": PID_RUN, "y": PID_RUN, "z": PID_RUN},
                         logs={"x": PID_RUN, "y": PID_RUN})
    svscan = start_svscan(which, tmp_path)
    wait_supervisors(svscan, ["x", "y", "z", "log"] )
    fds = {name: fd_targets(wait_pid_file(tmp_path / name / "pid"))
           for name in ("x", "x/log", "y", "y/log", "z")}
    for name, table in fds.items():
        assert sorted(table) == [0, 1, 2], (name, table)
    assert fds["x"][1].startswith("pipe:") and fds["x"][1] == fds["x/log"][0]
    assert fds["y"][1].startswith("pipe:") and fds["y"][1] == fds["y/log"][0]
    assert fds["x"][1] != fds["y"][1]
    assert fds["z"][1] == fds["x/log"][1] == fd_targets(svscan.pid)[1]
    assert fds["x"][0] == fds["z"][0]


@pytest.mark.parametrize("which", ["ours", "C"])
def test_sigterm_ends_svscan_and_leaves_supervise_running(tmp_path, which):
    support.service_tree(tmp_path, {"a": SLEEP_RUN})
    svscan = start_svscan(which, tmp_path)
    found = wait_supervisors(svscan, ["a"])
    svscan.send_signal(signal.SIGTERM)
    assert svscan.wait() == -signal.SIGTERM
    assert state(found["supervise a"]) not in ("Z", "gone")


def test_two_hundred_services(tmp_path):
    names = [f"s{i:03d}" for i in range(200)]
    support.service_tree(tmp_path, {n: SLEEP_RUN for n in names},
                         logs={n: SLEEP_RUN for n in names[:20]})
    for name in names:
        (tmp_path / name / "down").write_text("")
        if name in names[:20]:
            (tmp_path / name / "log" / "down").write_text("")
    svscan = start_svscan("ours", tmp_path)
    support.wait_for(lambda: len(supervisors(svscan)) == 200 + 1, timeout=60,
                     what="220 supervise processes")  # titles: 200 names + `supervise log`
    assert len([p for p in children(svscan.pid) if state(p) not in ("Z", "gone")]) == 220
    support.wait_for(lambda: all((tmp_path / n / "supervise" / "ok").exists() for n in names),
                     timeout=30, what="every supervise/ok")
    # svscan itself holds 0, 1, 2 and the two ends of each of the 20 log pipes.
    assert len(fd_targets(svscan.pid)) == 3 + 40


@pytest.mark.parametrize("which", ["ours", "C"])
def test_more_than_1000_directories_get_the_c_warning(tmp_path, which):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "supervise").symlink_to("/bin/true")
    base = tmp_path / "services"
    base.mkdir()
    for i in range(1003):
        (base / f"s{i}").mkdir()
    svscan = start_svscan(which, base, env=support.suite_env(PATH=str(fake)))
    warnings = [svscan.err.wait_line("svscan: warning", timeout=30) for _ in range(3)]
    names = sorted(os.listdir(base))
    assert len(warnings) == 3
    for line in warnings:
        name = line.split("unable to start ", 1)[1].split(":")[0]
        assert name in names
        assert line == f"svscan: warning: unable to start {name}: running too many services"
    assert svscan.err.read_available(1.0) == []


@pytest.mark.parametrize("which", ["ours", "C"])
def test_unreadable_entries_and_missing_supervise_are_warnings(tmp_path, which):
    support.service_tree(tmp_path, {"x": SLEEP_RUN, "y": SLEEP_RUN}, logs={"y": SLEEP_RUN})
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "log").symlink_to(tmp_path / "z" / "log")  # a loop: z is not started
    svscan = start_svscan(which, tmp_path, env=support.suite_env(PATH=str(tmp_path / "nobin")))
    got = sorted(svscan.err.wait_line("svscan:", timeout=10) for _ in range(5))
    assert got == sorted([
        "svscan: warning: unable to stat dangling: file does not exist",
        "svscan: warning: unable to stat z/log: symbolic link loop",
        "svscan: warning: unable to start supervise x: file does not exist",
        "svscan: warning: unable to start supervise y: file does not exist",
        "svscan: warning: unable to start supervise y/log: file does not exist",
    ])
    assert svscan.err.read_available(1.0) == []  # nothing more until the next scan
    assert svscan.alive()


def test_chdir_failure_is_fatal_as_in_c(tmp_path):
    results = [support.run([path, tmp_path / "missing"], timeout=10)
               for path in (support.prog("svscan"), support.c_tool("svscan"))]
    assert results[0].returncode == results[1].returncode == 111
    assert results[0].stderr == results[1].stderr == (
        f"svscan: fatal: unable to chdir to {tmp_path / 'missing'}: file does not exist\n".encode())
    assert results[0].stdout == results[1].stdout == b""


def test_without_argument_scans_the_current_directory(tmp_path):
    support.service_tree(tmp_path, {"here": SLEEP_RUN})
    svscan = support.Proc([support.prog("svscan")], cwd=tmp_path)
    wait_supervisors(svscan, ["here"])
    assert cwd(svscan.pid) == str(tmp_path)


@pytest.mark.parametrize("warm", ["1", "0"])
def test_supervise_is_forked_warm_or_execd_when_warm_start_is_off(tmp_path, warm):
    support.service_tree(tmp_path, {"a": PID_RUN})
    svscan = start_svscan("ours", tmp_path, env=support.suite_env(UCSPI_WARMSTART=warm))
    run = wait_pid_file(tmp_path / "a" / "pid")
    (pid,) = children(svscan.pid)
    assert children(pid) == [run]
    assert title(pid) == "supervise a" and cwd(pid) == str(tmp_path / "a")

    def auxv(p):
        with open(f"/proc/{p}/auxv", "rb") as f:
            return f.read()
    # A forked child keeps its parent's exec-time auxiliary vector; an exec'd one has its own.
    assert (auxv(pid) == auxv(svscan.pid)) == (warm == "1")
