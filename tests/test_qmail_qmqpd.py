"""qmail-qmqpd: QMQP through our tcpserver into the queue."""

import re
from pathlib import Path

import pytest

from qmail.formats import netstring
from tests import qmail_trees, support
from tests.test_qmail_inject import FAKE_QUEUE
from tests.ucspi_servers import start_tcpserver

OK = re.compile(rb"Kok \d+ qp \d+")
BAD_ADDRESS = b"Dsorry, I can't accept addresses like that (#5.1.3)"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("qmqpd")
    root = Path(qmail_trees.embedded_tree(base, fqdn="hub.example.com"))
    (base / "fakeq").write_text(FAKE_QUEUE)
    (base / "fakeq").chmod(0o755)
    return root


@pytest.fixture
def server(tree):
    started = []

    def start(**env):
        proc, port = start_tcpserver(["-H", "-R", "-l", "hub.local"], [support.prog("qmail-qmqpd")],
                                     env=support.suite_env(QMAIL_ROOT=tree, **env))
        started.append(proc)
        return port
    yield start
    for proc in started:
        proc.stop()


def pkg(message: bytes, sender: bytes, recipients) -> bytes:
    return netstring.encode(netstring.encode(message) + netstring.encode(sender)
                            + b"".join(netstring.encode(r) for r in recipients))


def talk(port: int, data: bytes) -> bytes:
    with support.connect(port) as s:
        s.sendall(data)
        s.shutdown(1)
        return support.recv_all(s)


def new_messages(tree, before):
    return [n for n in qmail_trees.queued(str(tree)) if n not in before]


def test_package_is_queued_with_a_qmqp_received_line(tree, server):
    port = server()
    before = qmail_trees.queued(str(tree))
    reply = talk(port, pkg(b"Subject: q\n\nbody\n", b"a@b.c", [b"x@any.where", b"y@else.where"]))
    answer, rest = netstring.decode(reply)
    assert OK.fullmatch(answer) and rest == b""
    (num,) = new_messages(tree, before)
    todo = qmail_trees.todo(str(tree), num)
    assert (todo.sender, todo.recipients) == (b"a@b.c", [b"x@any.where", b"y@else.where"])
    mess = qmail_trees.message(str(tree), num)
    assert re.search(rb"\nReceived: from unknown \(127\.0\.0\.1\)\n  by hub\.local with QMQP; "
                     rb"[^\n]+ -0000\nSubject: q\n\nbody\n$", mess)


@pytest.mark.parametrize("sender, recipients", [
    (b"a\0b", [b"x@y"]), (b"s" * 1000, [b"x@y"]), (b"s@x", [b"x@y", b"a\0b"]),
    (b"s@x", [b"r" * 1000]),
])
def test_bad_addresses_refuse_the_message(tree, server, sender, recipients):
    port = server()
    before = qmail_trees.queued(str(tree))
    assert talk(port, pkg(b"\n", sender, recipients)) == netstring.encode(BAD_ADDRESS)
    assert new_messages(tree, before) == []


@pytest.mark.parametrize("code, text, answer", [
    ("53", "", b"Zqq write error or disk full (#4.3.0)"),
    ("82", "Dgo away", b"Dgo away"),
])
def test_queue_refusals_are_relayed(tree, server, tmp_path, code, text, answer):
    port = server(QMAILQUEUE=str(tree.parent / "fakeq"), FAKEQ_DIR=str(tmp_path),
                  FAKEQ_EXIT=code, FAKEQ_TEXT=text)
    assert talk(port, pkg(b"\n", b"s@x", [b"a@b"])) == netstring.encode(answer)


def run_qmqpd(tree, data: bytes):
    return support.run([support.prog("qmail-qmqpd")], input=data,
                       env=support.suite_env(QMAIL_ROOT=tree))


@pytest.mark.parametrize("data, code", [
    (b"", 0),                                     # client went away
    (b"10:3:abc,1:", 0),                          # closed mid-package
    (b"5:3:abc,;", 100),                          # outer comma missing
    (b"9:3:abc,2:ab,", 100),                      # inner netstring runs past the package
    (b"5:3:abc;,", 100),                          # inner comma missing
    (b"0" * 101 + b"1:", 100),                    # outer length longer than 100 bytes
    (b"999999999999:", 111),                      # length beyond qmail's limit
])
def test_malformed_packages(tree, data, code):
    before = qmail_trees.queued(str(tree))
    done = run_qmqpd(tree, data)
    assert done.returncode == code
    assert done.stdout == b""
    assert new_messages(tree, before) == []


def test_answer_exit_code_is_zero(tree):
    done = run_qmqpd(tree, pkg(b"x\n", b"", [b"a@b"]))
    assert done.returncode == 0
    assert OK.fullmatch(netstring.decode(done.stdout)[0])


def test_works_with_warm_start_off(tree, server):
    port = server(UCSPI_WARMSTART="0")
    before = qmail_trees.queued(str(tree))
    answer, _ = netstring.decode(talk(port, pkg(b"cold\n", b"s@x", [b"a@b"])))
    assert OK.fullmatch(answer)
    assert len(new_messages(tree, before)) == 1


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=60),
    st.builds(lambda m, s, r, cut: pkg(m, s, r)[:cut], st.binary(max_size=20), st.binary(max_size=10),
              st.lists(st.binary(max_size=10), max_size=3), st.integers(0, 80))))
def test_hostile_input_never_crashes(tree, data):
    done = run_qmqpd(tree, data)
    assert done.returncode in (0, 100, 111)
    assert done.stderr == b""
