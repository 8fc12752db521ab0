"""qmail-send with qmail-todo, qmail-lspawn, qmail-rspawn and qmail-clean, end to end in
an embedded tree owned by an ordinary user (qmail-start as that user)."""

import os
import re
import signal
import time
from pathlib import Path

import pytest

from qmail.queue import queue_layout
from tests import support
from tests.qmail_send_rig import FQDN, LINE, Rig
from tests.qmail_trees import user_tree  # noqa: F401 (fixture)

DEMO = f"demo@{FQDN}"


@pytest.fixture
def rig(user_tree):
    root, user = user_tree
    r = Rig(root, user, Path(root).parent)
    yield r
    r.stop()


def _num(line: str) -> int:
    return int(re.search(r"msg (\d+)", line).group(1))


def test_local_and_remote_deliveries_logged_as_qmail_log_says(rig):
    rig.start()
    rig.inject([DEMO, "joe@remote.example"], subject="first")
    new = rig.log.wait_line("new msg ")
    num = _num(new)
    end = rig.log.wait_line(f"end msg {num}", timeout=30)
    assert end == f"end msg {num}"
    history = rig.history()
    for line in history:
        assert LINE.match(line), line
    assert any(re.fullmatch(rf"info msg {num}: bytes \d+ from <{DEMO}> qp \d+ uid {rig.user.pw_uid}", x)
               for x in history)
    local = next(x for x in history if x.startswith("starting delivery") and "to local" in x)
    assert re.fullmatch(rf"starting delivery \d+: msg {num} to local {DEMO}", local)
    remote = next(x for x in history if "to remote" in x)
    assert re.fullmatch(rf"starting delivery \d+: msg {num} to remote joe@remote.example", remote)
    delivered = {x.split(":")[0] for x in history if ": success: " in x}
    assert delivered == {"delivery " + local.split()[2].rstrip(":"), "delivery " + remote.split()[2].rstrip(":")}
    assert any(x.endswith(f"success: fake_remote_accepted_joe@remote.example_from_{DEMO}_at_remote.example./")
               for x in history)
    assert any(re.fullmatch(r"delivery \d+: success: did_1\+0\+0/", x) for x in history)
    assert "status: local 1/10 remote 0/20" in history or "status: local 1/10 remote 1/20" in history
    mail = rig.maildir("demo")
    assert len(mail) == 1 and b"Subject: first" in mail[0]
    support.wait_for(rig.queue_empty, what="queue emptied")


def test_new_messages_are_seen_through_the_trigger_at_once(rig):
    rig.start()
    start = time.monotonic()
    rig.inject([DEMO])
    rig.log.wait_line("end msg ", timeout=15)
    assert time.monotonic() - start < 10  # not the 25-minute todo timer


def test_deferral_is_retried_at_once_after_sigalrm(rig):
    rig.alias("later", "|exit 111\n")
    rig.start()
    rig.inject([f"later@{FQDN}"])
    deferral = rig.log.wait_line(": deferral: ", timeout=20)
    assert re.fullmatch(r"delivery \d+: deferral: \S*", deferral)
    rig.alias("later", "./Maildir/\n")
    time.sleep(1.5)
    assert not any(": success: " in x for x in rig.log.read_available(0.2))  # next try: 100 s
    rig.proc.send_signal(signal.SIGALRM)
    rig.log.wait_line(": success: ", timeout=20)
    rig.log.wait_line("end msg ", timeout=20)
    assert len(rig.maildir("alias")) == 1


def test_permanent_failure_bounces_to_the_sender(rig):
    rig.start()
    rig.inject([f"nosuchbox@{FQDN}"], subject="lost")
    num = _num(rig.log.wait_line("new msg "))
    failure = rig.log.wait_line(": failure: ", timeout=20)
    assert re.fullmatch(r"delivery \d+: failure: Sorry,_no_mailbox_here_by_that_name._\(#5\.1\.1\)/",
                        failure)
    bounce_line = rig.log.wait_line(f"bounce msg {num} qp ", timeout=20)
    assert re.fullmatch(rf"bounce msg {num} qp \d+", bounce_line)
    rig.log.wait_line(f"end msg {num}")
    rig.log.wait_line(lambda x: re.fullmatch(r"info msg \d+: bytes \d+ from <> qp \d+ uid \d+", x))
    support.wait_for(lambda: rig.maildir("demo"), what="bounce delivered")
    text = rig.maildir("demo")[0]
    assert f"From: MAILER-DAEMON@{FQDN}\n".encode() in text
    assert f"To: {DEMO}\n".encode() in text
    assert b"Subject: failure notice\n" in text
    assert (f"Hi. This is the qmail-send program at {FQDN}.\n"
            "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
            "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
            f"<nosuchbox@{FQDN}>:\n"
            "Sorry, no mailbox here by that name. (#5.1.1)\n\n"
            "--- Below this line is a copy of the message.\n\n"
            f"Return-Path: <{DEMO}>\n").encode() in text
    assert b"Subject: lost" in text
    support.wait_for(rig.queue_empty, what="queue emptied")


def test_double_bounce_goes_to_postmaster(rig):
    rig.start()
    rig.inject([f"nosuchbox@{FQDN}"], sender=f"gone@{FQDN}")
    support.wait_for(lambda: rig.maildir("alias"), timeout=30, what="double bounce")
    text = rig.maildir("alias")[0]
    assert f"To: postmaster@{FQDN}\n".encode() in text
    assert b"I tried to deliver a bounce message to this address, but the bounce bounced!\n" in text
    assert f"<gone@{FQDN}>:\n".encode() in text
    assert b"--- Below this line is the original bounce.\n\nReturn-Path: <>\n" in text
    support.wait_for(rig.queue_empty, timeout=20, what="queue emptied")


def test_triple_bounce_is_discarded(rig):
    rig.control("doublebounceto", "alsogone\n")
    rig.start()
    rig.inject([f"nosuchbox@{FQDN}"], sender=f"gone@{FQDN}")
    line = rig.log.wait_line("triple bounce: discarding ", timeout=40)
    assert re.fullmatch(r"triple bounce: discarding bounce/\d+", line)
    support.wait_for(rig.queue_empty, timeout=20, what="queue emptied")
    assert rig.maildir("alias") == [] and rig.maildir("demo") == []


def test_remote_deferral_and_failure(rig):
    rig.start()
    rig.inject(["defer@remote.example", "fail@remote.example"], subject="r")
    results = [rig.log.wait_line(lambda x: ": deferral: " in x or ": failure: " in x, timeout=20)
               for _ in range(2)]  # the two deliveries run at once: either may end first
    deferral = next(x for x in results if ": deferral: " in x)
    assert deferral.endswith(": deferral: fake_remote_says_try_later./")
    failure = next(x for x in results if ": failure: " in x)
    assert failure.endswith(": failure: fake_remote_says_no_such_user./Giving_up./")
    assert rig.queue_files("remote")  # the deferred recipient stays queued


def test_queuelifetime_turns_a_deferral_into_a_failure(rig):
    rig.control("queuelifetime", "0\n")
    rig.alias("later", "|exit 111\n")
    rig.start()
    rig.inject([f"later@{FQDN}"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = rig.log.wait_line(lambda x: ": deferral: " in x or ": failure: " in x, timeout=20)
        if ": failure: " in line:
            break
        time.sleep(1.1)  # the message must be older than its lifetime of 0 s
        rig.proc.send_signal(signal.SIGALRM)
    assert line.endswith("I'm_not_going_to_try_again;_this_message_has_been_in_the_queue_too_long./")
    support.wait_for(lambda: rig.maildir("demo"), timeout=20, what="bounce")


def test_sigterm_lets_running_deliveries_finish(rig):
    rig.alias("slow", "|sleep 2\n")
    rig.start()
    rig.inject([f"slow@{FQDN}"])
    rig.log.wait_line("starting delivery ", timeout=20)
    rig.proc.send_signal(signal.SIGTERM)
    rig.log.wait_line(lambda x: re.fullmatch(r"delivery \d+: success: .*", x), timeout=20)
    rig.log.wait_line("status: local 0/10 remote 0/20 exitasap")
    rig.log.wait_line("status: exiting")
    assert rig.proc.wait(10) == 0


def test_second_qmail_send_refuses_to_start(rig):
    rig.start()
    second = support.Proc(support.as_user([support.prog("qmail-start"), "./Maildir/"], rig.user),
                          env=rig.env)
    second.out.wait_line("alert: cannot start: qmail-send is already running", timeout=20)
    assert second.wait(10) == 111
    second.stop()


def test_sighup_rereads_concurrencylocal(rig):
    rig.alias("slow", "|sleep 1\n")
    rig.start()
    rig.control("concurrencylocal", "2\n")
    rig.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    rig.inject([f"slow@{FQDN}"])
    rig.log.wait_line("status: local 1/2 remote 0/20", timeout=20)


def test_kill_9_during_deliveries_then_restart_delivers_every_message(rig):
    rig.alias("box", "|sleep 0.2\n./Maildir/\n")
    subjects = [f"msg{i}" for i in range(20)]
    for subject in subjects:
        rig.inject([f"box@{FQDN}"], subject=subject)
    rig.start()
    for _ in range(3):
        rig.log.wait_line(": success: ", timeout=30)
    os.killpg(rig.proc.pid, signal.SIGKILL)
    rig.proc.wait(10)
    rig.stop()
    rig.start()

    def delivered():
        return {re.search(rb"Subject: (msg\d+)", text).group(1).decode()
                for text in rig.maildir("alias")}

    support.wait_for(lambda: delivered() == set(subjects), timeout=90, what="every message delivered")
    # Nothing is left to deliver.  (A message file may stay behind when the kill came
    # between "end msg" and qmail-clean: qmail's cleanup removes it after 36 hours.)
    support.wait_for(lambda: not any(rig.queue_files(k) for k in ("todo", "info", "local", "remote")),
                     timeout=30, what="queue drained")


def _write_queued(root: str, user, count: int, recip: bytes) -> None:
    """count messages as qmail-todo leaves them (info, local), owned by user."""
    q = queue_layout.queue_dir(root)
    tmp = os.path.join(q, "pid", "bulk")
    for _ in range(count):
        with open(tmp, "wb") as f:
            f.write(b"Subject: bulk\n\nbody\n")
        num = os.stat(tmp).st_ino
        paths = {
            queue_layout.mess(q, num): None,
            queue_layout.info(q, num): b"F" + recip + b"\0",
            queue_layout.local(q, num): b"T" + recip + b"\0",
        }
        for path, content in paths.items():
            if content is None:
                os.rename(tmp, path)
            else:
                with open(path, "wb") as f:
                    f.write(content)
            os.chown(path, user.pw_uid, user.pw_gid)


def test_five_thousand_queued_messages_start_fast_and_new_mail_is_not_starved(rig):
    _write_queued(rig.root, rig.user, 5000, f"demo@{FQDN}".encode())
    started = time.monotonic()
    rig.start()
    rig.log.wait_line("starting delivery ", timeout=30)
    assert time.monotonic() - started < 20
    injected = time.monotonic()
    rig.inject([f"joe@remote.example"], subject="fresh")
    rig.log.wait_line("to remote joe@remote.example", timeout=20)
    assert time.monotonic() - injected < 10  # the local backlog does not hold it up


def test_remote_delivery_through_qmail_remote_to_an_smtp_sink(rig):
    from tests.test_qmail_remote import OK_SCRIPT, Sink
    sink = Sink(OK_SCRIPT)
    rig.control("smtproutes", f"remote.example:[127.0.0.1]:{sink.port}\n")
    rig.env.pop("QMAILREMOTE")
    rig.env["DNSCACHEIP"] = "127.0.0.254"  # no query may leave this host
    rig.start()
    rig.inject(["joe@remote.example"], subject="out")
    line = rig.log.wait_line(": success: ", timeout=30)
    assert line.endswith(": success: 127.0.0.1_accepted_message./Remote_host_said:_250_ok_42/")
    sink.thread.join(10)
    assert b"RCPT TO:<joe@remote.example>\r\n" in sink.transcript
    assert b"Subject: out\r\n" in sink.transcript
    support.wait_for(rig.queue_empty, what="queue emptied")


def test_debris_of_an_interrupted_qmail_queue_is_removed_once_ossified(rig):
    q = queue_layout.queue_dir(rig.root)
    old, fresh = 990001, 990002
    for num in (old, fresh):
        for path in (queue_layout.mess(q, num), queue_layout.intd(q, num)):
            with open(path, "wb") as f:
                f.write(b"partial")
            os.chown(path, rig.user.pw_uid, rig.user.pw_gid)
    past = time.time() - 129600 - 100  # older than 36 hours
    os.utime(queue_layout.mess(q, old), (past, past))
    rig.start()
    support.wait_for(lambda: not os.path.exists(queue_layout.mess(q, old)), what="debris removed")
    assert not os.path.exists(queue_layout.intd(q, old))
    time.sleep(0.5)
    assert os.path.exists(queue_layout.mess(q, fresh))  # maybe still being written
    assert not any("new msg" in x for x in rig.history())


def test_verp_sender_is_rewritten_per_recipient():
    from qmail.queue.qmail_send import _verp_sender
    assert (_verp_sender(b"list-@lists.example-@[]", b"joe@far.example")
            == b"list-joe=far.example@lists.example")
    assert _verp_sender(b"plain@lists.example", b"joe@far.example") == b"plain@lists.example"
    assert _verp_sender(b"-@[]", b"joe@far.example") == b"-@[]"  # no @ before -@[]
    assert _verp_sender(b"list-@x-@[]", b"noat") == b"list-@x-@[]"


def test_verp_sender_reaches_the_delivery(rig):
    rig.start()
    rig.inject([DEMO], sender=f"list-@{FQDN}-@[]", subject="verp")
    rig.log.wait_line("end msg ", timeout=20)
    text = rig.maildir("demo")[0]
    assert f"Return-Path: <list-demo={FQDN}@{FQDN}>".encode() in text
