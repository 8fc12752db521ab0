"""qmail-smtpd's MAIL/RCPT addresses against qmail 1.03's rules, where hostile input found us
wrong (issue 14): [ip] literals are this host only when ipme lists them (not when bind()
takes them), the 900-byte limit counts after the localiphost rewrite, and a command line cut
at 64 KiB still gets the reply qmail gives when its <address> ended inside what was kept.

The model below is qmail-smtpd.c's addrparse with ip_scanbracket and ipme_is, written the C
way (a NUL-terminated buffer walked by index) and independent of qmail/mailin/smtp_command.py;
hypothesis compares the two, and real qmail-smtpd sessions against the model. With QMAIL_REF
naming a notqmail installation, the same sessions are also compared with its qmail-smtpd.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from qmail.config import ipme
from qmail.mailin import smtp_command
from tests import support
from tests.test_qmail_smtpd import envelope, queued, replies, session, smtpd_env

FQDN = "test.example"  # what build-notqmail's config-fast writes, so greetings compare
LIPHOST = b"local.example"
NOGATEWAY = b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
BMF = b"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"
SYNTAX = b"555 syntax error (#5.5.4)"
OK = b"250 ok"
LONG = 70000  # past qmail-smtpd's 64 KiB command line


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "qmail"
    done = support.run([support.prog("qmail-install"), "--embedded", "--fqdn", FQDN, root])
    assert done.returncode == 0, done.stderr
    (root / "control" / "localiphost").write_text(LIPHOST.decode() + "\n")
    (root / "control" / "rcpthosts").write_text(f"{FQDN}\n{LIPHOST.decode()}\n")
    return root


# --- the model: qmail-smtpd.c's addrparse, ip_scan, ipme ------------------------------------


def _scan_ulong(s: bytes, i: int) -> tuple[int, int]:
    n = start = i
    value = 0
    while s[n] in b"0123456789":
        value = (value * 10 + s[n] - 48) % (1 << 64)
        n += 1
    return n - start, value


def _ip_scanbracket(s: bytes, i: int) -> tuple[int, str]:
    """(length of [a.b.c.d] at s[i], the address) or (0, '')."""
    if s[i] != ord("["):
        return 0, ""
    j, octets = i + 1, []
    for k in range(4):
        n, value = _scan_ulong(s, j)
        if not n:
            return 0, ""
        octets.append(value % 256)
        j += n
        if k < 3:
            if s[j] != ord("."):
                return 0, ""
            j += 1
    if s[j] != ord("]"):
        return 0, ""
    return j + 1 - i, ".".join(map(str, octets))


def qmail_addrparse(arg: bytes, liphost: bytes | None, mine: set[str]) -> bytes | None:
    """What qmail 1.03's addrparse leaves in addr (None: it returned 0, so 555)."""
    s = arg.split(b"\0", 1)[0] + b"\0"
    terminator = ord(">")
    i = s.index(b"<") if b"<" in s else len(s) - 1
    if s[i]:
        i += 1
    else:
        terminator = ord(" ")
        i = s.index(b":") if b":" in s else len(s) - 1
        if s[i] == ord(":"):
            i += 1
        while s[i] == ord(" "):
            i += 1
    if s[i] == ord("@"):
        while s[i]:
            i += 1
            if s[i - 1] == ord(":"):
                break
    addr = bytearray()
    esc = quoted = False
    while s[i]:
        ch = s[i]
        if esc:
            addr.append(ch)
            esc = False
        elif not quoted and ch == terminator:
            break
        elif ch == ord("\\"):
            esc = True
        elif ch == ord('"'):
            quoted = not quoted
        else:
            addr.append(ch)
        i += 1
    addr.append(0)
    if liphost is not None:
        at = max((k for k in range(len(addr)) if addr[k] == ord("@")), default=len(addr))
        if at < len(addr) and addr[at + 1] == ord("["):
            n, ip = _ip_scanbracket(bytes(addr), at + 1)
            if addr[at + 1 + n] == 0 and ip in mine:
                addr = addr[:at + 1] + liphost + b"\0"
    if len(addr) > 900:
        return None
    return bytes(addr[:-1])


def interface_addresses() -> set[str]:
    """This host's addresses as iproute2 lists them (interfaces up), plus 0.0.0.0."""
    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("iproute2's ip is not installed")
    out = subprocess.run([ip, "-4", "-o", "addr", "show", "up"], capture_output=True,
                         check=True, timeout=10).stdout.decode()
    return {"0.0.0.0"} | set(re.findall(r"\binet (\d+\.\d+\.\d+\.\d+)/", out))


# --- ipme ----------------------------------------------------------------------------------


def test_ipme_is_the_interface_list_plus_0000():
    assert ipme.read() == interface_addresses()
    assert "127.0.0.1" in ipme.read() and "127.0.0.2" not in ipme.read()


def in_private_network(script: str, *argv, input: bytes = b"", env=None):
    """Run argv in a new network namespace after `sh -c script` set it up (root only)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("a private network namespace needs root, unshare and ip")
    return subprocess.run(["unshare", "--net", "--", "sh", "-c", script + ' && exec "$@"', "sh", *argv],
                          input=input, capture_output=True, env=env, timeout=60)


NETNS_SETUP = ("ip link set lo up && ip addr add 10.9.8.7/24 dev lo"
               " && ip addr add 10.9.8.8/32 dev lo label lo:x"
               " && sysctl -q -w net.ipv4.ip_nonlocal_bind=1")
PRINT_IPME = "from qmail.config import ipme; print(' '.join(sorted(ipme.read())))"


def test_ipme_lists_secondary_and_labelled_addresses_of_up_interfaces_only():
    done = in_private_network(NETNS_SETUP, sys.executable, "-c", PRINT_IPME)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [b"0.0.0.0", b"10.9.8.7", b"10.9.8.8", b"127.0.0.1"]
    done = in_private_network(NETNS_SETUP + " && ip link set lo down", sys.executable, "-c", PRINT_IPME)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [b"0.0.0.0"]


def test_bracketed_addresses_that_only_bind_are_not_mine(tree):
    """With ip_nonlocal_bind=1 every address binds: qmail's rule is ipme, so [10.1.2.3],
    [10.9.8.9] and [127.0.0.2] go to rcpthosts (553) and only ipme's are rewritten to
    localiphost."""
    rcpts = [b"x@[10.1.2.3]", b"x@[10.9.8.9]", b"x@[127.0.0.2]", b"x@[10.9.8.8]", b"x@[0.0.0.0]"]
    data = b"".join(l + b"\r\n" for l in [b"MAIL FROM:<a@b>"] + [b"RCPT TO:<" + r + b">" for r in rcpts]
                    + [b"DATA", b"hi", b".", b"QUIT"])
    done = in_private_network(NETNS_SETUP, support.prog("qmail-smtpd"), input=data,
                              env=smtpd_env(tree))
    got = replies(done)
    assert got[2:7] == [NOGATEWAY, NOGATEWAY, NOGATEWAY, OK, OK]
    assert queued(tree)[0][1].endswith(envelope(b"a@b", b"x@local.example", b"x@local.example"))


@pytest.mark.parametrize("literal", [b"127.0.0.2", b"127.1.2.3", b"224.0.0.1", b"255.255.255.255",
                                     b"192.0.2.255"])
def test_literal_not_in_ipme_is_refused_and_nothing_is_queued(tree, literal):
    lines = [b"MAIL FROM:<a@b>", b"RCPT TO:<x@[" + literal + b"]>", b"DATA"]
    assert replies(session(tree, lines))[2:] == [NOGATEWAY, b"503 RCPT first (#5.5.1)"]
    assert queued(tree) == []


# --- the 900-byte limit counts after the rewrite --------------------------------------------


# user@local.example and its NUL: 885 + 1 + 13 + 1 = 900 is the most qmail takes
@pytest.mark.parametrize("local_length, accepted", [(10, True), (885, True), (886, False)])
def test_address_limit_counts_after_the_localiphost_rewrite(tree, local_length, accepted):
    rcpt = b"a" * local_length + b"@[127.000.000.001]"
    lines = [b"MAIL FROM:<a@b>", b"RCPT TO:<" + rcpt + b">", b"DATA", b"hi", b"."]
    got = replies(session(tree, lines))
    if accepted:
        assert got[2] == OK and got[-1].startswith(b"250 ok ")
        assert queued(tree)[0][1].endswith(envelope(b"a@b", b"a" * local_length + b"@" + LIPHOST))
    else:
        assert got[2] == SYNTAX and queued(tree) == []


# --- command lines beyond 64 KiB --------------------------------------------------------------


def test_long_lines_get_the_reply_their_address_and_the_state_call_for(tree):
    (tree / "control" / "badmailfrom").write_text("bad@spam.example\n")
    junk = b" " + b"j" * LONG
    lines = [b"RCPT TO:<demo@test.example>" + junk,          # no MAIL yet
             b"MAIL FROM:<a@b>" + junk,
             b"RCPT TO:<x@elsewhere.example>" + junk,         # not in rcpthosts
             b"RCPT TO:<demo@test.example>" + junk,
             b"RCPT TO:<" + b"u" * LONG + b"@test.example>",  # never ends in what is kept
             b"MAIL FROM:<bad@spam.example>" + junk,
             b"RCPT TO:<demo@test.example>" + junk]           # sender in badmailfrom
    assert replies(session(tree, lines))[1:] == [b"503 MAIL first (#5.5.1)", OK, NOGATEWAY, OK,
                                                 SYNTAX, OK, BMF]


def test_long_line_address_is_queued_as_sent(tree):
    lines = [b"MAIL FROM:<a@b>" + b"\t" * LONG, b"RCPT TO:<demo@test.example> " + b"z" * LONG,
             b"DATA", b"hi", b"."]
    assert replies(session(tree, lines))[-1].startswith(b"250 ok ")
    assert queued(tree)[0][1].endswith(envelope(b"a@b", b"demo@test.example"))


# --- the model against ours -----------------------------------------------------------------

FRAGMENTS = [b"<", b">", b'"', b"\\", b"@", b":", b" ", b",", b".", b"a", b"bc", b"TO:", b"FROM:",
             b"@r1,@r2:", b"[127.0.0.1]", b"[127.000.000.001]", b"[127.0.0.2]", b"[10.1.2.3]",
             b"[0.0.0.0]", b"[1.2.3]", b"[1.2.3.4.5]", b"[", b"]", b"384.0.0.1", b"\x80\xff",
             b"a" * 300, b"x" * 880, b"\0"]
ARGS = st.one_of(st.lists(st.sampled_from(FRAGMENTS), max_size=12).map(b"".join),
                 st.binary(max_size=1000).map(lambda b: b.replace(b"\n", b"")))
MINE = {"0.0.0.0", "127.0.0.1", "192.0.2.2"}


@settings(max_examples=3000, deadline=None)
@given(ARGS, st.sampled_from([None, LIPHOST, b""]))
def test_address_matches_qmail_addrparse(arg, liphost):
    arg = arg.split(b"\0", 1)[0]  # commands() ends the line at a NUL
    ours = smtp_command.address(arg, liphost, MINE.__contains__)
    assert ours == qmail_addrparse(arg, liphost, MINE)


@settings(max_examples=500, deadline=None)
@given(ARGS)
def test_cut_line_decides_only_when_the_address_ended(arg):
    """A line cut at 64 KiB: either the answer is the whole line's, or it is 555."""
    arg = arg.split(b"\0", 1)[0]
    whole = qmail_addrparse(arg + b"x" * 10, LIPHOST, MINE)
    ours = smtp_command.address(arg, LIPHOST, MINE.__contains__, cut=True)
    assert ours is None or ours == whole


SESSION_RCPTS = st.lists(st.lists(st.sampled_from(FRAGMENTS[:-1]), max_size=8).map(b"".join),
                         min_size=1, max_size=20)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(SESSION_RCPTS)
def test_real_sessions_answer_as_the_model(tree, args):
    """qmail-smtpd with RELAYCLIENT set (rcpthosts out of the way): 555 exactly where the
    model's addrparse fails, and the envelope holds the model's addresses."""
    for path in (tree / "queue").glob("*/*/*"):
        if path.parent.parent.name in ("mess", "todo", "intd", "info", "local", "remote"):
            path.unlink()
    lines = [b"MAIL FROM:<a@b>"] + [b"RCPT " + a for a in args] + [b"DATA", b"hi", b".", b"QUIT"]
    got = replies(session(tree, lines, RELAYCLIENT=""))
    mine = interface_addresses()
    expected = [qmail_addrparse(b"RCPT " + a, LIPHOST, mine) for a in args]
    rcpt_replies = got[2:2 + len(args)]
    assert rcpt_replies == [SYNTAX if e is None else OK for e in expected]
    accepted = [e for e in expected if e is not None]
    if accepted:
        assert got[-2].startswith(b"250 ok ")
        (_, todo), = queued(tree)
        assert todo.endswith(envelope(b"a@b", *accepted))
    else:
        assert got[-2] == b"503 RCPT first (#5.5.1)" and queued(tree) == []


# --- notqmail, when QMAIL_REF names it ----------------------------------------------------------


def reference_smtpd() -> str:
    ref = os.environ.get("QMAIL_REF")
    if not ref or not os.access(os.path.join(ref, "bin", "qmail-smtpd"), os.X_OK):
        pytest.skip("QMAIL_REF does not name a notqmail installation (build-notqmail)")
    return os.path.join(ref, "bin", "qmail-smtpd")


HOSTILE_SESSIONS = [
    [b"MAIL FROM:<a@b>", b"RCPT TO:<x@[127.0.0.2]>", b"RCPT TO:<x@[224.0.0.1]>", b"RCPT TO:<x@[255.255.255.255]>"],
    [b"MAIL FROM:<a@b>", b"RCPT TO:<" + b"a" * 885 + b"@[127.000.000.001]>"],
    [b"RCPT TO:<x@test.example> " + b"j" * LONG, b"MAIL FROM:<a@b> " + b"j" * LONG,
     b"RCPT TO:<x@nowhere.example> " + b"j" * LONG, b"RCPT TO:<x@test.example> " + b"j" * LONG],
    [b"MAIL FROM:<@r1,@r2:a\\\"b@c>", b"RCPT TO:<\"x y\"@test.example>", b"RCPT TO:x@test.example junk",
     b"RCPT TO:<@only-route>", b"RCPT TO:<x@[1.2.3]>"],
]


@pytest.mark.parametrize("lines", HOSTILE_SESSIONS, ids=["literals", "limit", "long-lines", "syntax"])
def test_replies_match_notqmail(tree, tmp_path, lines):
    ref = reference_smtpd()
    lines = lines + [b"QUIT"]
    data = b"".join(l + b"\r\n" for l in lines)
    ours = replies(session(tree, lines))
    theirs = subprocess.run([ref], input=data, capture_output=True, timeout=30,
                            env=support.suite_env(TCPREMOTEIP="192.0.2.7", TCPLOCALIP="127.0.0.1")).stdout
    assert ours == theirs.split(b"\r\n")[:-1]
