"""run_demo: what `make run` runs: a working mail server as you, in ./var, under svscan.

Synopsis: python -m devtools.run_demo [ DIR ]     (DIR default ./var)

Not shipped: the developer's demo (setup.cfg installs ucspi, supervise and qmail only).

Installs (or completes: a second run reuses the tree and keeps its mail) an embedded qmail
in DIR (qmail-install --embedded DIR --services DIR/service), checks that the ports are
free (SMTP on 127.0.0.1:$SMTP_PORT, default 2525; QMTP $QMTP_PORT 2209; QMQP $QMQP_PORT
2628; POP3 $POP3_PORT 2110, POP3S $POP3S_PORT 2995), makes a self-signed
control/servercert.pem with openssl when there is none (STARTTLS, STLS, POP3S) and the
virtual mailbox demo@virtual.example (password demo, qmail-vuser) for POP3, prints how to
send the demo mailboxes a mail, read it back and where the mail and the logs land, then
runs `svscan DIR/service` in the foreground, in a session of its own.

SIGINT (Ctrl-C) or SIGTERM stops everything it started: svscan first, then every service
(`svc -dx`, so supervise stops it and exits), then the loggers once the services are gone,
and finally, after a bounded wait, any process left in svscan's session is killed.

Exit codes: 0 after a stop by signal; 100 when run as root or a port setting is not a
number; 111 when a port is in use, the tree's services still run, the installation fails
or svscan dies by itself.  Environment: SMTP_PORT, QMTP_PORT, QMQP_PORT, POP3_PORT,
POP3S_PORT.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time

from devtools.harness import session_members
from qmail.tools import install_services, qmail_install
from supervise import svc
from ucspi.runtime import exitcodes

PROG = "make run"
VIRTUAL_DOMAIN = "virtual.example"
VIRTUAL_USER = "demo@" + VIRTUAL_DOMAIN
VIRTUAL_PASSWORD = "demo"
STOP_WAIT = 20.0  # seconds for services and loggers to go before they are killed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    try:
        return run(os.path.abspath(argv[1] if len(argv) > 1 else "var"))
    except KeyboardInterrupt:  # Ctrl-C before svscan started: nothing runs yet
        return 130


def run(base: str) -> int:
    services = os.path.join(base, "service")
    if os.geteuid() == 0:
        # as root qmail-start would switch to qmail's users, which a demo tree has not
        exitcodes.fatal(PROG, "run me as an ordinary user (as root, install with "
                        "qmail-install --services /service)", exitcodes.PERMANENT)
    try:
        ports = install_services.ports(True)
    except install_services.Trouble as trouble:
        exitcodes.fatal(PROG, str(trouble), exitcodes.PERMANENT)
    for name, port in ports.items():
        check_port(name, int(port))
    stale = running_services(services)
    if stale:
        exitcodes.fatal(PROG, f"supervise still runs in {', '.join(stale)}: "
                        "another make run is using this tree")
    have_certificate = make_certificate(base)
    qmail_install.main(["qmail-install", "--embedded", "--services", services, base])
    make_virtual_mailbox(base)
    print_instructions(base, ports, have_certificate)
    return supervise_tree(services)


def make_certificate(base: str) -> bool:
    """control/servercert.pem for STARTTLS, STLS and POP3S: a self-signed one for
    127.0.0.1 and localhost made with openssl when there is none. False without openssl."""
    control = os.path.join(base, "control")
    cert = os.path.join(control, "servercert.pem")
    if os.path.exists(cert):
        return True
    openssl = shutil.which("openssl")
    if openssl is None:
        return False
    os.makedirs(control, exist_ok=True)
    tmp = cert + ".new"
    done = subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                           "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650",
                           "-subj", "/CN=localhost", "-addext",
                           "subjectAltName=DNS:localhost,IP:127.0.0.1",
                           "-keyout", tmp, "-out", tmp + ".crt"],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    if done.returncode != 0:
        exitcodes.warn(PROG, "openssl could not make a certificate: no TLS in the demo: "
                       + done.stderr.decode(errors="replace").strip())
        return False
    with open(tmp, "ab") as key, open(tmp + ".crt", "rb") as crt:
        key.write(crt.read())  # one file: the key, then the certificate
    os.unlink(tmp + ".crt")
    os.chmod(tmp, 0o600)
    os.rename(tmp, cert)
    return True


def make_virtual_mailbox(base: str) -> None:
    """The POP3 demo: VIRTUAL_DOMAIN with VIRTUAL_USER and its password (qmail-vuser)."""
    env = dict(os.environ, QMAIL_ROOT=base)
    vuser = os.path.join(install_services.bin_dir(), "qmail-vuser")
    listed = subprocess.run([vuser, "list"], env=env, capture_output=True, timeout=60)
    if VIRTUAL_DOMAIN.encode() in listed.stdout.split():
        return
    for argv, stdin in (([vuser, "adddomain", VIRTUAL_DOMAIN], b""),
                        ([vuser, "add", VIRTUAL_USER], VIRTUAL_PASSWORD.encode() + b"\n")):
        done = subprocess.run(argv, env=env, input=stdin, capture_output=True, timeout=120)
        if done.returncode != 0:
            exitcodes.fatal(PROG, f"{' '.join(argv[1:])} failed: "
                            + done.stderr.decode(errors="replace").strip())


def check_port(name: str, port: int) -> None:
    """Fail at once, with a clear message, rather than letting tcpserver retry forever."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((install_services.EMBEDDED_HOST, port))
    except OSError as err:
        exitcodes.fatal_sys(PROG, f"unable to use {install_services.EMBEDDED_HOST}:{port} "
                            f"(set {name} to another port)", err)
    finally:
        sock.close()


def running_services(services: str) -> list[str]:
    """Services of this tree whose supervise still runs (a make run elsewhere)."""
    found = []
    for name in install_services.SERVICES:
        for d in (os.path.join(services, name), os.path.join(services, name, "log")):
            try:
                fd = os.open(os.path.join(d, "supervise", "control"),
                             os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            os.close(fd)
            found.append(d)
    return found


def print_instructions(base: str, ports: dict[str, str], have_certificate: bool) -> None:
    with open(os.path.join(base, "control", "me"), encoding="utf-8", errors="replace") as f:
        me = f.readline().strip()
    smtp = ports["SMTP_PORT"]
    rcpt = f"demo@{me}"
    one_liner = (f"import smtplib; smtplib.SMTP('127.0.0.1', {smtp}).sendmail("
                 f"'you@example.com', ['{rcpt}'], 'Subject: hello\\n\\nIt works.\\n')")
    lines = [
        f"qmail runs as {user_name()} in {base} (Ctrl-C stops everything).",
        f"  SMTP 127.0.0.1:{smtp}, QMTP 127.0.0.1:{ports['QMTP_PORT']}, "
        f"QMQP 127.0.0.1:{ports['QMQP_PORT']}; the demo mailbox is {rcpt}",
        "Send it a mail:",
        f"  swaks --server 127.0.0.1:{smtp} --to {rcpt}",
        f"  python3 -c \"{one_liner}\"",
        "The mail lands in:",
        f"  {base}/mailboxes/demo/Maildir/new/",
        "Logs (tai64nlocal < FILE makes the times readable):",
        f"  {base}/service/qmail-smtpd/log/main/current",
        f"  {base}/service/qmail-send/log/main/current",
        f"Service status:  {install_services.bin_dir()}/svstat {base}/service/* "
        f"{base}/service/*/log",
    ] + pop3_instructions(base, ports, have_certificate) + [""]
    os.write(1, "\n".join(lines).encode())


def pop3_instructions(base: str, ports: dict[str, str], have_certificate: bool) -> list[str]:
    pop3, pop3s = ports["POP3_PORT"], ports["POP3S_PORT"]
    user, password = VIRTUAL_USER, VIRTUAL_PASSWORD
    unverified = "__import__('ssl')._create_unverified_context()"  # the demo's self-signed certificate
    login = (f"p.user('{user}'); p.pass_('{password}'); "
             "print(b'\\n'.join(p.retr(len(p.list()[1]))[1]).decode()); p.quit()")
    lines = [
        f"POP3: 127.0.0.1:{pop3}" + (f" (STLS), POP3S 127.0.0.1:{pop3s}" if have_certificate
                                     else " (no STLS or POP3S: openssl made no certificate)")
        + f"; the virtual mailbox {user}, password {password}:",
        f"  swaks --server 127.0.0.1:{ports['SMTP_PORT']} --to {user}",
        f"  python3 -c \"import poplib; p = poplib.POP3('127.0.0.1', {pop3}); "
        + (f"p.stls({unverified}); " if have_certificate else "") + login + "\"",
    ]
    if have_certificate:
        # curl answers the APOP timestamp of qmail-popup's greeting with APOP, which no
        # argon2 hash can check: poplib and openssl log in with USER and PASS.
        lines += [f"  python3 -c \"import poplib; p = poplib.POP3_SSL('127.0.0.1', {pop3s}, "
                  f"context={unverified}); {login}\"",
                  f"  openssl s_client -quiet -connect 127.0.0.1:{pop3s}     "
                  f"(then USER {user}, PASS {password}, LIST, RETR 1, QUIT)"]
    lines.append(f"  Its Maildir: {base}/vdomains/{VIRTUAL_DOMAIN}/demo/Maildir/  "
                 f"(qmail-vuser list {VIRTUAL_DOMAIN}; QMAIL_ROOT={base})")
    return lines


def user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def supervise_tree(services: str) -> int:
    stop = []

    def on_signal(signo, frame):
        stop.append(signo)

    for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signo, on_signal)
    env = dict(os.environ)
    env["PATH"] = install_services.bin_dir() + ":" + env.get("PATH", "/usr/bin:/bin")
    scanner = subprocess.Popen([os.path.join(install_services.bin_dir(), "svscan"), services],
                               env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    status = None
    while not stop and status is None:
        try:
            status = scanner.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
    shut_down(scanner, services)
    if status is not None:
        exitcodes.fatal(PROG, f"svscan exited with status {status}")
    return 0


def shut_down(scanner: subprocess.Popen, services: str) -> None:
    """svscan, then the services, then their loggers; stragglers in the session killed."""
    sid = scanner.pid
    if scanner.poll() is None:
        scanner.terminate()
        try:
            scanner.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            scanner.kill()
            scanner.wait()
    names = [os.path.join(services, n) for n in sorted(os.listdir(services))
             if not n.startswith(".") and os.path.isdir(os.path.join(services, n))]
    for dirs in (names, [os.path.join(n, "log") for n in names if os.path.isdir(n + "/log")]):
        control(dirs)
        wait_gone(sid, dirs)
    leftovers = members(sid)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_gone(sid, [], timeout=5.0)


def control(dirs: list[str]) -> None:
    if not dirs:
        return
    cwd = os.open(".", os.O_RDONLY)
    try:
        svc.main(["svc", "-dx", *dirs])
    except SystemExit:
        pass
    finally:
        os.fchdir(cwd)
        os.close(cwd)


def wait_gone(sid: int, dirs: list[str], timeout: float = STOP_WAIT) -> None:
    """Until no supervise runs in dirs (or, without dirs, no process is left in sid)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dirs:
            if not running(dirs):
                return
        elif not members(sid):
            return
        time.sleep(0.1)


def running(dirs: list[str]) -> bool:
    for d in dirs:
        try:
            fd = os.open(os.path.join(d, "supervise", "control"), os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue
        os.close(fd)
        return True
    return False


def members(sid: int) -> list[int]:
    """Live processes of session sid (svscan's, which everything it started shares)."""
    return [pid for pid, _ in session_members(sid)]


if __name__ == "__main__":
    sys.exit(main())
