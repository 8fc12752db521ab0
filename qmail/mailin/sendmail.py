"""sendmail: the sendmail interface to qmail (qmail's sendmail wrapper).

    sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]

Runs ROOT/bin/qmail-inject -a (or -H with -t) [-f sender] -- arg ..., so the message on
stdin is queued for the arguments (and, with -t, the header's recipients too). -F sets
MAILNAME (the From: name). -bs runs qmail-smtpd on stdin/stdout (setting RELAYCLIENT,
DATABYTES=0 and the TCP variables of a local session unless PROTO is set); -bp, or the
name mailq, runs qmail-qread. Ignored, as in qmail: -v -i -m -x -e -oX -pX -BX -bm, and
-E/-J with anything attached. The name newaliases is refused.

Exit codes: those of qmail-inject (or qmail-smtpd, qmail-qread); 100 for a usage error;
111 when the program cannot be run or ROOT cannot be entered.
Environment: QMAIL_ROOT (ROOT, default /var/qmail), PROTO.
"""

import os
import sys

from qmail.config import install_root
from ucspi.runtime import exitcodes, sgetopt, launch

PROG = "sendmail"
USAGE = "sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]"
WITH_ARGUMENT = "efpoBFb"
FLAGS = "vimtEJx"

LOCAL_SESSION = {
    "RELAYCLIENT": "", "DATABYTES": "0", "PROTO": "TCP",
    "TCPLOCALIP": "127.0.0.1", "TCPLOCALHOST": "localhost",
    "TCPREMOTEIP": "127.0.0.1", "TCPREMOTEHOST": "localhost",
    "TCPREMOTEINFO": "sendmail-bs",
}


def die_usage() -> None:
    exitcodes.usage(PROG, USAGE)


def run(root: str, name: str, args: list[str], env: dict) -> None:
    path = install_root.program(name, root)
    try:
        launch.exec_program([path, *args], env)
    except OSError:
        pass
    exitcodes.say(f"sendmail: fatal: unable to run {name}")
    raise SystemExit(exitcodes.TEMPORARY)


def parse(argv: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """sgetopt over sendmail's option string, where -E and -J swallow the rest of their word."""
    try:
        return sgetopt.getopt(argv, FLAGS + "".join(ch + ":" for ch in WITH_ARGUMENT), PROG,
                              rest_of_word="EJ")
    except sgetopt.UsageError:
        die_usage()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    env = dict(os.environ)
    root = install_root.root(env)
    env[install_root.VARIABLE] = root
    try:
        os.chdir(root)
    except OSError:
        exitcodes.say("sendmail: fatal: unable to switch to qmail home directory")
        return exitcodes.TEMPORARY
    opts, args = parse(argv)
    header = False
    sender = None
    for opt, value in opts:
        if opt == "t":
            header = True
        elif opt == "f":
            sender = value
        elif opt == "F":
            env["MAILNAME"] = value
        elif opt == "b":
            mode = value[:1]
            if mode == "m":
                continue
            if mode == "p":
                run(root, "qmail-qread", [], env)
            if mode == "s":
                if "PROTO" not in env:
                    env.update(LOCAL_SESSION)
                run(root, "qmail-smtpd", [], env)
            die_usage()
    name = os.path.basename(argv[0]) if argv else PROG
    if name == "mailq":
        run(root, "qmail-qread", [], env)
    if name == "newaliases":
        exitcodes.say("sendmail: fatal: please use fastforward/newaliases instead")
        return exitcodes.PERMANENT
    inject_args = ["-H" if header else "-a"]
    if sender is not None:
        inject_args += ["-f", sender]
    run(root, "qmail-inject", [*inject_args, "--", *args], env)
    return exitcodes.TEMPORARY
