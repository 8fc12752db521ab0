"""rblsmtpd: look-ups, decisions, the limited SMTP conversation, compared with the C tool.

Both rblsmtpd's run as plain children (stdin/stdout pipes, no tcpserver) and ask the same
in-process DNS responder through $DNSCACHEIP, so the C tool is the oracle for every byte
of the replies and of the log line (the pid aside).
"""

import json
import os
import re
import signal
import smtplib
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests import support
from tests.dns_server import DNSServer
from tests.ucspi_servers import start_tcpserver

IP = "1.2.3.4"
REV = "4.3.2.1"
ZONE = {
    (f"{REV}.rbl.test", "TXT"): ['"one" "two"', '"three"'],
    (f"{REV}.other.test", "TXT"): ['"listed elsewhere"'],
    (f"{REV}.empty.test", "TXT"): ['""'],
    (f"{REV}.long.test", "TXT"): ['"' + "x" * 250 + '" "' + "y" * 250 + '"'],
    (f"{REV}.ctl.test", "TXT"): [r'"a\010b\013c\255d\000e\001\127"'],
    (f"{REV}.anti.test", "A"): ["127.0.0.2"],
    ("rbl.test", "TXT"): ['"the bare base"'],
    ("::1.rbl.test", "TXT"): ['"v6 listed"'],
}
SMTPD = ["/bin/echo", "smtpd ran"]
RAN = b"smtpd ran\n"
GREETING = b"220 rblsmtpd.local\r\n"
USAGE = (b"rblsmtpd: usage: rblsmtpd [ -b ] [ -R ] [ -t timeout ] [ -r base ] [ -a base ] "
         b"smtpd [ arg ... ]\n")
SESSION = b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nQUIT\r\n"
PID = re.compile(rb" pid \d+: ")


@pytest.fixture
def dns_server():
    with DNSServer(ZONE) as server:
        yield server


def env_for(server, **extra) -> dict:
    base = {"TCPREMOTEIP": IP, "RBLSMTPD": None, "DNSCACHEIP": server.ip if server else "127.0.0.1"}
    base.update(extra)
    return support.suite_env(**base)


def rblsmtpd(binary, args, server=None, input=SESSION, timeout=40, **extra):
    """(exit code, stdout, stderr with the pid masked) of one run."""
    result = support.run([binary, *args], input=input, env=env_for(server, **extra), timeout=timeout)
    return result.returncode, result.stdout, PID.sub(b" pid N: ", result.stderr)


def both(args, server=None, input=SESSION, **extra):
    """Run the C tool and ours alike; assert they agree and return our result."""
    c = rblsmtpd(support.c_tool("rblsmtpd"), args, server, input, **extra)
    if server:
        c_queries = list(server.queries)
        server.queries.clear()
    ours = rblsmtpd(support.prog("rblsmtpd"), args, server, input, **extra)
    assert ours == c
    if server:
        assert server.queries == c_queries, "both ask the DNS the same questions"
    return ours


def blocked(code_text: bytes) -> bytes:
    """Replies to SESSION from a blocking rblsmtpd."""
    reject = code_text + b"\r\n"
    return (GREETING + b"250 rblsmtpd.local\r\n" * 2 + reject * 2 + b"221 rblsmtpd.local\r\n")


# -- decisions -------------------------------------------------------------------------

def test_listed_client_gets_the_txt_text_with_451_and_a_log_line(dns_server):
    code, out, err = both(["-r", "rbl.test", *SMTPD], dns_server)
    assert (code, out, err) == (0, blocked(b"451 onetwothree"),
                                b"rblsmtpd: 1.2.3.4 pid N: 451 onetwothree\n")
    assert dns_server.queries == [(f"{REV}.rbl.test", "TXT")]


def test_unlisted_client_runs_smtpd(dns_server):
    assert both(["-r", "nothere.test", *SMTPD], dns_server) == (0, RAN, b"")


def test_without_r_no_rbl_is_asked_as_in_the_debian_build(dns_server):
    assert both(SMTPD, dns_server) == (0, RAN, b"")
    assert dns_server.queries == []


def test_sources_are_tried_in_order_until_one_decides(dns_server):
    code, out, err = both(["-r", "nothere.test", "-r", "other.test", "-r", "rbl.test", *SMTPD], dns_server)
    assert err.endswith(b": 451 listed elsewhere\n")
    assert [name for name, _ in dns_server.queries] == [f"{REV}.nothere.test", f"{REV}.other.test"]


def test_anti_listed_client_is_accepted_and_later_sources_are_not_asked(dns_server):
    assert both(["-a", "anti.test", "-r", "rbl.test", *SMTPD], dns_server) == (0, RAN, b"")
    assert dns_server.queries == [(f"{REV}.anti.test", "A")]


def test_anti_rbl_after_a_listing_rbl_comes_too_late(dns_server):
    code, out, err = both(["-r", "rbl.test", "-a", "anti.test", *SMTPD], dns_server)
    assert out == blocked(b"451 onetwothree")


@pytest.mark.parametrize("args, code_text", [
    (["-b", "-r", "rbl.test"], b"553 onetwothree"),
    (["-r", "rbl.test", "-b"], b"451 onetwothree"),   # -b only judges the sources after it
    (["-b", "-B", "-r", "rbl.test"], b"451 onetwothree"),
    (["-bB", "-b", "-t5", "-r", "rbl.test"], b"553 onetwothree"),
])
def test_b_and_B_choose_553_or_451_for_the_sources_that_follow(dns_server, args, code_text):
    assert both([*args, *SMTPD], dns_server)[1] == blocked(code_text)


@pytest.mark.parametrize("value, expected", [
    ("", None),
    ("go away", b"451 go away"),
    ("-go away", b"553 go away"),
    ("-", b"553 "),
    ("--x", b"553 -x"),
    ("line\r\nbreak\x01\x7f\xe9", b"451 line??break????"),
    ("a" * 300, b"451 " + b"a" * 200),
])
def test_rblsmtpd_variable_overrides_the_lookups(dns_server, value, expected):
    code, out, err = both(["-r", "rbl.test", *SMTPD], dns_server, RBLSMTPD=value)
    assert dns_server.queries == []
    if expected is None:
        assert (code, out, err) == (0, RAN, b"")
    else:
        assert out == blocked(expected)
        assert err == b"rblsmtpd: 1.2.3.4 pid N: " + expected + b"\n"


def test_txt_text_is_cut_at_200_bytes_and_a_truncated_answer_is_fetched_over_tcp(dns_server):
    code, out, err = both(["-r", "long.test", *SMTPD], dns_server)
    assert out == blocked(b"451 " + b"x" * 200)
    assert dns_server.tcp_queries == 2


def test_unprintable_txt_bytes_become_question_marks(dns_server):
    assert both(["-r", "ctl.test", *SMTPD], dns_server)[1] == blocked(b"451 a?b?c?d?e??")


def test_an_empty_txt_record_does_not_list(dns_server):
    assert both(["-r", "empty.test", *SMTPD], dns_server) == (0, RAN, b"")


def test_missing_tcpremoteip_asks_for_the_base_itself(dns_server):
    code, out, err = both(["-r", "rbl.test", *SMTPD], dns_server, TCPREMOTEIP=None)
    assert err == b"rblsmtpd:  pid N: 451 the bare base\n"


def test_ipv6_remote_ip_is_used_as_one_label(dns_server):
    code, out, err = both(["-r", "rbl.test", *SMTPD], dns_server, TCPREMOTEIP="::1")
    assert err == b"rblsmtpd: ::1 pid N: 451 v6 listed\n"


@pytest.mark.parametrize("base", ["1.2", "1", "[9].8"])
def test_numeric_anti_rbl_name_is_read_as_an_address_without_asking(dns_server, base):
    both(["-a", base, "-r", "rbl.test", *SMTPD], dns_server)
    anti = [q for q in dns_server.queries if q[1] == "A"]
    assert anti == []


@pytest.mark.parametrize("base", ["a..b.test", "a\\.b.test", "x" * 70 + ".test", "\\101bc.test"])
def test_base_is_read_as_djbdns_reads_dotted_names(dns_server, base):
    both(["-r", base, *SMTPD], dns_server)


# -- temporary DNS failure ------------------------------------------------------------

FAILURE_CASES = [
    (["-r", "fail.test"], None),
    (["-c", "-r", "fail.test"], b"451 temporary RBL lookup error"),
    (["-r", "fail.test", "-c"], None),                      # -c judges later look-ups only
    (["-c", "-b", "-r", "fail.test", "-r", "rbl.test"], b"451 temporary RBL lookup error"),
    (["-b", "-r", "fail.test", "-r", "rbl.test"], b"451 onetwothree"),  # never 553 after trouble
    (["-a", "antifail.test", "-r", "rbl.test"], None),
    (["-c", "-a", "antifail.test", "-r", "rbl.test"], b"451 onetwothree"),
    (["-c", "-b", "-a", "antifail.test", "-r", "rbl.test"], b"451 onetwothree"),
    (["-C", "-b", "-a", "antifail.test", "-r", "rbl.test"], None),
]


def test_servfail_fails_open_by_default_and_closed_with_c():
    # The C resolver spends about 11 s on a SERVFAIL: run every case side by side.
    c_tool = support.c_tool("rblsmtpd")
    with DNSServer(ZONE) as server:
        server.rcodes[f"{REV}.fail.test"] = dns.rcode.SERVFAIL
        server.rcodes[f"{REV}.antifail.test"] = dns.rcode.SERVFAIL
        with ThreadPoolExecutor(len(FAILURE_CASES)) as pool:
            c_runs = [pool.submit(rblsmtpd, c_tool, [*args, *SMTPD], server, SESSION, 60)
                      for args, _ in FAILURE_CASES]
            ours = [rblsmtpd(support.prog("rblsmtpd"), [*args, *SMTPD], server) for args, _ in FAILURE_CASES]
            theirs = [run.result() for run in c_runs]
    for (args, expected), mine, c in zip(FAILURE_CASES, ours, theirs):
        assert mine == c, args
        assert mine[1] == (RAN if expected is None else blocked(expected)), args


def test_silent_dns_server_is_a_temporary_failure():
    with DNSServer(ZONE) as server:
        server.silent = True
        start = time.monotonic()
        closed = rblsmtpd(support.prog("rblsmtpd"), ["-c", "-r", "rbl.test", *SMTPD], server,
                          b"QUIT\r\n")
        assert time.monotonic() - start < 30
        assert closed == (0, GREETING + b"221 rblsmtpd.local\r\n",
                          b"rblsmtpd: 1.2.3.4 pid N: 451 temporary RBL lookup error\n")
        assert server.queries and all(q == (f"{REV}.rbl.test", "TXT") for q in server.queries)


# -- command line ------------------------------------------------------------------------

@pytest.mark.parametrize("args, first_line", [
    ([], b""),
    (["-r", "rbl.test"], b""),
    (["-x", *SMTPD], b"rblsmtpd: illegal option -- x\n"),
    (["-t"], b"rblsmtpd: option requires an argument -- t\n"),
])
def test_usage_errors_exit_100_with_the_original_usage_line(dns_server, args, first_line):
    assert both(args, dns_server, RBLSMTPD="") == (100, b"", first_line + USAGE)


def test_unrunnable_smtpd_is_fatal_111(dns_server):
    result = both(["/nonexistent/smtpd", "x"], dns_server, RBLSMTPD="")
    assert result == (111, b"", b"rblsmtpd: fatal: unable to run /nonexistent/smtpd: file does not exist\n")


@pytest.mark.parametrize("t", ["0", "0x", "-3"])
def test_timeout_zero_prints_the_rejection_once_without_a_conversation(t):
    code, out, err = both(["-t", t, *SMTPD], RBLSMTPD="go away")
    assert (code, out) == (0, b"451 go away\r\n")


# -- the conversation -----------------------------------------------------------------

DIALOGUES = [
    b"helo\r\nEhLo there\r\nmail\r\nrset\r\nnoop\r\nvrfy x\r\nquit\r\n",
    b"HELO x\nMAIL FROM:<a>\n\nQUIT\n",                      # bare LF, empty line
    b"  HELO\r\nHELO  x\r\nHELO\tx\r\nQUIT\r\r\nQUIT \r\n",    # leading space, tab, CR CR
    b"QUIT\0\r\n\0QUIT\r\nHELO\0x\r\nQUIT\r\n",              # NUL is an ordinary byte
    b"HELO x\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n",
    b"HELO x\r\nQUIT\r\nHELO after quit\r\n",
    b"HELO x\r\nRCPT TO:<a>",                                # partial last line: no reply
    b"",                                                     # immediate end of input
    b"X" * 100000 + b"\r\nHELO " + b"y" * 100000 + b"\r\nQUIT\r\n",  # very long lines
    b"QUIT" + b"\r" * 70 + b"\n" + b"noop" + b" " * 70 + b"\r\nquit\r\n",
    b"\xffHELO\r\nh\xc9lo\r\nQUIT\r\n",
]


@pytest.mark.parametrize("session", DIALOGUES)
def test_dialogue_is_byte_for_byte_the_original(session):
    code, out, err = both(["-t", "20", *SMTPD], input=session, RBLSMTPD="-go away")
    assert code == 0 and out.startswith(GREETING)


def test_slow_client_is_dropped_after_the_timeout_with_exit_0():
    results = {}
    for name, binary in (("c", support.c_tool("rblsmtpd")), ("ours", support.prog("rblsmtpd"))):
        proc = support.Proc([binary, "-t", "1", *SMTPD], env=env_for(None, RBLSMTPD="slow"),
                            stdin=subprocess.PIPE)
        start = time.monotonic()
        proc.popen.stdin.write(b"HELO x\r\n")
        proc.popen.stdin.flush()
        # Keep trickling bytes: the limit is for the whole session, not per read.
        for _ in range(40):
            if not proc.alive():
                break
            try:
                proc.popen.stdin.write(b"N")
                proc.popen.stdin.flush()
            except BrokenPipeError:
                break
            time.sleep(0.1)
        code = proc.wait(10)
        elapsed = time.monotonic() - start
        out = proc.out.read_available(0.5)
        log = proc.err.wait_line("rblsmtpd:")
        assert log == f"rblsmtpd: {IP} pid {proc.pid}: 451 slow"
        results[name] = (code, out)
        assert 0.9 < elapsed < 3.5, name
        proc.stop()
    assert results["ours"] == results["c"] == (0, ["220 rblsmtpd.local\r", "250 rblsmtpd.local\r"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(
    st.one_of(
        st.sampled_from([b"HELO", b"ehlo x", b"Mail From:<a>", b"RSET", b"noop", b"QUIT",
                         b"quit", b"DATA", b"RCPT TO:<b>", b"", b" ", b"\r", b"\0"]),
        st.binary(max_size=12),
        st.text("HELOQUITmailrsetnop \r\0\t", max_size=10).map(lambda s: s.encode("latin-1")),
    ).flatmap(lambda line: st.sampled_from([b"\r\n", b"\n", b"\r\r\n", b""]).map(lambda end: line + end)),
    max_size=8))
def test_random_client_lines_get_the_originals_replies(lines):
    session = b"".join(lines)
    code, out, err = both(["-t", "20", *SMTPD], input=session, RBLSMTPD="listed\r\x01")
    assert code == 0
    assert err == b"rblsmtpd: 1.2.3.4 pid N: 451 listed??\n"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.text("0123456789.:ab\\", max_size=12))
def test_random_remote_ips_are_reversed_as_the_original_does(dns_server, ip):
    dns_server.queries.clear()
    both(["-r", "rbl.test", *SMTPD], dns_server, input=b"QUIT\r\n", TCPREMOTEIP=ip)


# -- the next program -----------------------------------------------------------------

@pytest.mark.parametrize("warm", [True, False])
def test_not_blocked_smtpd_runs_with_the_same_argv_and_environment(dns_server, warm):
    env = env_for(dns_server, UCSPI_WARMSTART="1" if warm else "0", EXTRA_VAR="kept")
    probe = support.Proc([support.prog("rblsmtpd"), "-r", "nothere.test", "ucspi-probe", "one", "two words"],
                         env=env)
    report = json.loads(probe.out.wait_line("{", timeout=20))
    assert probe.wait(10) == 0
    assert report["argv"][1:] == ["one", "two words"]
    assert os.path.basename(report["argv"][0]) == "ucspi-probe"
    assert report["pid"] == probe.pid, "exec semantics: same process"
    assert report["warm"] is warm
    expected = {k: v for k, v in env.items() if k != "LC_CTYPE"}
    assert {k: v for k, v in report["env"].items() if k != "LC_CTYPE"} == expected
    assert report["fds"] == [0, 1, 2]
    assert int(report["signals"]["SigBlk"], 16) == 0
    assert dns_server.queries == [(f"{REV}.nothere.test", "TXT")]


def test_warm_chain_of_two_rblsmtpds_blocks_in_the_inner_one(dns_server):
    # The outer one accepts (anti-listed) and becomes the inner one, which is listed.
    code, out, err = both(["-a", "anti.test", support.prog("rblsmtpd"), "-t0", "-r", "rbl.test", *SMTPD],
                          dns_server)
    assert (code, out) == (0, b"451 onetwothree\r\n")


def test_sigterm_during_the_conversation_kills_it(dns_server):
    proc = support.Proc([support.prog("rblsmtpd"), *SMTPD], env=env_for(dns_server, RBLSMTPD="x"),
                        stdin=subprocess.PIPE)
    proc.out.wait_line("220 rblsmtpd.local")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == -signal.SIGTERM


@pytest.mark.parametrize("timeout", ["0", "20"])
def test_client_gone_before_a_reply_ends_it_by_sigpipe_as_the_original(timeout):
    codes = []
    for binary in (support.c_tool("rblsmtpd"), support.prog("rblsmtpd")):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            proc = support.Proc([binary, "-t", timeout, *SMTPD], env=env_for(None, RBLSMTPD="gone"),
                                stdin=subprocess.PIPE, stdout=write_end)
        finally:
            os.close(write_end)
        try:  # with a greeting to write first, it may be gone before reading anything
            proc.popen.stdin.write(b"HELO x\r\n")
            proc.popen.stdin.close()
        except BrokenPipeError:
            pass
        codes.append(proc.wait(10))
        proc.stop()
    assert codes == [-signal.SIGPIPE, -signal.SIGPIPE]


# -- behind tcpserver, with a real SMTP client ------------------------------------------

@pytest.mark.parametrize("warm", [True, False])
def test_smtplib_client_of_a_listed_address_is_refused_at_rcpt_behind_tcpserver(warm):
    zone = {("1.0.0.127.rbl.test", "TXT"): ['"127.0.0.1 is listed, see http://rbl.test/"']}
    with DNSServer(zone) as server:
        env = support.suite_env(DNSCACHEIP=server.ip, RBLSMTPD=None, UCSPI_WARMSTART="1" if warm else "0")
        proc, port = start_tcpserver(["-RHl0"], ["rblsmtpd", "-r", "rbl.test", *SMTPD], env=env)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            assert client.ehlo()[0] == 250
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nbody\r\n")
            assert refused.value.recipients["b@example.com"] == (
                451, b"127.0.0.1 is listed, see http://rbl.test/")
        line = proc.err.wait_line("rblsmtpd:")
        assert re.fullmatch(r"rblsmtpd: 127\.0\.0\.1 pid \d+: 451 127\.0\.0\.1 is listed, see http://rbl\.test/", line)
        assert server.queries == [("1.0.0.127.rbl.test", "TXT")]
        proc.stop()
