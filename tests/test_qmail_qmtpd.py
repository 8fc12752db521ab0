"""qmail-qmtpd: QMTP through our tcpserver into the queue, per-recipient answers."""

import re
from pathlib import Path

import pytest

from qmail.formats import netstring
from tests import qmail_trees, support
from tests.test_qmail_inject import FAKE_QUEUE
from tests.ucspi_servers import start_tcpserver

REFUSED_DOMAIN = b"Dsorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
REFUSED_OTHER = b"Dsorry, I can't handle that recipient (#5.1.3)"
OK = re.compile(rb"Kok \d+ qp \d+")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("qmtpd")
    root = Path(qmail_trees.embedded_tree(base, fqdn="mx.example.com"))
    (root / "control" / "rcpthosts").write_text("example.com\n.sub.example\n")
    (base / "fakeq").write_text(FAKE_QUEUE)
    (base / "fakeq").chmod(0o755)
    return root


@pytest.fixture
def server(tree):
    started = []

    def start(**env):
        proc, port = start_tcpserver(["-H", "-R", "-l", "me.local"], [support.prog("qmail-qmtpd")],
                                     env=support.suite_env(QMAIL_ROOT=tree, **env))
        started.append(proc)
        return port
    yield start
    for proc in started:
        proc.stop()


def pkg(message: bytes, sender: bytes, recipients, mode: bytes = b"\n") -> bytes:
    return (netstring.encode(mode + message) + netstring.encode(sender)
            + netstring.encode_list(recipients))


def talk(port: int, data: bytes) -> list[bytes]:
    with support.connect(port) as s:
        s.sendall(data)
        s.shutdown(1)
        return netstring.decode_all(support.recv_all(s))


def new_messages(tree, before):
    return [n for n in qmail_trees.queued(str(tree)) if n not in before]


def test_message_is_queued_and_each_recipient_answered(tree, server):
    port = server()
    before = qmail_trees.queued(str(tree))
    answers = talk(port, pkg(b"Subject: q\n\nbody\n", b"a@b.c",
                             [b"x@example.com", b"y@far.away", b"z@deep.sub.example"]))
    assert len(answers) == 3
    assert OK.fullmatch(answers[0]) and answers[2] == answers[0]
    assert answers[1] == REFUSED_DOMAIN
    (num,) = new_messages(tree, before)
    todo = qmail_trees.todo(str(tree), num)
    assert todo.sender == b"a@b.c"
    assert todo.recipients == [b"x@example.com", b"z@deep.sub.example"]
    qp = int(answers[0].split()[-1])
    mess = qmail_trees.message(str(tree), num)
    # qmail-queue's own Received line comes first, then qmail-qmtpd's
    assert re.fullmatch(rb"Received: \(qmail \d+ invoked by uid \d+\); [^\n]*\n"
                        rb"Received: from unknown \(127\.0\.0\.1\)\n  by me\.local with QMTP; "
                        rb"\d+ \w{3} \d{4} \d\d:\d\d:\d\d -0000\nSubject: q\n\nbody\n", mess)
    assert qp > 0


def test_crlf_mode_turns_crlf_into_lf_only(tree, server):
    port = server()
    before = qmail_trees.queued(str(tree))
    answers = talk(port, pkg(b"A: b\r\n\r\nx\ry\r\n\r", b"", [b"x@example.com"], mode=b"\r"))
    assert OK.fullmatch(answers[0])
    (num,) = new_messages(tree, before)
    assert qmail_trees.message(str(tree), num).endswith(b"\nA: b\n\nx\ry\n\r")


def test_several_packages_on_one_connection(tree, server):
    port = server()
    before = qmail_trees.queued(str(tree))
    data = b"".join(pkg(b"n: %d\n\n" % i, b"s@x", [b"r%d@example.com" % i]) for i in range(3))
    answers = talk(port, data)
    assert len(answers) == 3 and all(OK.fullmatch(a) for a in answers)
    assert len(new_messages(tree, before)) == 3


def test_relayclient_allows_any_domain_and_is_appended(tree, server):
    port = server(RELAYCLIENT="@relay.example.com")
    before = qmail_trees.queued(str(tree))
    answers = talk(port, pkg(b"\n", b"s@x", [b"joe", b"y@far.away"]))
    assert all(OK.fullmatch(a) for a in answers)
    (num,) = new_messages(tree, before)
    assert qmail_trees.todo(str(tree), num).recipients == [b"joe@relay.example.com",
                                                          b"y@far.away@relay.example.com"]


def test_databytes_refuses_big_messages_and_queues_nothing(tree, server):
    port = server(DATABYTES="10")
    before = qmail_trees.queued(str(tree))
    small = talk(port, pkg(b"0123456789", b"s@x", [b"a@example.com"]))
    assert OK.fullmatch(small[0])
    for mode in (b"\n", b"\r"):
        answers = talk(port, pkg(b"0123456789X", b"s@x", [b"a@example.com", b"b@example.com"], mode))
        assert answers == [b"Dsorry, that message size exceeds my databytes limit (#5.3.4)"] * 2
    assert len(new_messages(tree, before)) == 1


@pytest.mark.parametrize("sender", [b"a\0b@x", b"s" * 1000])
def test_unacceptable_sender(tree, server, sender):
    port = server()
    before = qmail_trees.queued(str(tree))
    answers = talk(port, pkg(b"\n", sender, [b"a@example.com"]))
    assert answers == [b"Dunacceptable sender (#5.1.7)"]
    assert new_messages(tree, before) == []


def test_recipients_it_cannot_handle(tree, server):
    port = server()
    answers = talk(port, pkg(b"\n", b"s@x", [b"a\0b@example.com", b"x" * 990 + b"@example.com",
                                             b"ok@example.com"]))
    assert answers[:2] == [REFUSED_OTHER, REFUSED_OTHER]
    assert OK.fullmatch(answers[2])


def test_nothing_queued_when_every_recipient_is_refused(tree, server):
    port = server()
    before = qmail_trees.queued(str(tree))
    assert talk(port, pkg(b"\n", b"s@x", [b"a@far.away"])) == [REFUSED_DOMAIN]
    assert new_messages(tree, before) == []


@pytest.mark.parametrize("code, text, answer", [
    ("53", "", b"Zqq write error or disk full (#4.3.0)"),
    ("31", "", b"Dmail server permanently rejected message (#5.3.0)"),
    ("82", "Dcustom refusal", b"Dcustom refusal"),
])
def test_queue_refusals_are_relayed(tree, server, tmp_path, code, text, answer):
    port = server(QMAILQUEUE=str(tree.parent / "fakeq"), FAKEQ_DIR=str(tmp_path),
                  FAKEQ_EXIT=code, FAKEQ_TEXT=text)
    assert talk(port, pkg(b"\n", b"s@x", [b"a@example.com", b"b@example.com"])) == [answer] * 2


def run_qmtpd(tree, data: bytes, **env):
    return support.run([support.prog("qmail-qmtpd")], input=data,
                       env=support.suite_env(QMAIL_ROOT=tree, **env))


@pytest.mark.parametrize("data, code", [
    (b"", 0),                                        # client closed: fine
    (b"0:,", 100),                                   # empty message
    (b"2:Xa,", 100),                                 # bad mode byte
    (b"2:\na;", 100),                                # missing comma
    (b"x:", 100),                                    # not a length
    (b"999999999999:", 111),                         # length beyond qmail's limit
    (b"2:\na,3:s@x,5:9:a,,", 100),                   # recipient longer than the list
    (b"2:\na,3:s@x,", 0),                            # closed mid-package
])
def test_protocol_violations_end_the_session(tree, data, code):
    before = qmail_trees.queued(str(tree))
    done = run_qmtpd(tree, data)
    assert done.returncode == code
    assert done.stdout == b""
    assert new_messages(tree, before) == []


def test_control_trouble_is_temporary(tmp_path):
    root = Path(qmail_trees.embedded_tree(tmp_path))
    (root / "control" / "databytes").write_text("lots\n")
    assert run_qmtpd(root, pkg(b"\n", b"s", [b"a"])).returncode == 111
    assert run_qmtpd(tmp_path / "absent", b"").returncode == 111


def test_thousands_of_recipients_and_a_big_crlf_message(tree, server):
    port = server()
    before = qmail_trees.queued(str(tree))
    recipients = [b"r%d@example.com" % i for i in range(3000)]
    body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 5000
    answers = talk(port, pkg(body, b"s@x", recipients, mode=b"\r"))
    assert len(answers) == 3000 and all(OK.fullmatch(a) for a in answers)
    (num,) = new_messages(tree, before)
    assert len(qmail_trees.todo(str(tree), num).recipients) == 3000
    assert qmail_trees.message(str(tree), num).endswith(b"\nSubject: big\n\n" + (b"x" * 998 + b"\n") * 5000)


def test_works_with_warm_start_off(tree, server):
    port = server(UCSPI_WARMSTART="0")
    before = qmail_trees.queued(str(tree))
    answers = talk(port, pkg(b"cold\n", b"s@x", [b"a@example.com", b"b@far.away"]))
    assert OK.fullmatch(answers[0]) and answers[1] == REFUSED_DOMAIN
    assert len(new_messages(tree, before)) == 1


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=60),
    st.builds(lambda m, s, r, cut: pkg(m, s, r)[:cut], st.binary(max_size=20), st.binary(max_size=10),
              st.lists(st.binary(max_size=10), max_size=3), st.integers(0, 80))))
def test_hostile_input_never_crashes(tree, data):
    done = run_qmtpd(tree, data)
    assert done.returncode in (0, 100, 111)
    assert done.stderr == b""  # no traceback, whatever arrives


from tests.qmail_trees import user_tree  # noqa: E402,F401  (fixture)


def test_embedded_tree_as_an_ordinary_user(user_tree):  # noqa: F811
    root, user = user_tree
    argv = support.as_user([support.prog("tcpserver"), "-1", "-HRl0", "127.0.0.1", "0",
                            support.prog("qmail-qmtpd")], user)
    proc = support.Proc(argv, env=support.suite_env(QMAIL_ROOT=root))
    port = int(proc.out.wait_line(lambda line: line.strip().isdigit()))
    answers = talk(port, pkg(b"as user\n", b"s@x", [b"demo@" + qmail_trees.FQDN.encode()]))
    assert OK.fullmatch(answers[0]), answers
    (num,) = qmail_trees.queued(root)
    assert qmail_trees.todo(root, num).uid == user.pw_uid
    proc.stop()
