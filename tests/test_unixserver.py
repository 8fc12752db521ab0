"""unixserver/unixclient: peer credentials in the environment, socket mode/owner, limits."""

import json
import os
import shutil
import signal
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from tests import support

ENV_DUMP = ["/bin/sh", "-c", "env | grep -E '^(PROTO|UNIX)' | sort"]


def start(tmp_path, args, program, env=None, user=None):
    path = tmp_path / "s.sock"
    argv = [support.prog("unixserver"), *args, str(path), *program]
    proc = support.Proc(support.as_user(argv, user) if user else argv, env=env)
    support.wait_for(lambda: proc.pid in listeners_of(path), what="socket listening")
    return proc, path


def listeners_of(path) -> set[int]:
    """PIDs whose server socket is bound at path (from /proc/net/unix and /proc/PID/fd)."""
    inodes = set()
    with open("/proc/net/unix") as f:
        for line in f:
            fields = line.split()
            # Flags 00010000 is __SO_ACCEPTCON: listen() has been called, not just bind()
            if len(fields) >= 8 and fields[-1] == str(path) and int(fields[3], 16) & 0x10000:
                inodes.add(fields[6])
    pids = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    pids.add(int(pid))
        except OSError:
            pass
    return pids


def talk(path, data=b""):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        if data:
            s.sendall(data)
        s.shutdown(1)
        return support.recv_all(s)


def test_peer_credentials_come_from_the_kernel(tmp_path):
    proc, path = start(tmp_path, [], ENV_DUMP, env=support.suite_env(UNIXREMOTEEUID="forged"))
    env = dict(l.split("=", 1) for l in talk(path).decode().splitlines())
    assert env["PROTO"] == "UNIX"
    assert env["UNIXLOCALPATH"] == str(path)
    assert env["UNIXREMOTEEUID"] == str(os.geteuid())
    assert env["UNIXREMOTEEGID"] == str(os.getegid())
    assert env["UNIXREMOTEPID"] == str(os.getpid())
    assert env["UNIXLOCALPID"] == str(proc.pid)


@pytest.mark.skipif(os.getuid() != 0, reason="connecting as another user needs root")
def test_uid_of_an_unprivileged_client_is_reported():
    user = support.unprivileged_user()
    shared = Path(tempfile.mkdtemp(prefix="unixserver-"))  # reachable by the ordinary user
    shared.chmod(0o755)
    proc, path = start(shared, ["-p", "0666"], ENV_DUMP)
    r = support.run(support.as_user([support.prog("unixclient"), str(path), "/bin/sh", "-c",
                                     "cat <&6"], user))
    env = dict(l.split("=", 1) for l in r.stdout.decode().splitlines())
    assert env["UNIXREMOTEEUID"] == str(user.pw_uid)
    assert env["UNIXREMOTEEGID"] == str(user.pw_gid)
    proc.stop()
    shutil.rmtree(shared)


def test_socket_mode_follows_p_and_m(tmp_path):
    proc, path = start(tmp_path, ["-p", "0600"], ["true"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    proc.stop()
    proc, path = start(tmp_path, ["-m", "027"], ["true"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert stat.S_ISSOCK(os.stat(path).st_mode)


@pytest.mark.skipif(os.getuid() != 0, reason="chown needs root")
def test_socket_owner_and_group_follow_o_and_r(tmp_path):
    user = support.unprivileged_user()
    proc, path = start(tmp_path, ["-o", str(user.pw_uid), "-r", str(user.pw_gid)], ["true"])
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid)


def test_sigterm_removes_the_socket_unless_d(tmp_path):
    proc, path = start(tmp_path, [], ["true"])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0
    assert not path.exists()
    proc, path = start(tmp_path, ["-d"], ["true"])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0
    assert path.exists()


def test_stale_socket_is_replaced_but_a_regular_file_is_not(tmp_path):
    proc, path = start(tmp_path, ["-d"], ["true"])
    proc.stop()
    proc, path = start(tmp_path, [], ["/bin/echo", "again"])
    assert talk(path) == b"again\n"
    proc.stop()
    path.write_text("precious")
    r = support.run([support.prog("unixserver"), str(path), "true"])
    assert r.returncode == 111
    assert r.stderr.startswith(b"unixserver: fatal: unable to bind to ")
    assert path.read_text() == "precious"


def test_warm_child_holds_only_0_1_2(tmp_path):
    proc, path = start(tmp_path, [], [support.prog("ucspi-probe")])
    report = json.loads(talk(path))
    assert report["warm"] is True and report["fds"] == [0, 1, 2]


def test_verbose_lines_and_limit(tmp_path):
    proc, path = start(tmp_path, ["-v", "-c", "1"], ["/bin/sh", "-c", "exit 2"])
    assert proc.err.wait_line("status") == "unixserver: status: 0/1"
    talk(path)
    pid = int(proc.err.wait_line(" pid ").split()[2])
    assert proc.err.wait_line(" ok ") == f"unixserver: ok {pid} {path} {os.geteuid()}:{os.getegid()}:{os.getpid()}"
    assert proc.err.wait_line(" end ") == f"unixserver: end {pid} status 512"


def test_banner(tmp_path):
    proc, path = start(tmp_path, ["-B", "hi\n"], ["/bin/echo", "prog"])
    assert talk(path) == b"hi\nprog\n"


def test_unixclient_gets_6_and_7_and_server_credentials(tmp_path):
    proc, path = start(tmp_path, [], ["/bin/sh", "-c", "read x; echo \"got $x\""])
    r = support.run([support.prog("unixclient"), str(path), "/bin/sh", "-c",
                     'echo hello >&7; cat <&6; echo "$PROTO $UNIXREMOTEPATH $UNIXREMOTEEUID"'])
    assert r.returncode == 0
    assert r.stdout.decode().splitlines() == ["got hello", f"UNIX {path} {os.geteuid()}"]


def test_unixclient_cannot_connect_is_111(tmp_path):
    r = support.run([support.prog("unixclient"), str(tmp_path / "none"), "true"])
    assert r.returncode == 111
    assert r.stderr == f"unixclient: fatal: unable to connect to {tmp_path / 'none'}: file does not exist\n".encode()


@pytest.mark.parametrize("prog,args", [("unixserver", []), ("unixserver", ["-c", "0", "s", "true"]),
                                       ("unixclient", []), ("unixclient", ["-Z"])])
def test_usage_exits_100(prog, args):
    r = support.run([support.prog(prog), *args])
    assert r.returncode == 100
    assert b": usage: " in r.stderr


@pytest.mark.skipif(os.getuid() != 0, reason="switching uid/gid needs root")
def test_u_and_g_drop_privileges_after_creating_the_socket(tmp_path):
    user = support.unprivileged_user()
    proc, path = start(tmp_path, ["-u", str(user.pw_uid), "-g", str(user.pw_gid)],
                       ["/bin/sh", "-c", "id -u; id -g; id -G"])
    assert talk(path).decode().split() == [str(user.pw_uid), str(user.pw_gid), str(user.pw_gid)]
    assert os.stat(path).st_uid == 0  # created before the switch


def test_concurrency_limit_defers_acceptance(tmp_path):
    proc, path = start(tmp_path, ["-c", "1"], ["/bin/sh", "-c", "echo go; read x; echo done"])
    first = socket.socket(socket.AF_UNIX)
    first.settimeout(10)
    first.connect(str(path))
    assert first.recv(10) == b"go\n"
    second = socket.socket(socket.AF_UNIX)
    second.connect(str(path))
    second.settimeout(0.5)
    with pytest.raises(socket.timeout):
        second.recv(10)
    first.sendall(b"x\n")
    assert support.recv_all(first) == b"done\n"
    second.settimeout(10)
    assert second.recv(10) == b"go\n"
    first.close()
    second.close()
