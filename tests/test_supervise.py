"""supervise: state files, lock, ./run lifecycle, every control byte, ./finish."""

import os
import signal
import stat
import time

import pytest

from supervise import status_file
from tests import support

# A service that logs its start and every catchable signal it gets into ./events.
EVENTS_RUN = """#!/bin/sh
echo "start $$" >> events
for s in HUP ALRM INT TERM CONT USR1; do trap "echo $s >> events" $s; done
trap 'echo TERM >> events; exit 0' TERM
while :; do sleep 1 & wait $!; done
"""


def make_service(base, run=EVENTS_RUN, name="svc", down=False, finish=None):
    service = base / name
    service.mkdir()
    (service / "run").write_text(run)
    (service / "run").chmod(0o755)
    if down:
        (service / "down").write_text("")
    if finish is not None:
        (service / "finish").write_text(finish)
        (service / "finish").chmod(0o755)
    return service


def running(service):
    """Whether a supervise reads service/supervise/ok (what svok checks)."""
    try:
        os.close(os.open(service / "supervise" / "ok", os.O_WRONLY | os.O_NONBLOCK))
        return True
    except OSError:
        return False


def start_supervise(service, **env):
    proc = support.Proc([support.prog("supervise"), service], cwd=service.parent,
                        env=support.suite_env(**env))
    support.wait_for(lambda: running(service), what="supervise running")
    return proc


def status(service):
    return status_file.read(str(service / "supervise" / "status"))


def wait_up(service, other_than=0, timeout=10):
    def up():
        record = status(service)
        return record if record.pid and record.pid != other_than else None
    return support.wait_for(up, timeout, what="service up")


def wait_down(service, timeout=10):
    return support.wait_for(lambda: (lambda r: r if not r.pid else None)(status(service)),
                            timeout, what="service down")


def events(service):
    try:
        return (service / "events").read_text().split("\n")[:-1]
    except FileNotFoundError:
        return []


def control(service, data: bytes):
    fd = os.open(service / "supervise" / "control", os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def proc_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_usage_without_exactly_one_directory():
    for argv in ([], ["a", "b"]):
        done = support.run([support.prog("supervise"), *argv])
        assert done.returncode == 100
        assert done.stderr == b"supervise: usage: supervise dir\n"


def test_missing_directory_is_fatal_111(tmp_path):
    done = support.run([support.prog("supervise"), tmp_path / "nope"])
    assert done.returncode == 111
    assert done.stderr == f"supervise: fatal: unable to chdir to {tmp_path}/nope: file does not exist\n".encode()


def test_creates_state_directory_fifos_and_status_with_c_modes(tmp_path):
    service = make_service(tmp_path, down=True)
    start_supervise(service)
    sup = service / "supervise"
    assert stat.S_IMODE(sup.stat().st_mode) == 0o700
    for fifo in ("control", "ok"):
        mode = (sup / fifo).stat().st_mode
        assert stat.S_ISFIFO(mode) and stat.S_IMODE(mode) == 0o600
    assert stat.S_ISREG((sup / "lock").stat().st_mode) and stat.S_IMODE((sup / "lock").stat().st_mode) == 0o600
    assert (sup / "status").stat().st_size == 18
    # status.new exists only while a status is being written
    support.wait_for(lambda: sorted(os.listdir(sup)) == ["control", "lock", "ok", "status"], timeout=3,
                     what="exactly the four state files")


def test_second_supervise_is_refused_by_the_lock(tmp_path):
    service = make_service(tmp_path, down=True)
    first = start_supervise(service)
    done = support.run([support.prog("supervise"), "svc"], cwd=tmp_path)
    assert done.returncode == 111
    assert done.stderr == b"supervise: fatal: unable to acquire svc/supervise/lock: temporary failure\n"
    assert first.alive()


def test_down_file_keeps_the_service_down_until_u(tmp_path):
    service = make_service(tmp_path, down=True)
    start_supervise(service)
    time.sleep(0.5)
    record = status(service)
    assert record.pid == 0 and record.want == "d"
    assert events(service) == []
    control(service, b"u")
    record = wait_up(service)
    assert record.want == "u"
    support.wait_for(lambda: events(service), what="./run to start")


def test_run_is_restarted_after_kill_9(tmp_path):
    service = make_service(tmp_path)
    start_supervise(service)
    first = wait_up(service).pid
    time.sleep(1.1)  # past supervise's one-second pause after a start
    os.kill(first, signal.SIGKILL)
    t0 = time.monotonic()
    second = wait_up(service, other_than=first, timeout=5).pid
    assert time.monotonic() - t0 < 2.5
    assert second != first


def test_a_crashing_run_starts_at_most_once_a_second(tmp_path):
    service = make_service(tmp_path, run="#!/bin/sh\necho x >> events\nexit 1\n")
    start_supervise(service)
    time.sleep(3.3)
    starts = len(events(service))
    assert 3 <= starts <= 5


def test_no_start_is_lost_over_many_restarts(tmp_path):
    service = make_service(tmp_path, run="#!/bin/sh\necho \"start $$\" >> events\nexit 0\n")
    start_supervise(service)
    support.wait_for(lambda: len(events(service)) >= 3, timeout=8, what="three starts")
    pids = [line.split()[1] for line in events(service)]
    assert len(set(pids)) == len(pids)


def test_control_bytes_send_the_documented_signals(tmp_path):
    service = make_service(tmp_path)
    start_supervise(service)
    pid = wait_up(service).pid
    support.wait_for(lambda: events(service), what="start line")
    time.sleep(1.1)
    for byte, name in ((b"h", "HUP"), (b"a", "ALRM"), (b"i", "INT")):
        control(service, byte)
        if name == "INT" and support.inherited_ignored(signal.SIGINT):
            # ./run found SIGINT ignored, as exec leaves it when supervise was started so:
            # the shell cannot trap it and goes on (test_i_sends_sigint_whatever_supervise_
            # inherited has a Python ./run catch it)
            time.sleep(0.3)
            assert "INT" not in events(service) and status(service).pid == pid
            continue
        support.wait_for(lambda: name in events(service), what=f"{name} delivered")
    control(service, b"p")
    support.wait_for(lambda: proc_state(pid) == "T", what="service stopped")
    assert status(service).paused == 1
    control(service, b"c")
    support.wait_for(lambda: proc_state(pid) != "T" and "CONT" in events(service), what="service continued")
    assert status(service).paused == 0
    control(service, b"t")
    support.wait_for(lambda: "TERM" in events(service), what="TERM delivered")
    pid2 = wait_up(service, other_than=pid).pid  # want up: restarted after exit
    time.sleep(1.1)
    control(service, b"k")
    pid3 = wait_up(service, other_than=pid2).pid
    assert pid3 not in (pid, pid2)
    control(service, b"?Z\n")  # unknown bytes are ignored
    time.sleep(0.3)
    assert status(service).pid == pid3


def test_i_sends_sigint_whatever_supervise_inherited(tmp_path):
    """A ./run that catches SIGINT itself (a program may, even where it started ignored)
    gets it from svc -i, whether or not this run inherited SIGINT ignored."""
    run = (f"#!{support.PYTHON}\n"
           "import os, signal, time\n"
           "signal.signal(signal.SIGINT, lambda *_: open('events', 'a').write('INT\\n'))\n"
           "open('events', 'a').write(f'start {os.getpid()}\\n')\n"
           "while True:\n    time.sleep(1)\n")
    service = make_service(tmp_path, run=run)
    start_supervise(service)
    wait_up(service)
    support.wait_for(lambda: events(service), what="start line")
    control(service, b"i")
    support.wait_for(lambda: "INT" in events(service), what="INT delivered")


def test_d_sends_term_then_cont_and_o_runs_once(tmp_path):
    service = make_service(tmp_path)
    start_supervise(service)
    pid = wait_up(service).pid
    time.sleep(1.1)
    control(service, b"p")
    support.wait_for(lambda: proc_state(pid) == "T", what="paused")
    control(service, b"d")  # TERM reaches a stopped process only because CONT follows
    record = wait_down(service)
    assert record.want == "d" and record.paused == 0
    assert "TERM" in events(service)
    control(service, b"o")
    record = wait_up(service)
    assert record.want == ""
    time.sleep(1.1)
    os.kill(record.pid, signal.SIGKILL)
    wait_down(service)
    time.sleep(1.5)
    assert status(service).pid == 0  # once: not restarted


def test_x_exits_only_once_the_service_is_down(tmp_path):
    service = make_service(tmp_path)
    sup = start_supervise(service)
    wait_up(service)
    time.sleep(1.1)
    control(service, b"x")
    time.sleep(0.5)
    assert sup.alive()
    control(service, b"d")
    assert sup.wait(5) == 0
    assert status(service).pid == 0
    done = support.run([support.prog("svok"), service])
    assert done.returncode == 100


def test_run_gets_only_descriptors_0_1_2_and_default_signals(tmp_path):
    service = make_service(tmp_path, run="#!/bin/sh\nexec sleep 30\n")
    start_supervise(service)
    pid = wait_up(service).pid
    support.wait_for(lambda: os.readlink(f"/proc/{pid}/exe").endswith("sleep"), what="exec of sleep")
    assert sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2]
    with open(f"/proc/{pid}/status") as f:
        sigs = dict(line.split(":", 1) for line in f if line.startswith(("SigIgn", "SigBlk")))
    assert int(sigs["SigBlk"], 16) == 0
    assert int(sigs["SigIgn"], 16) == support.inherited_ignored_signals()


def test_process_title_names_the_directory(tmp_path):
    service = make_service(tmp_path, down=True)
    sup = start_supervise(service)
    with open(f"/proc/{sup.pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"supervise " + bytes(service)


def test_finish_runs_with_exit_code_and_signal_before_restart(tmp_path):
    run = "#!/bin/sh\necho \"start $$\" >> events\nexit 3\n"
    finish = "#!/bin/sh\necho \"finish $1 $2\" >> events\nsleep 1.5\necho finished >> events\n"
    service = make_service(tmp_path, run=run, finish=finish)
    start_supervise(service)
    support.wait_for(lambda: events(service).count("finished") >= 1 and len(events(service)) >= 4,
                     timeout=10, what="run, finish, run")
    lines = events(service)
    assert lines[0].startswith("start ")
    assert lines[1:3] == ["finish 3 0", "finished"]
    assert lines[3].startswith("start ")


def test_finish_gets_minus_one_and_the_signal_when_run_is_killed(tmp_path):
    run = "#!/bin/sh\necho \"start $$\" >> events\nexec sleep 30\n"
    finish = "#!/bin/sh\necho \"finish $1 $2\" >> events\n"
    service = make_service(tmp_path, run=run, finish=finish)
    sup = start_supervise(service)
    wait_up(service)
    time.sleep(1.1)
    control(service, b"dx")
    assert sup.wait(5) == 0
    assert "finish -1 15" in events(service)


@pytest.mark.parametrize("warm", ["1", "0"])
def test_run_that_cannot_start_is_reported_as_c_does(tmp_path, warm):
    service = tmp_path / "svc"
    service.mkdir()
    sup = support.Proc([support.prog("supervise"), service], env=support.suite_env(UCSPI_WARMSTART=warm))
    line = sup.err.wait_line("unable to start")
    assert line == f"supervise: fatal: unable to start {service}/run: file does not exist"


def test_warm_started_supervise_behaves_as_a_cold_one(tmp_path):
    """svscan starts supervise through ucspi.runtime.launch; title, ./run's descriptors and
    control must be those of a cold start."""
    service = make_service(tmp_path, run="#!/bin/sh\nexec sleep 30\n", down=True)
    driver = "import sys; from ucspi.runtime import launch; launch.exec_program(['supervise', sys.argv[1]])"
    sup = support.Proc([support.PYTHON, "-c", driver, "svc"], cwd=tmp_path)
    support.wait_for(lambda: running(service), what="supervise running")
    with open(f"/proc/{sup.pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"supervise svc"
    state = str(service / "supervise")
    wanted = [f"{state}/control", f"{state}/control", f"{state}/lock", f"{state}/ok", "pipe", "pipe"]

    def own_fds():  # status.new may be open for a moment while the status is written
        try:
            targets = [os.readlink(f"/proc/{sup.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{sup.pid}/fd")
                       if int(fd) > 2]
        except FileNotFoundError:
            return None
        return sorted("pipe" if t.startswith("pipe:") else t for t in targets)
    # the self-pipe and state files only: nothing of the driver's leaked in
    support.wait_for(lambda: own_fds() == sorted(wanted), timeout=3, what=f"descriptors {wanted}")
    control(service, b"u")
    pid = wait_up(service).pid
    support.wait_for(lambda: os.readlink(f"/proc/{pid}/exe").endswith("sleep"), what="exec of sleep")
    assert sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2]
    time.sleep(1.1)
    control(service, b"dx")
    assert sup.wait(5) == 0


def test_start_asked_for_while_finish_runs_waits_for_finish(tmp_path):
    run = "#!/bin/sh\necho start >> events\nexit 0\n"
    finish = "#!/bin/sh\necho finish >> events\nsleep 1.5\necho finished >> events\n"
    service = make_service(tmp_path, run=run, finish=finish, down=True)
    start_supervise(service)
    control(service, b"o")
    support.wait_for(lambda: "finish" in events(service), what="finish running")
    control(service, b"u")
    support.wait_for(lambda: events(service)[:4] == ["start", "finish", "finished", "start"],
                     timeout=6, what="second start after finish")
    control(service, b"d")


def test_once_then_down_while_finish_runs_starts_nothing(tmp_path):
    run = "#!/bin/sh\necho start >> events\nexit 0\n"
    finish = "#!/bin/sh\necho finish >> events\nsleep 1\necho finished >> events\n"
    service = make_service(tmp_path, run=run, finish=finish, down=True)
    start_supervise(service)
    control(service, b"o")
    support.wait_for(lambda: "finish" in events(service), what="finish running")
    control(service, b"od")
    support.wait_for(lambda: "finished" in events(service), what="finish done")
    time.sleep(1.2)
    assert events(service) == ["start", "finish", "finished"]
    assert status(service).pid == 0
