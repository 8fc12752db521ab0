"""tcpserver: options, environment, rules, limits, logs; compared with ucspi-tcp 0.88's."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from tests import support
from tests.ucspi_servers import exchange, start_tcpserver

USAGE = ("tcpserver: usage: tcpserver [ -1UXpPhHrRoOdDqQv ] [ -c limit ] [ -x rules.cdb ] "
         "[ -B banner ] [ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] "
         "host port program\n")
ENV_DUMP = ["/bin/sh", "-c", "env | grep -E '^(PROTO|TCP)' | sort"]


def both():
    """Our tcpserver and, when installed, C's."""
    return [support.prog("tcpserver")] + ([support.c_tool("tcpserver")] if support.have_c_tool("tcpserver") else [])


def env_of(port, host="127.0.0.1") -> dict:
    out = exchange(port, host=host).decode()
    return dict(line.split("=", 1) for line in out.splitlines())


@pytest.mark.parametrize("args,message", [
    ([], ""),
    (["-Z", "0", "0", "true"], "tcpserver: illegal option -- Z\n"),
    (["-x"], "tcpserver: option requires an argument -- x\n"),
    (["127.0.0.1", "0"], ""),
])
def test_bad_usage_prints_cs_usage_line_and_exits_100(args, message):
    result = support.run([support.prog("tcpserver"), *args])
    assert result.returncode == 100
    assert result.stderr.decode() == message + USAGE


def test_usage_matches_c_byte_for_byte():
    c = support.run([support.c_tool("tcpserver"), "-Z"])
    ours = support.run([support.prog("tcpserver"), "-Z"])
    assert (ours.returncode, ours.stderr) == (c.returncode, c.stderr)


def test_port_in_use_is_fatal_111_with_cs_message():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        results = [support.run([b, "-RHl0", "127.0.0.1", str(port), "true"]) for b in both()]
    for r in results:
        assert r.returncode == 111
        assert r.stderr == b"tcpserver: fatal: unable to bind: address already used\n"


def test_unknown_service_name_is_fatal_as_in_c():
    for b in both():
        r = support.run([b, "-RHl0", "127.0.0.1", "no-such-service", "true"])
        assert (r.returncode, r.stderr) == (111, b"tcpserver: fatal: unable to figure out port number for no-such-service\n")


def test_service_name_from_etc_services_is_accepted():
    # Binding 'echo' (7) needs root; as an ordinary user the bind itself fails, not the name.
    r = support.run([support.prog("tcpserver"), "-q", "-RHl0", "127.0.0.1", "echo", "true"], timeout=5) \
        if os.getuid() != 0 else None
    if r is not None:
        assert r.returncode == 111
    else:
        proc = support.Proc([support.prog("tcpserver"), "-RHl0", "127.0.0.1", "echo", "/bin/echo", "hi"])
        support.wait_port(7)
        assert exchange(7) == b"hi\n"
        proc.stop()


def test_dash_1_prints_the_chosen_port_and_closes_stdout():
    proc = support.Proc([support.prog("tcpserver"), "-1", "-RHl0", "127.0.0.1", "0", "true"])
    port = int(proc.out.wait_line(lambda l: l.isdigit()))
    assert 0 < port < 65536
    support.wait_for(lambda: (proc.out.read_available(0.1), proc.out.eof)[1], what="stdout closed")


def test_environment_is_tcp_environ(tmp_path):
    proc, port = start_tcpserver(["-RHl", "local.name"], ENV_DUMP)
    with support.connect(port) as s:
        myport = s.getsockname()[1]
        s.shutdown(1)
        env = dict(l.split("=", 1) for l in support.recv_all(s).decode().splitlines())
    assert env == {"PROTO": "TCP", "TCPLOCALIP": "127.0.0.1", "TCPLOCALPORT": str(port),
                   "TCPLOCALHOST": "local.name", "TCPREMOTEIP": "127.0.0.1",
                   "TCPREMOTEPORT": str(myport)}


def test_stale_tcp_variables_are_removed_as_c_does():
    env = support.suite_env(TCPREMOTEHOST="stale", TCPREMOTEINFO="stale", TCPLOCALHOST="stale")
    for b in both():
        proc, port = start_tcpserver(["-RH"] + (["-l", "0"]), ENV_DUMP, env=env, binary=b)
        got = env_of(port)
        assert "TCPREMOTEHOST" not in got and "TCPREMOTEINFO" not in got
        assert got["TCPLOCALHOST"] == "0"
        proc.stop()


def test_environment_matches_c_tcpserver():
    dumps = []
    for b in both():
        proc, port = start_tcpserver(["-RHl", "x.y"], ENV_DUMP, binary=b)
        got = env_of(port)
        got.pop("TCPLOCALPORT")
        got.pop("TCPREMOTEPORT")
        dumps.append(got)
        proc.stop()
    assert len(dumps) == 2 and dumps[0] == dumps[1]


def test_banner_is_written_before_the_program_runs():
    proc, port = start_tcpserver(["-RHl0", "-B", "220 hello\r\n"], ["/bin/echo", "prog"])
    assert exchange(port) == b"220 hello\r\nprog\n"


def test_dash_D_sets_tcp_nodelay_and_default_leaves_it_off():
    check = [support.PYTHON, "-c", "import socket; s = socket.socket(fileno=0); "
             "print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0); s.detach()"]
    proc, port = start_tcpserver(["-RHl0", "-D"], check)
    assert exchange(port) == b"True\n"
    proc.stop()
    proc, port = start_tcpserver(["-RHl0"], check)
    assert exchange(port) == b"False\n"


def _masked(lines):
    out = []
    for line in lines:
        line = re.sub(r"\b(pid|ok|deny|end) \d+", r"\1 PID", line)
        line = re.sub(r":\d+( |$)", r":PORT\1", line)
        out.append(line)
    return out


def verbose_scenario(binary, tmp_path):
    """-v log of: a program exiting 3, a program killed by signal 9, then SIGTERM."""
    proc, port = start_tcpserver(["-v", "-RHl", "host:with%odd chars", "-c", "3"],
                                 ["/bin/sh", "-c", 'read x; [ "$x" = kill ] && kill -9 $$; exit 3'],
                                 binary=binary)
    exchange(port, b"plain\n")
    proc.err.wait_line(" end ")
    exchange(port, b"kill\n")
    proc.err.wait_line(" end ")
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0
    proc.err.read_available(0.3)
    return proc.err.history


def test_verbose_log_lines_equal_cs_after_masking(tmp_path):
    c_tool = support.c_tool("tcpserver")
    ours = verbose_scenario(support.prog("tcpserver"), tmp_path)
    theirs = verbose_scenario(c_tool, tmp_path)
    assert len(ours) == 11
    assert _masked(ours) == _masked(theirs)


def test_verbose_log_shape():
    proc, port = start_tcpserver(["-v", "-RHl", "loc", "-c", "7"], ["/bin/sh", "-c", "exit 3"])
    assert proc.err.wait_line("status:") == "tcpserver: status: 0/7"
    with support.connect(port) as s:
        myport = s.getsockname()[1]
        s.shutdown(1)
        support.recv_all(s)
    assert proc.err.wait_line("status:") == "tcpserver: status: 1/7"
    pid_line = proc.err.wait_line(" pid ")
    pid = int(pid_line.split()[2])
    assert pid_line == f"tcpserver: pid {pid} from 127.0.0.1"
    assert proc.err.wait_line(" ok ") == f"tcpserver: ok {pid} loc:127.0.0.1:{port} :127.0.0.1::{myport}"
    assert proc.err.wait_line(" end ") == f"tcpserver: end {pid} status 768"
    assert proc.err.wait_line("status:") == "tcpserver: status: 0/7"


def test_log_fields_are_sanitised_and_cut_at_100_chars_as_c_does():
    name = "a" * 120
    lines = []
    for b in both():
        proc, port = start_tcpserver(["-v", "-RHl", name], ["true"], binary=b)
        exchange(port)
        lines.append(_masked([proc.err.wait_line(" ok ")]))
        proc.stop()
    assert lines[0] == [f"tcpserver: ok PID {'a' * 100}...:127.0.0.1:PORT :127.0.0.1::PORT"]
    assert len(set(map(tuple, lines))) == 1


def test_quiet_prints_nothing_even_when_fatal():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = support.run([support.prog("tcpserver"), "-q", "127.0.0.1", str(s.getsockname()[1]), "true"])
    assert (r.returncode, r.stderr) == (111, b"")


def test_concurrency_limit_defers_acceptance():
    proc, port = start_tcpserver(["-v", "-RHl0", "-c", "2"], ["/bin/sh", "-c", "echo go; read x; echo done"])
    first, second = support.connect(port), support.connect(port)
    assert first.recv(10) == b"go\n" and second.recv(10) == b"go\n"
    third = support.connect(port)
    third.settimeout(0.5)
    with pytest.raises(socket.timeout):
        third.recv(10)
    first.sendall(b"x\n")
    assert support.recv_all(first) == b"done\n"
    third.settimeout(5)
    assert third.recv(10) == b"go\n"
    for s in (first, second, third):
        s.close()
    assert "status: 2/2" in "\n".join(proc.err.read_available(0.3) + proc.err.lines)


def test_sigterm_exits_0_and_leaves_children_running():
    proc, port = start_tcpserver(["-RHl0"], ["/bin/sh", "-c", "echo up; read x; echo still here"])
    s = support.connect(port)
    assert s.recv(10) == b"up\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0
    with pytest.raises(OSError):
        support.connect(port, timeout=1).close()
    s.sendall(b"x\n")
    assert support.recv_all(s) == b"still here\n"
    s.close()


def test_unrunnable_program_drops_connection_with_cs_message():
    lines = []
    for b in both():
        proc, port = start_tcpserver(["-v", "-RHl0"], ["/nonexistent/prog"], binary=b)
        assert exchange(port) == b""
        lines.append(proc.err.wait_line("dropping"))
        assert proc.err.wait_line(" end ").endswith("status 28416")
        proc.stop()
    assert lines[0] == "tcpserver: warning: dropping connection, unable to run /nonexistent/prog: file does not exist"
    assert len(set(lines)) == 1


def test_ipv6_listener_sets_ucspi_tcp6_environment():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    proc, port = start_tcpserver(["-RHl0"], ENV_DUMP, host="::1")
    env = env_of(port, host="::1")
    assert env["PROTO"] == "TCP6"
    assert env["TCP6REMOTEIP"] == env["TCPREMOTEIP"] == "::1"
    assert env["TCP6LOCALPORT"] == str(port)


def test_any_address_listener_accepts_ipv4_as_plain_tcp():
    proc, port = start_tcpserver(["-RHl0"], ENV_DUMP, host="::")
    env = env_of(port)
    assert env["PROTO"] == "TCP" and env["TCPREMOTEIP"] == "127.0.0.1"


def test_c_tcpclient_talks_to_our_tcpserver():
    client = support.c_tool("tcpclient")
    proc, port = start_tcpserver(["-RHl0"], ["/bin/sh", "-c", "read x; echo \"got $x from $TCPREMOTEIP\""])
    r = support.run([client, "-RHl0", "127.0.0.1", str(port), "/bin/sh", "-c", "echo hello >&7; cat <&6"])
    assert r.returncode == 0
    assert r.stdout == b"got hello from 127.0.0.1\n"


@pytest.mark.skipif(os.getuid() != 0, reason="switching uid/gid needs root")
def test_privileges_dropped_after_bind_before_accept():
    user = support.unprivileged_user()
    proc, port = start_tcpserver(["-RHl0", "-u", str(user.pw_uid), "-g", str(user.pw_gid)],
                                 ["/bin/sh", "-c", "id -u; id -g; id -G"])
    assert exchange(port).decode().split() == [str(user.pw_uid), str(user.pw_gid), str(user.pw_gid)]
    status = open(f"/proc/{proc.pid}/status").read()
    assert re.search(rf"^Uid:\s+{user.pw_uid}\s", status, re.M)


@pytest.mark.skipif(os.getuid() != 0, reason="switching uid/gid needs root")
def test_dash_U_takes_uid_and_gid_from_environment():
    user = support.unprivileged_user()
    env = support.suite_env(UID=user.pw_uid, GID=user.pw_gid)
    proc, port = start_tcpserver(["-U", "-RHl0"], ["/bin/sh", "-c", "id -u; id -g"], env=env)
    assert exchange(port).decode().split() == [str(user.pw_uid), str(user.pw_gid)]


# --- DNS: -h, -p, TCPLOCALHOST, host names (a DNS responder on loopback via $DNSCACHEIP) ---

PTR = ("1.0.0.127.in-addr.arpa", "PTR")


def dns_envs(zone):
    from tests.dns_server import DNSServer
    server = DNSServer(zone).start()
    return server, support.suite_env(DNSCACHEIP=server.ip)


@pytest.mark.parametrize("zone,args,expected", [
    ({PTR: ["Client.Example."]}, ["-h", "-P"], "client.example"),
    ({PTR: ["client.example."], ("client.example", "A"): ["127.0.0.1"]}, ["-p"], "client.example"),
    ({PTR: ["client.example."], ("client.example", "A"): ["10.9.9.9"]}, ["-p"], None),
    ({PTR: ["client.example."]}, ["-H"], None),
    ({}, ["-h"], None),
])
def test_remote_host_lookup_matches_c(zone, args, expected):
    server, env = dns_envs(zone)
    try:
        seen = []
        for b in both():
            proc, port = start_tcpserver(["-R", "-l0", *args], ENV_DUMP, env=env, binary=b)
            seen.append(env_of(port).get("TCPREMOTEHOST"))
            proc.stop()
    finally:
        server.stop()
    assert seen[0] == expected
    assert len(set(seen)) == 1


def test_local_host_looked_up_without_dash_l():
    server, env = dns_envs({PTR: ["Me.Example."]})
    try:
        proc, port = start_tcpserver(["-RH"], ENV_DUMP, env=env)
        assert env_of(port)["TCPLOCALHOST"] == "me.example"
    finally:
        server.stop()


def test_host_name_argument_binds_its_first_address():
    server, env = dns_envs({("server.example", "A"): ["127.0.0.1"]})
    try:
        proc, port = start_tcpserver(["-RHl0"], ["/bin/echo", "ok"], env=env, host="server.example")
        assert exchange(port) == b"ok\n"
    finally:
        server.stop()


def test_host_name_without_address_is_fatal_as_in_c():
    server, env = dns_envs({})
    try:
        results = [support.run([b, "-RHl0", "nowhere.example", "0", "true"], env=env) for b in both()]
    finally:
        server.stop()
    assert results[0].returncode == 111
    assert results[0].stderr == b"tcpserver: fatal: no IP address for nowhere.example\n"
    assert len({(r.returncode, r.stderr) for r in results}) == 1


# --- rules (-x, -X): compiled by our tcprules, re-read for every connection ---

def compile_rules(tmp_path, text: str, name="rules.cdb"):
    cdb = tmp_path / name
    r = support.run([support.prog("tcprules"), str(cdb), str(cdb) + ".tmp"], input=text.encode())
    assert r.returncode == 0, r.stderr
    return cdb


def test_rules_allow_with_variables_and_deny(tmp_path):
    cdb = compile_rules(tmp_path, '127.0.0.1:allow,RELAYCLIENT="",GREETING=/hi there/\n:deny\n')
    proc, port = start_tcpserver(["-v", "-RHl0", "-x", str(cdb)],
                                 ["/bin/sh", "-c", 'echo "relay=${RELAYCLIENT-unset} greet=$GREETING"'])
    assert exchange(port) == b"relay= greet=hi there\n"
    cdb2 = compile_rules(tmp_path, "127.0.0.1:deny\n", "deny.cdb")
    proc2, port2 = start_tcpserver(["-v", "-RHl0", "-x", str(cdb2)], ["/bin/echo", "never"])
    assert exchange(port2) == b""
    assert proc2.err.wait_line(" deny ").startswith("tcpserver: deny ")
    assert proc2.err.wait_line(" end ").endswith(" status 25600")


def test_rerunning_tcprules_takes_effect_at_once(tmp_path):
    cdb = compile_rules(tmp_path, "127.:allow\n")
    proc, port = start_tcpserver(["-RHl0", "-x", str(cdb)], ["/bin/echo", "in"])
    assert exchange(port) == b"in\n"
    compile_rules(tmp_path, "127.:deny\n")
    assert exchange(port) == b""
    compile_rules(tmp_path, '127.0.0.1:allow,X="y"\n')
    assert exchange(port) == b"in\n"


def rules_log(binary, tmp_path, args, cdb_path):
    proc, port = start_tcpserver(["-v", "-RHl0", *args, "-x", str(cdb_path)], ["/bin/echo", "in"], binary=binary)
    out = exchange(port)
    line = proc.err.wait_line(lambda l: "dropping" in l or " ok " in l)
    end = proc.err.wait_line(" end ")
    proc.stop()
    return out, line, end.rsplit(" ", 1)[1]


def test_missing_rules_drop_the_connection_like_c_unless_dash_X(tmp_path):
    missing = tmp_path / "missing.cdb"
    results = [rules_log(b, tmp_path, [], missing) for b in both()]
    assert results[0] == (b"", f"tcpserver: warning: dropping connection, unable to read {missing}: "
                               "file does not exist", "28416")
    assert len(set(results)) == 1
    results = [rules_log(b, tmp_path, ["-X"], missing)[0] for b in both()]
    assert results[0] == b"in\n" and len(set(results)) == 1


def test_corrupt_rules_drop_the_connection_like_c(tmp_path):
    corrupt = tmp_path / "corrupt.cdb"
    corrupt.write_bytes(b"\xff" * 100)
    results = [rules_log(b, tmp_path, ["-X"], corrupt) for b in both()]
    assert results[0][0] == b"" and "dropping connection, unable to read" in results[0][1]
    assert results[0][1].endswith(": protocol error") and results[0][2] == "28416"
    assert len(set(results)) == 1


def test_rules_from_c_tcprules_work_in_our_tcpserver(tmp_path):
    c = support.c_tool("tcprules")
    cdb = tmp_path / "c.cdb"
    r = support.run([c, str(cdb), str(tmp_path / "c.tmp")], input=b'127.0.0.:allow,WHO="c"\n:deny\n')
    assert r.returncode == 0
    proc, port = start_tcpserver(["-RHl0", "-x", str(cdb)], ["/bin/sh", "-c", 'echo "$WHO"'])
    assert exchange(port) == b"c\n"


# --- RFC 1413 (-r, -t): a fake identd on 127.0.0.1:113 ---

def test_remote_info_from_identd_matches_c_and_selects_info_rules(tmp_path):
    from tests import identd
    identd.need_root()
    cdb = compile_rules(tmp_path, 'alice@127.0.0.1:allow,WHO="alice rule"\n:allow,WHO="default"\n')
    seen = []
    with identd.FakeIdentd(identd.good("alice")) as fake:
        for b in both():
            proc, port = start_tcpserver(["-Hl0", "-x", str(cdb)], ENV_DUMP + [], binary=b)
            dump = exchange(port).decode()
            seen.append(sorted(l for l in dump.splitlines() if "PORT" not in l))
            proc.stop()
        requests = list(fake.requests)
    assert "TCPREMOTEINFO=alice" in seen[0]
    assert len(requests) == len(seen)
    assert len({tuple(s) for s in seen}) == 1


def test_rules_variables_reach_program_via_info_rule(tmp_path):
    from tests import identd
    identd.need_root()
    cdb = compile_rules(tmp_path, 'alice@127.0.0.1:allow,WHO="alice rule"\n:allow,WHO="default"\n')
    with identd.FakeIdentd(identd.good("alice")):
        proc, port = start_tcpserver(["-Hl0", "-x", str(cdb)], ["/bin/sh", "-c", 'echo "$WHO"'])
        assert exchange(port) == b"alice rule\n"


def test_identd_timeout_leaves_remote_info_unset():
    from tests import identd
    identd.need_root()
    with identd.FakeIdentd(lambda request: identd.SLOW):
        proc, port = start_tcpserver(["-Hl0", "-t", "1"], ENV_DUMP)
        started = time.monotonic()
        env = env_of(port)
        assert "TCPREMOTEINFO" not in env
        assert 0.8 < time.monotonic() - started < 5


def listen_backlog(port: int) -> int:
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    return int(out.split()[2])


@pytest.mark.skipif(not os.path.exists("/usr/bin/ss") and not os.path.exists("/bin/ss"), reason="ss (iproute2) not installed")
def test_backlog_is_20_by_default_and_dash_b_sets_it_as_c_does():
    for b in both():
        for args, expected in (([], 20), (["-b", "7"], 7)):
            proc, port = start_tcpserver(["-RHl0", *args], ["true"], binary=b)
            assert listen_backlog(port) == expected
            proc.stop()


def test_host_0_listens_on_every_address():
    proc, port = start_tcpserver(["-RHl0"], ENV_DUMP, host="0")
    assert env_of(port, host="127.0.0.1")["TCPLOCALIP"] == "127.0.0.1"
    assert env_of(port, host="127.0.0.2")["TCPLOCALIP"] == "127.0.0.2"


def test_dash_o_and_dash_d_are_accepted():
    proc, port = start_tcpserver(["-RHl0", "-o", "-d"], ["/bin/echo", "ok"])
    assert exchange(port) == b"ok\n"
