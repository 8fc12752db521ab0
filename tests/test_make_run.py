"""`make run` (issue 8, point 5): from a fresh copy of the project, as an ordinary user, it
builds the venv, installs qmail in ./var with its services, prints how to send the demo
mailbox a mail, and runs svscan in the foreground; Ctrl-C (SIGINT to the foreground
process group) or SIGTERM to make stops everything, as the process table shows; a second
`make run` keeps the mail; a port in use is reported at once."""

import os
import shutil
import signal
import smtplib
import socket
import time

import pytest

from tests import support


@pytest.fixture(scope="module")
def clone():
    """A fresh copy (no .venv, no var) owned by the ordinary user."""
    src = support.fresh_copy(prefix="make-run-")
    yield src
    left = support.processes_under(str(src))
    support.kill_all(left)
    shutil.rmtree(src.parent, ignore_errors=True)


def make_run(src, **ports):
    user = support.unprivileged_user()
    env = support.user_env(src.parent, PYTHON=support.user_python(),
                           **{k: str(v) for k, v in ports.items()})
    return support.Proc(support.as_user(["make", "run", f"PYTHON={env['PYTHON']}"], user),
                        env=env, cwd=src)


def free_ports():
    return {name: support.free_port()
            for name in ("SMTP_PORT", "QMTP_PORT", "QMQP_PORT", "POP3_PORT", "POP3S_PORT")}


VIRTUAL = "demo@virtual.example"


def virtual_mails(src) -> list[bytes]:
    new = src / "var" / "vdomains" / "virtual.example" / "demo" / "Maildir" / "new"
    return [(new / n).read_bytes() for n in sorted(os.listdir(new))] if new.is_dir() else []


def read_by_pop3(printed, ports, src) -> dict:
    """A mail to the virtual mailbox, then read back by the printed poplib commands (STLS
    on the POP3 port, POP3S), through the shell a user pastes them into."""
    with smtplib.SMTP("127.0.0.1", ports["SMTP_PORT"], timeout=30) as client:
        client.sendmail("you@example.com", [VIRTUAL], "Subject: by-pop3\n\nread me back\n")
    support.wait_for(lambda: virtual_mails(src), timeout=60, interval=0.2, what="the virtual mail")
    time.sleep(1.2)  # qmail-pop3d lists only messages older than the current second
    support.wait_port(ports["POP3_PORT"], timeout=60)
    outputs = []
    commands = [line.strip() for line in printed if line.startswith("  python3 -c \"import poplib")]
    support.wait_port(ports["POP3S_PORT"], timeout=60)
    for command in commands:
        done = support.run(["/bin/sh", "-c", command], env=os.environ.copy(), timeout=60)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        outputs.append((command, done.stdout))
    return outputs


def send(port: int, token: str, me: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("you@example.com", [f"demo@{me}"], f"Subject: {token}\n\n{token}\n")


def mails(src) -> list[bytes]:
    new = src / "var" / "mailboxes" / "demo" / "Maildir" / "new"
    return [(new / n).read_bytes() for n in sorted(os.listdir(new))]


def wait_mail(src, token: str) -> None:
    support.wait_for(lambda: any(f"Subject: {token}\n".encode() in m for m in mails(src)),
                     timeout=60, interval=0.2, what=f"mail {token}")


def stop_and_check(proc, src, how) -> list:
    """Stop make the way a user would; returns what of ours is left (killed then)."""
    how(proc)
    try:
        proc.wait(timeout=60)
    finally:
        left = support.processes_under(str(src))
        support.kill_all(left)
        proc.stop()
    return left


def ctrl_c(proc) -> None:
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: the whole foreground group


def sigterm_to_make(proc) -> None:
    os.kill(proc.pid, signal.SIGTERM)


@pytest.fixture(scope="module")
def first_run(clone):
    """The first make run of the fresh copy: what it printed, a mail sent, then Ctrl-C."""
    ports = free_ports()
    proc = make_run(clone, **ports)
    printed, commands = [], []
    try:
        line = proc.out.wait_line("the demo mailbox is demo@", timeout=300)
        me = line.rsplit("demo@", 1)[1]
        proc.out.wait_line(f"{clone}/var/service/qmail-send/log/main/current")
        support.wait_port(ports["SMTP_PORT"], timeout=60)
        printed = proc.out.history[:]
        # the commands exactly as printed, through the shell a user pastes them into
        commands = [line.strip() for line in printed
                    if line.startswith("  python3 -c ") and f"demo@{me}" in line]
        if shutil.which("swaks"):
            commands += [line.strip() for line in printed
                         if line.startswith("  swaks ") and f"demo@{me}" in line]
        for command in commands:
            done = support.run(["/bin/sh", "-c", command], env=os.environ.copy(), timeout=60)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
        support.wait_for(lambda: len(mails(clone)) == len(commands), timeout=60,
                         what="the printed commands' mails")
        send(ports["SMTP_PORT"], "first-run", me)
        wait_mail(clone, "first-run")
        pop3 = read_by_pop3(printed, ports, clone)
    finally:
        left = stop_and_check(proc, clone, ctrl_c)
    return {"ports": ports, "me": me, "printed": printed, "left": left, "commands": commands,
            "pop3": pop3}


def test_make_run_serves_the_virtual_mailbox_by_pop3_with_stls_and_pop3s(clone, first_run):
    ports, printed, pop3 = first_run["ports"], first_run["printed"], first_run["pop3"]
    assert (f"POP3: 127.0.0.1:{ports['POP3_PORT']} (STLS), POP3S 127.0.0.1:{ports['POP3S_PORT']}; "
            f"the virtual mailbox {VIRTUAL}, password demo:") in printed, printed
    assert f"  swaks --server 127.0.0.1:{ports['SMTP_PORT']} --to {VIRTUAL}" in printed
    assert [("POP3_SSL" in command, "p.stls(" in command) for command, _ in pop3] == [
        (False, True), (True, False)]
    for command, output in pop3:
        assert b"Subject: by-pop3" in output and b"read me back" in output, command
    stls = (clone / "var" / "service" / "qmail-pop3d" / "log" / "main" / "current").read_bytes()
    assert b"sslserver: tls " in stls  # the poplib session went through STLS


def test_make_run_from_a_fresh_copy_prints_how_to_send_and_delivers(clone, first_run):
    smtp, me, printed = first_run["ports"]["SMTP_PORT"], first_run["me"], first_run["printed"]
    for expected in (f"  swaks --server 127.0.0.1:{smtp} --to demo@{me}",
                     "  python3 -c \"import smtplib; smtplib.SMTP('127.0.0.1', "
                     f"{smtp}).sendmail('you@example.com', ['demo@{me}'], "
                     "'Subject: hello\\n\\nIt works.\\n')\"",
                     f"  {clone}/var/mailboxes/demo/Maildir/new/",
                     f"  {clone}/var/service/qmail-smtpd/log/main/current",
                     f"  {clone}/var/service/qmail-send/log/main/current"):
        assert expected in printed, printed
    assert any(b"Subject: first-run\n" in m for m in mails(clone))
    assert any(b"Subject: hello\n\nIt works.\n" in m for m in mails(clone))
    assert len(first_run["commands"]) == (2 if shutil.which("swaks") else 1)
    assert (clone / ".venv" / "bin" / "qmail-smtpd").exists()


def test_ctrl_c_leaves_no_process_behind(clone, first_run):
    assert first_run["left"] == []
    with pytest.raises(ConnectionRefusedError):
        support.connect(first_run["ports"]["SMTP_PORT"]).close()


def test_second_make_run_keeps_the_mail_and_sigterm_to_make_stops_everything(clone, first_run):
    kept = mails(clone)
    assert any(b"Subject: first-run\n" in m for m in kept)
    ports = free_ports()
    proc = make_run(clone, **ports)
    try:
        line = proc.out.wait_line("the demo mailbox is demo@", timeout=300)
        me = line.rsplit("demo@", 1)[1]
        support.wait_port(ports["SMTP_PORT"], timeout=60)
        send(ports["SMTP_PORT"], "second-run", me)
        wait_mail(clone, "second-run")
        assert all(m in mails(clone) for m in kept)
    except BaseException:
        stop_and_check(proc, clone, ctrl_c)
        raise
    assert stop_and_check(proc, clone, sigterm_to_make) == []


def test_a_port_in_use_is_reported_at_once_not_retried(clone, first_run):
    ports = free_ports()
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", ports["SMTP_PORT"]))
    holder.listen(1)
    try:
        started = time.monotonic()
        proc = make_run(clone, **ports)
        try:
            code = proc.wait(timeout=300)
            err = b"".join(l.encode() + b"\n" for l in proc.err.read_available(1.0))
        finally:
            proc.stop()
        assert code != 0
        assert (f"make run: fatal: unable to use 127.0.0.1:{ports['SMTP_PORT']} (set SMTP_PORT "
                f"to another port): address already used\n").encode() in err
        assert time.monotonic() - started < 120
        assert support.processes_under(str(clone)) == []
    finally:
        holder.close()


def test_a_second_make_run_on_a_running_tree_is_refused(clone, first_run):
    first = make_run(clone, **free_ports())
    try:
        first.out.wait_line("Send it a mail:", timeout=300)
        support.wait_for(lambda: len(support.processes_under(str(clone / "var"))) > 10,
                         timeout=60, what="the first make run's services")
        time.sleep(1)
        second = make_run(clone, **free_ports())
        try:
            assert second.wait(timeout=120) != 0
            err = "\n".join(second.err.read_available(1.0))
        finally:
            second.stop()
        assert f"make run: fatal: supervise still runs in {clone}/var/service/" in err, err
        assert "another make run is using this tree" in err
    finally:
        left = stop_and_check(first, clone, ctrl_c)
    assert left == []


@pytest.mark.skipif(os.getuid() != 0, reason="only root is refused")
def test_root_is_told_to_run_it_as_an_ordinary_user(tmp_path):
    done = support.run([support.prog("python"), "-m", "devtools.run_demo", tmp_path / "var"],
                       timeout=60)
    assert done.returncode == 100
    assert done.stderr == (b"make run: fatal: run me as an ordinary user (as root, install "
                           b"with qmail-install --services /service)\n")
    assert not (tmp_path / "var").exists()
