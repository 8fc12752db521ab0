"""End to end (issue 8): the book's services under svscan in embedded mode, as an ordinary
user, started the way `make run` starts them (python -m devtools.run_demo DIR), once with warm
start on and once with it off (UCSPI_WARMSTART=0 for every program of the scenario).

Proves: a mail sent by smtplib and by swaks reaches the demo Maildir and shows in the smtpd
log (tcpserver ok/end lines, tai64n-stamped) and the send log (qmail-log lines) while svstat
shows every service up; mail by QMTP and QMQP arrives too; svc -d/-u on smtpd stops and
restores reception; svc -h on send makes it re-read locals; svc -t and kill -9 of any service or logger are recovered with no
mail and no log line lost; 200 mails from 10 concurrent clients while qmail-send is
restarted twice are all delivered exactly once; SIGTERM to run_demo leaves no process.
"""

import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests import support

SERVICES = ("qmail-send", "qmail-smtpd", "qmail-qmtpd", "qmail-qmqpd", "qmail-queued")
DELIVERY_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def project():
    yield support.project_copy()
    support.remove_copies()


class Suite:
    """run_demo on a fresh directory, as the ordinary user, with free ports."""

    def __init__(self, project: Path, warm: bool):
        self.warm = warm
        self.user = support.unprivileged_user()
        self.base = Path(tempfile.mkdtemp(prefix="e2e-suite-"))
        self.base.chmod(0o755)
        if os.getuid() == 0:
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
        self.var = self.base / "var"
        self.bin = project / ".venv" / "bin"
        self.smtp, self.qmtp, self.qmqp = (support.free_port() for _ in range(3))
        extra = {} if warm else {"UCSPI_WARMSTART": "0"}
        self.env = support.user_env(self.base, SMTP_PORT=str(self.smtp),
                                    QMTP_PORT=str(self.qmtp), QMQP_PORT=str(self.qmqp),
                                    **extra)
        self.proc = support.Proc(support.as_user(
            [self.bin / "python", "-m", "devtools.run_demo", self.var], self.user),
            env=self.env, cwd=self.base)
        # this suite outlives a test: stopped by the fixture, not by conftest after each test
        self.proc.detach()
        self.proc.out.wait_line("Send it a mail:", timeout=120)
        support.wait_port(self.smtp, timeout=60)
        self.me = (self.var / "control" / "me").read_text().split("\n")[0]
        self.wait_all_up()

    # -- looking at the suite ---------------------------------------------------
    def service(self, name: str) -> str:
        return str(self.var / "service" / name)

    def svstat(self) -> dict[str, str]:
        dirs = [self.service(n) for n in SERVICES] + [self.service(n + "/log") for n in SERVICES]
        done = support.run([self.bin / "svstat", *dirs], env=self.env)
        found = {}
        for line in done.stdout.decode().splitlines():
            name, _, state = line.partition(": ")
            found[os.path.relpath(name, self.var / "service")] = state
        return found

    def pid(self, name: str, seconds: int = 0) -> int | None:
        """The pid of an up service (up for at least seconds), None while it is not."""
        match = re.match(r"up \(pid (\d+)\) (\d+) seconds", self.svstat()[name])
        return int(match.group(1)) if match and int(match.group(2)) >= seconds else None

    def wait_all_up(self, seconds: int = 1) -> dict[str, str]:
        def all_up():
            states = self.svstat()
            ok = len(states) == 2 * len(SERVICES) and all(
                s.startswith("up ") and int(s.split(") ")[1].split()[0]) >= seconds
                for s in states.values())
            return states if ok else None
        return support.wait_for(all_up, timeout=60, interval=0.2, what="every service up")

    def log(self, name: str) -> str:
        """The whole log: older files (@*.s, and @*.u left by a killed multilog) and current."""
        main = self.var / "service" / name / "log" / "main"
        names = sorted(n for n in os.listdir(main) if n.startswith("@")) + ["current"]
        return "".join((main / n).read_text(errors="replace") for n in names)

    def maildir(self) -> list[bytes]:
        new = self.var / "mailboxes" / "demo" / "Maildir" / "new"
        found = []
        for name in os.listdir(new):
            try:
                found.append((new / name).read_bytes())
            except FileNotFoundError:
                pass
        return found

    def delivered(self, token: str) -> int:
        return sum(1 for m in self.maildir() if f"Subject: {token}\n".encode() in m)

    def wait_delivered(self, tokens, timeout: float = DELIVERY_TIMEOUT) -> None:
        support.wait_for(lambda: all(self.delivered(t) for t in tokens), timeout=timeout,
                         interval=0.2, what=f"delivery of {len(tokens)} mails")

    # -- using it ---------------------------------------------------------------
    def send(self, token: str, rcpt: str | None = None, sender: str | None = None) -> int:
        """One mail by SMTP; returns the client's port (named in tcpserver's ok line)."""
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as client:
            port = client.sock.getsockname()[1]
            client.sendmail(sender or f"{token}@example.com", [rcpt or f"demo@{self.me}"],
                            f"Subject: {token}\n\n{token}\n")
        return port

    def stop(self) -> None:
        """SIGTERM to run_demo: it must stop everything, which the process table shows."""
        try:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(timeout=60)
            left = support.processes_under(str(self.base))
            support.kill_all(left)
            assert code == 0, self.proc.err.read_available()
            assert left == [], left
        finally:
            self.proc.stop()
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module", params=["warm", "cold"])
def suite(request, project):
    running = Suite(project, warm=request.param == "warm")
    yield running
    running.stop()


def test_mail_by_smtplib_and_swaks_reaches_the_maildir_and_both_logs(suite):
    port = suite.send("smtplib-mail")
    tokens = ["smtplib-mail"]
    if shutil.which("swaks"):
        done = support.run(["swaks", "--server", f"127.0.0.1:{suite.smtp}", "--to",
                            f"demo@{suite.me}", "--from", "swaks-mail@example.com",
                            "--header", "Subject: swaks-mail", "--body", "swaks-mail"],
                           timeout=60)
        assert done.returncode == 0, done.stdout
        tokens.append("swaks-mail")
    suite.wait_delivered(tokens)
    smtpd = suite.log("qmail-smtpd")
    stamp = r"@[0-9a-f]{24} "
    assert re.search(stamp + rf"tcpserver: ok \d+ {re.escape(suite.me)}:127\.0\.0\.1:"
                     rf"{suite.smtp} :127\.0\.0\.1::{port}\n", smtpd), smtpd
    assert re.search(stamp + r"tcpserver: end \d+ status \d+\n", smtpd), smtpd
    send = suite.log("qmail-send")
    for token in tokens:
        assert re.search(stamp + rf"info msg \d+: bytes \d+ from <{token}@example\.com> qp \d+ "
                         rf"uid {suite.user.pw_uid}\n", send), send
    assert re.search(stamp + r"delivery \d+: success: did_1\+0\+0/\n", send), send
    for name, state in suite.svstat().items():
        assert state.startswith("up (pid "), (name, state)


def test_warm_start_switch_reaches_every_program_of_the_suite(suite):
    """Warm: programs continue in forked interpreters titled with their names; cold
    (UCSPI_WARMSTART=0, kept across qmail-send's env -): each is a fresh interpreter."""
    commands = [cmd for _, cmd in support.processes_under(str(suite.base))]
    python = str(suite.bin / "python")
    send = f"{python} {suite.var}/bin/qmail-send"
    tcpserver = f"{python} {suite.bin}/tcpserver -v "
    if suite.warm:
        assert "qmail-send" in commands and send not in commands, commands
        assert sum(c.startswith("tcpserver -v ") for c in commands) == 3, commands
    else:
        assert send in commands and "qmail-send" not in commands, commands
        assert f"{python} {suite.var}/bin/qmail-lspawn ./Maildir/" in commands, commands
        assert sum(c.startswith(tcpserver) for c in commands) == 3, commands


def test_svc_down_refuses_connections_and_up_restores_them(suite):
    support.run([suite.bin / "svc", "-d", suite.service("qmail-smtpd")], env=suite.env)
    support.wait_for(lambda: suite.svstat()["qmail-smtpd"].startswith("down "), timeout=30)
    with pytest.raises(ConnectionRefusedError):
        support.connect(suite.smtp).close()
    support.run([suite.bin / "svc", "-u", suite.service("qmail-smtpd")], env=suite.env)
    support.wait_port(suite.smtp, timeout=30)
    suite.send("after-svc-up")
    suite.wait_delivered(["after-svc-up"])


def test_svc_hup_makes_qmail_send_reread_locals(suite):
    control = suite.var / "control"
    # were the new name still remote, its delivery would fail here, not look anything up
    (control / "smtproutes").write_text(":127.0.0.1:1\n")
    with open(control / "locals", "a") as f:
        f.write("hup.example\n")
    support.run([suite.bin / "svc", "-h", suite.service("qmail-send")], env=suite.env)
    time.sleep(1)
    suite.send("after-hup", rcpt="demo@hup.example")
    suite.wait_delivered(["after-hup"])
    assert re.search(r"starting delivery \d+: msg \d+ to local demo@hup\.example\n",
                     suite.log("qmail-send"))


def test_killed_services_and_loggers_come_back_with_no_mail_or_log_line_lost(suite):
    sent = {}
    steps = [("svc-t-send", "qmail-send", signal.SIGTERM),
             ("kill9-smtpd", "qmail-smtpd", signal.SIGKILL),
             ("kill9-smtpd-log", "qmail-smtpd/log", signal.SIGKILL),
             ("kill9-send-log", "qmail-send/log", signal.SIGKILL),
             ("svc-t-smtpd", "qmail-smtpd", signal.SIGTERM),
             ("kill9-send", "qmail-send", signal.SIGKILL),
             ("svc-t-smtpd-log", "qmail-smtpd/log", signal.SIGTERM),
             ("svc-t-send-log", "qmail-send/log", signal.SIGTERM),
             ("kill9-qmtpd", "qmail-qmtpd", signal.SIGKILL),
             ("svc-t-qmqpd", "qmail-qmqpd", signal.SIGTERM),
             ("kill9-queued", "qmail-queued", signal.SIGKILL),
             ("kill9-qmtpd-log", "qmail-qmtpd/log", signal.SIGKILL),
             ("svc-t-qmqpd-log", "qmail-qmqpd/log", signal.SIGTERM),
             ("kill9-queued-log", "qmail-queued/log", signal.SIGKILL)]
    for token, name, sig in steps:
        before = suite.pid(name)
        assert before is not None, suite.svstat()
        sent[f"{token}-before"] = suite.send(f"{token}-before")
        # a kill -9 loses what the victim had not yet written; this is about the restart
        suite.wait_delivered([f"{token}-before"])
        support.wait_for(lambda: f"from <{token}-before@example.com>" in suite.log("qmail-send"),
                         timeout=30, what="the mail logged")
        if sig == signal.SIGTERM:
            support.run([suite.bin / "svc", "-t", suite.service(name)], env=suite.env)
        else:
            os.kill(before, sig)
        support.wait_for(lambda: suite.pid(name) not in (None, before), timeout=30,
                         what=f"{name} restarted")
        support.wait_port(suite.smtp, timeout=30)
        sent[f"{token}-after"] = suite.send(f"{token}-after")
    suite.wait_delivered(list(sent))
    for token in sent:
        assert suite.delivered(token) == 1, token

    def missing():
        smtpd, send = suite.log("qmail-smtpd"), suite.log("qmail-send")
        return ([f"smtpd {t}" for t, port in sent.items() if f":127.0.0.1::{port}\n" not in smtpd]
                + [f"send {t}" for t in sent if f"from <{t}@example.com>" not in send])
    deadline = time.monotonic() + 30
    while missing() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert missing() == []


def netstring(data: bytes) -> bytes:
    return str(len(data)).encode() + b":" + data + b","


def test_mail_by_qmtp_and_qmqp_reaches_the_maildir(suite):
    rcpt = f"demo@{suite.me}".encode()
    with support.connect(suite.qmtp) as sock:
        message = b"\nSubject: by-qmtp\n\nby-qmtp\n"  # mode LF, then the message
        sock.sendall(netstring(message) + netstring(b"qmtp@example.com")
                     + netstring(netstring(rcpt)))
        sock.shutdown(socket.SHUT_WR)
        qmtp_reply = support.recv_all(sock)
    assert qmtp_reply.split(b":", 1)[1].startswith(b"K"), qmtp_reply
    with support.connect(suite.qmqp) as sock:
        message = b"Subject: by-qmqp\n\nby-qmqp\n"
        sock.sendall(netstring(netstring(message) + netstring(b"qmqp@example.com")
                               + netstring(rcpt)))
        sock.shutdown(socket.SHUT_WR)
        reply = support.recv_all(sock)
    assert reply.split(b":", 1)[1].startswith(b"K"), reply
    suite.wait_delivered(["by-qmtp", "by-qmqp"])
    for name in ("qmail-qmtpd", "qmail-qmqpd"):
        assert re.search(r"tcpserver: ok \d+ ", suite.log(name)), name


def test_200_mails_from_10_clients_survive_two_qmail_send_restarts(suite):
    errors, done = [], []
    exits = suite.log("qmail-send").count("status: exiting\n")

    def client(n: int) -> None:
        try:
            for i in range(20):
                suite.send(f"load-{n}-{i}")
                done.append(1)
        except Exception as err:  # reported by the test below
            errors.append(err)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for mark in (60, 130):
        support.wait_for(lambda: len(done) >= mark or errors or len(done) >= 200,
                         timeout=120, what=f"{mark} mails accepted")
        # svc -t reaches a qmail-send only while one runs: the second restart waits until
        # the first has happened and the new qmail-send is up (on a loaded machine it may
        # still be finishing its deliveries, or not yet restarted, when mail 130 is in)
        before = support.wait_for(lambda: suite.pid("qmail-send", seconds=1), timeout=60,
                                  what="qmail-send up (its handlers set)")
        support.run([suite.bin / "svc", "-t", suite.service("qmail-send")], env=suite.env)
        support.wait_for(lambda: suite.pid("qmail-send") not in (None, before), timeout=60,
                         what="qmail-send restarted")
    for t in threads:
        t.join(timeout=180)
    assert not errors, errors
    assert len(done) == 200
    tokens = [f"load-{n}-{i}" for n in range(10) for i in range(20)]
    suite.wait_delivered(tokens, timeout=180)
    counts = {t: suite.delivered(t) for t in tokens}
    assert {t: c for t, c in counts.items() if c != 1} == {}
    support.wait_for(lambda: suite.log("qmail-send").count("status: exiting\n") == exits + 2,
                     timeout=30, what="two restarts of qmail-send logged")


@pytest.mark.parametrize("which", ["ours", "C"])
def test_supervise_reads_svc_dx_while_its_service_keeps_dying_at_once(tmp_path, which):
    """A logger whose input has ended exits at once and is restarted every second: svc -dx
    must still stop it and end supervise (C reads a command after each collected child)."""
    supervise = support.prog("supervise") if which == "ours" else support.c_tool("supervise")
    service = support.service_tree(tmp_path, {"s": "#!/bin/sh\nexit 0\n"}) / "s"
    proc = support.Proc([supervise, service])
    support.wait_for(lambda: (service / "supervise" / "status").exists(), timeout=10)
    time.sleep(2.5)  # several restarts
    support.run([support.prog("svc"), "-dx", service])
    assert proc.wait(timeout=10) == 0
    assert support.run([support.prog("svstat"), service]).stdout.startswith(
        f"{service}: supervise not running".encode())


def unix_listening(path) -> bool:
    """Whether a UNIX-domain server accepts connections at path."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@pytest.mark.skipif(os.getuid() != 0, reason="root mode needs root")
def test_root_mode_services_run_as_qmails_users_and_deliver_as_the_mailbox_owner(project):
    """The book's deployment: qmail-install --services as root, svscan as root; tcpserver
    as qmaild (its mail queued through qmail-queued as qmailq), loggers as qmaill, and
    qmail-local as the recipient's own uid. Only the listening addresses are changed to
    127.0.0.1 and free ports, as an administrator would edit them."""
    from devtools import run_demo

    user = support.unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix="e2e-root-"))
    base.chmod(0o755)
    root, services, home = base / "qmail", base / "service", base / "home"
    bin_dir = project / ".venv" / "bin"
    env = support.user_env(base)
    scanner = None
    try:
        done = support.run([bin_dir / "qmail-install", "--fqdn", "mx.example.net", "--services",
                            services, root], env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        smtp = support.free_port()
        for name, port in (("qmail-smtpd", f"127.0.0.1 {smtp} "),
                           ("qmail-qmtpd", f"127.0.0.1 {support.free_port()} "),
                           ("qmail-qmqpd", f"127.0.0.1 {support.free_port()} ")):
            run = services / name / "run"
            text = re.sub(r'" 0 (smtp|209|628) ', f'" {port}', run.read_text())
            assert port in text
            run.write_text(text)
        home.mkdir()
        os.chown(home, user.pw_uid, user.pw_gid)
        done = support.run(support.as_user([bin_dir / "maildirmake", home / "Maildir"], user),
                           env=env)
        assert done.returncode == 0, done.stderr
        (root / "users" / "assign").write_text(
            f"=rootdemo:{user.pw_name}:{user.pw_uid}:{user.pw_gid}:{home}:::\n.\n")
        done = support.run([root / "bin" / "qmail-newu"], env=env, cwd=root)
        assert done.returncode == 0, done.stderr
        scanner = support.Proc([bin_dir / "svscan", services],
                               env=dict(env, PATH=f"{bin_dir}:{env['PATH']}"))
        support.wait_port(smtp, timeout=60)
        # Until qmail-queued listens too, qmail-smtpd answers 451 (nothing is lost, the
        # client would retry); svscan starts the services in no particular order.
        support.wait_for(lambda: unix_listening(root / "run" / "qmail-queued.sock"),
                         timeout=60, what="qmail-queued listening")
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            client.sendmail("you@example.com", ["rootdemo@mx.example.net"],
                            "Subject: root-mode\n\nroot-mode\n")
        new = home / "Maildir" / "new"
        support.wait_for(lambda: os.listdir(new), timeout=DELIVERY_TIMEOUT, what="delivery")
        mail = new / os.listdir(new)[0]
        assert mail.stat().st_uid == user.pw_uid
        assert b"Subject: root-mode\n" in mail.read_bytes()
        owners = {}
        for pid, cmd in support.session_members(scanner.pid):
            # POP3's tcpserver stays root, as the book runs it: checkpassword becomes the user
            name = cmd.split(" ")[0] + (" (pop3)" if "qmail-popup" in cmd else "")
            owners.setdefault(name, set()).add(pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name)
        assert owners["tcpserver"] == {"qmaild"}, owners
        assert owners["tcpserver (pop3)"] == {"root"}, owners
        assert owners["multilog"] == {"qmaill"}, owners
        assert owners["unixserver"] == {"qmailq"}, owners
        assert owners["qmail-send"] == {"qmails"}, owners
        qmaild = pwd.getpwnam("qmaild").pw_uid
        send_log = (services / "qmail-send" / "log" / "main" / "current").read_text()
        assert re.search(rf"info msg \d+: bytes \d+ from <you@example\.com> qp \d+ uid {qmaild}\n",
                         send_log), send_log
    finally:
        if scanner is not None:
            run_demo.shut_down(scanner.popen, str(services))
            left = support.session_members(scanner.pid)
            scanner.stop()
            assert left == [], left
        shutil.rmtree(base, ignore_errors=True)
