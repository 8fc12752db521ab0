"""svscanboot: svscan started in the directory with only PATH, its messages in
readproctitle's title, descriptors of the pipeline, leftover supervise told to exit.

The Debian svscanboot is hard-wired to /etc/service (0.76's to /service), so these tests
use our optional directory argument on a temporary tree and compare with what the C
script does by reading it, not by running it."""

import os
import signal

from supervise import svscanboot
from tests import support
from tests.test_svscan import children, cwd, fd_targets, state, title, wait_pid_file

ENV_RUN = "#!/bin/sh\nenv > env.txt\necho $$ > pid\nexec sleep 1000\n"
DOTS = "." * 400


def raw_title(pid):
    """The command line with NUL separators as spaces, trailing padding removed."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


def boot(directory):
    proc = support.Proc([support.prog("svscanboot"), directory])

    def pipeline():
        found = {title(p).split(" ")[0]: p for p in children(proc.pid)
                 if state(p) not in ("Z", "gone")}
        return found if set(found) == {"svscan", "readproctitle"} else None
    return proc, support.wait_for(pipeline, what="svscan and readproctitle")


def test_path_is_the_c_path_with_our_programs_first():
    with open(support.c_tool("svscanboot")) as f:
        script = f.read()
    assert f"PATH={svscanboot.C_PATH}\n" in script
    assert f"readproctitle service errors: {DOTS}\n" in script
    assert svscanboot.suite_path() == f"{os.path.dirname(support.prog('svscan'))}:{svscanboot.C_PATH}"


def test_starts_svscan_in_the_directory_with_only_path(tmp_path):
    support.service_tree(tmp_path, {"a": ENV_RUN})
    proc, found = boot(tmp_path)
    assert title(found["svscan"]) == f"svscan {tmp_path}"
    # svscan's title is set before its chdir: wait for the chdir (bounded)
    support.wait_for(lambda: cwd(found["svscan"]) == str(tmp_path), what="svscan in the directory")
    assert title(found["readproctitle"]).startswith("readproctitle service errors: ...")
    wait_pid_file(tmp_path / "a" / "pid")
    env = dict(line.split("=", 1) for line in (tmp_path / "a" / "env.txt").read_text().splitlines())
    env.pop("PWD", None)  # the run script's shell adds it
    assert env == {"PATH": svscanboot.suite_path()}


def test_svscan_messages_show_in_the_readproctitle_title(tmp_path):
    support.service_tree(tmp_path, {"a": ENV_RUN})
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    proc, found = boot(tmp_path)
    message = "svscan: warning: unable to stat dangling: file does not exist\n"
    shown = support.wait_for(lambda: (lambda t: t if t.endswith(message) else None)(
        raw_title(found["readproctitle"])), what="the warning in the title")
    assert shown.startswith("readproctitle service errors: ...")
    assert len(shown) == len("readproctitle service errors: ") + len(DOTS)


def test_pipeline_descriptors(tmp_path):
    support.service_tree(tmp_path, {"a": ENV_RUN})
    proc, found = boot(tmp_path)
    scanner, keeper = fd_targets(found["svscan"]), fd_targets(found["readproctitle"])
    assert scanner[0] == "/dev/null"
    assert scanner[1] == scanner[2] == keeper[0] and keeper[0].startswith("pipe:")
    assert keeper[1] == keeper[2] == "/dev/null"
    assert sorted(keeper) == [0, 1, 2]
    assert fd_targets(proc.pid) == {0: "/dev/null", 1: "/dev/null", 2: "/dev/null"}


def test_leftover_supervise_is_told_to_exit_before_svscan_starts(tmp_path):
    support.service_tree(tmp_path, {"x": ENV_RUN})
    old = support.Proc([support.prog("supervise"), tmp_path / "x"])
    old_run = wait_pid_file(tmp_path / "x" / "pid")
    (tmp_path / "x" / "pid").unlink()
    proc, found = boot(tmp_path)
    assert old.wait() == 0  # svc -dx: service down, then supervise exits
    support.wait_for(lambda: state(old_run) in ("Z", "gone"), what="old run stopped")
    new_run = wait_pid_file(tmp_path / "x" / "pid")
    assert new_run != old_run
    (new_supervise,) = children(found["svscan"])
    assert title(new_supervise) == "supervise x"


def test_exit_status_is_the_pipeline_status(tmp_path):
    support.service_tree(tmp_path, {"a": ENV_RUN})
    proc, found = boot(tmp_path)
    os.kill(found["svscan"], signal.SIGTERM)
    os.kill(found["readproctitle"], signal.SIGTERM)
    assert proc.wait() == 128 + signal.SIGTERM
